#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "tensor/kernels/iterate.h"
#include "tensor/kernels/kernels.h"
#include "tensor/random.h"

namespace spear {
namespace {

// L = sum(fn(inputs) * v) in double.
double weighted_sum(const GradcheckFn& fn, const std::vector<Tensor>& inputs, const Tensor& v) {
  NoGradGuard no_grad;
  Tensor out = fn(inputs);
  return kernels::sum(kernels::binary(kernels::BinaryOp::mul, out.to(f64), v)).item<double>();
}

// The element offsets of a view, in row-major order.
std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> offsets;
  kernels::for_each_offset(t.shape(), t.strides(), [&](int64_t off) { offsets.push_back(off); });
  return offsets;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  const std::string name = options.name.empty() ? "gradcheck" : options.name;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined() || !x.requires_grad()) continue;
    SPEAR_CHECK_DTYPE(x.dtype() == f64, name, ": input ", i, " requires grad but is ", x.dtype(),
                      "; gradcheck needs f64 inputs");
    for (int64_t d = 0; d < x.dim(); ++d)
      SPEAR_CHECK_SHAPE(x.strides()[d] != 0 || x.shape()[d] <= 1, name, ": input ", i,
                        " is an expanded view (stride 0); pass a contiguous copy");
  }

  // Analytic: one backward pass with v as the output gradient.
  for (Tensor x : inputs)
    if (x.defined() && x.requires_grad()) x.zero_grad();
  Tensor out = fn(inputs);
  SPEAR_CHECK_DTYPE(out.is_floating_point(), name, ": the function's output must be floating, got ",
                    out.dtype());
  Generator gen(options.seed);
  Tensor v = randn(out.shape(), f64, &gen);
  if (out.requires_grad()) out.backward(v.to(out.dtype()));

  GradcheckResult result;
  std::ostringstream report;
  int shown = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor x = inputs[i];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor grad = x.grad().defined() ? x.grad().to(f64).contiguous() : zeros(x.shape(), f64);
    std::vector<double> analytic = grad.to_vector<double>();
    double* data = static_cast<double*>(x.storage()->data());
    std::vector<int64_t> offsets = element_offsets(x);
    for (size_t e = 0; e < offsets.size(); ++e) {
      double& xe = data[x.offset() + offsets[e]];
      const double saved = xe;
      xe = saved + options.eps;
      double plus = weighted_sum(fn, inputs, v);
      xe = saved - options.eps;
      double minus = weighted_sum(fn, inputs, v);
      xe = saved;
      double numeric = (plus - minus) / (2 * options.eps);
      double error = std::fabs(analytic[e] - numeric);
      if (!(error <= options.atol + options.rtol * std::fabs(numeric))) {
        result.ok = false;
        if (shown++ < 5)
          report << name << ": input " << i << " element " << e << ": analytic " << analytic[e]
                 << " vs numeric " << numeric << " (error " << error << ")\n";
      }
    }
  }
  result.report = report.str();
  return result;
}

}  // namespace spear
