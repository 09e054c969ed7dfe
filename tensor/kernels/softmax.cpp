// Softmax, log-softmax and logsumexp. All subtract the row max m first, which changes nothing
// mathematically but keeps e^(x - m) <= 1, so logits like 1000 do not overflow:
//   softmax(x)_i     = e^(x_i - m) / s,   s = sum_j e^(x_j - m)
//   log_softmax(x)_i = x_i - m - log s
//   logsumexp(x)     = m + log s
// Exponentials and sums are computed in double, for f32 too. softmax stores e^(x - m) in the
// output before scaling it by 1 / s, so an f32 result is rounded twice (still within 1.5 ulp).
// A row of only -inf has no finite max: logsumexp gives -inf (log of an empty sum), while softmax
// and log_softmax give NaN, as in PyTorch.
#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/kernels/kernels.h"
#include "tensor/kernels/reduce.h"

namespace spear::kernels {
namespace {

// x: (..., N, ...) -> y: same shape, each row along dim normalised.
Tensor softmax_along(const Tensor& x, int64_t dim, bool log, const char* op) {
  dim = wrap_dim(dim, x.dim(), op);
  const Tensor in = contiguous(x);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const DimRows rows(x.shape(), dim);
  const int64_t step = rows.inner;  // between neighbours along dim
  SPEAR_DISPATCH_FLOAT(x.dtype(), op, [&] {
    const scalar_t* xp = in.data_ptr<scalar_t>();
    scalar_t* yp = out.data_ptr<scalar_t>();
    const int64_t work = rows.n * std::min(rows.inner, kBundle);
    parallel_for(0, rows.bundles(), grain_for(work), [&](int64_t lo, int64_t hi) {
      double m[kBundle], s[kBundle];  // per row of the bundle: the max, then the sum
      for (int64_t b = lo; b < hi; ++b) {
        const scalar_t* xb = xp + rows.start(b);
        scalar_t* yb = yp + rows.start(b);
        const int64_t w = rows.width(b);
        std::fill_n(m, w, -std::numeric_limits<double>::infinity());
        std::fill_n(s, w, 0.0);
        for (int64_t k = 0; k < rows.n; ++k)
          for (int64_t j = 0; j < w; ++j)
            m[j] = std::max(m[j], static_cast<double>(xb[k * step + j]));
        for (int64_t k = 0; k < rows.n; ++k)
          for (int64_t j = 0; j < w; ++j) {
            const double e = std::exp(xb[k * step + j] - m[j]);
            if (!log) yb[k * step + j] = static_cast<scalar_t>(e);
            s[j] += e;
          }
        if (log) {
          for (int64_t j = 0; j < w; ++j) s[j] = std::log(s[j]);
          for (int64_t k = 0; k < rows.n; ++k)
            for (int64_t j = 0; j < w; ++j)
              yb[k * step + j] = static_cast<scalar_t>((xb[k * step + j] - m[j]) - s[j]);
        } else {
          for (int64_t j = 0; j < w; ++j) s[j] = 1.0 / s[j];
          for (int64_t k = 0; k < rows.n; ++k)
            for (int64_t j = 0; j < w; ++j)
              yb[k * step + j] = static_cast<scalar_t>(yb[k * step + j] * s[j]);
        }
      }
    });
  });
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  return softmax_along(x, dim, false, "softmax");
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_along(x, dim, true, "log_softmax");
}

// x: (..) -> the reduced dims removed (kept as size 1 with keepdim).
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  ReductionRows rows = reduction_rows(x, dims, keepdim, "logsumexp");
  return SPEAR_DISPATCH_FLOAT(x.dtype(), "logsumexp", [&] {
    // An infinite max is replaced by 0, as PyTorch does: a row of -inf then sums to 0 and gives
    // log 0 = -inf, and a row holding +inf gives +inf, where x - m would have been inf - inf.
    // An empty row (no max) sums to 0 the same way.
    std::vector<double> m(static_cast<size_t>(rows.outer), 0.0);
    if (rows.inner > 0) {
      std::vector<scalar_t> maxes =
          amax(view(rows.data, {rows.outer, rows.inner}), {1}).to_vector<scalar_t>();
      for (int64_t r = 0; r < rows.outer; ++r)
        if (!std::isinf(maxes[r])) m[r] = maxes[r];
    }
    std::vector<double> s = sum_rows<scalar_t>(
        rows, [&](int64_t r, scalar_t v) { return std::exp(static_cast<double>(v) - m[r]); });
    Tensor out = Tensor::empty(rows.out_shape, x.dtype());
    scalar_t* p = out.data_ptr<scalar_t>();
    for (int64_t r = 0; r < rows.outer; ++r) p[r] = static_cast<scalar_t>(m[r] + std::log(s[r]));
    return out;
  });
}

}  // namespace spear::kernels
