// SPEFilter: one attention layer's use of a positional code, with the optional gate (spec 4.2).
//
// Gated, per (h, d), the codes become Qbar' = sqrt(1 - gamma) Qbar + sqrt(gamma) eta, and Kbar'
// likewise with the same eta, so that
//   qhat = sum_d q[..,d] (sqrt(1 - gamma_d) Qbar[..,d,:] + sqrt(gamma_d) eta[h,d,:])
// (the fused filters fold a = sqrt(1 - gamma) and w = sqrt(gamma) eta into each chunk of codes),
// and E[qhat_m . khat_n] = sqrt(R/D) sum_d q_md k_nd ((1 - gamma_d) P_d(m - n) + gamma_d): gamma
// near 1 makes feature d position-free, near 0 purely relative. eta (H, D, R) does not depend
// on the position, so it comes from this layer's own stream (1 + layer) of the code's current
// draw: one value for a whole sequence, which cached decoding needs, and independent across
// layers sharing one code.
#include <cmath>

#include "autograd/ops.h"
#include "nn/init.h"
#include "spe/spe.h"
#include "tensor/random.h"

namespace spear::spe {

SPEFilter::SPEFilter(std::shared_ptr<PositionalCode> code_, bool gated, uint64_t layer,
                     bool owns_code)
    : nn::QKEncoding("SPEFilter"), code(std::move(code_)), layer_(layer) {
  SPEAR_CHECK_T(ConfigError, code != nullptr, "SPEFilter: needs a positional code, got null");
  if (gated) {
    gate = register_parameter("gate", empty({code->heads(), code->features()}));
    nn::init::normal_(gate, 0.0, 1.0);
  }
  if (owns_code) register_module("code", code);
}

// q, k: (B,N,H,D) at positions offset .. offset+N-1 -> qhat, khat: (B,N,H,R)
std::pair<Tensor, Tensor> SPEFilter::forward(const Tensor& q, const Tensor& k,
                                             int64_t offset) const {
  const int64_t H = code->heads(), D = code->features(), R = code->realizations();
  SPEAR_CHECK_SHAPE(q.dim() == 4 && q.shape() == k.shape() && q.size(2) == H && q.size(3) == D,
                    "spe_filter: expected q, k of one shape (B, N, ", H, ", ", D,
                    ") to match the code's heads and features, got q ", q.shape(), ", k ",
                    k.shape());
  if (!gate.defined()) return code->filter(q, k, offset);

  const Tensor gamma = sigmoid(gate);  // (H,D)
  Generator gen(code->stream_seed(1 + layer_));
  const Tensor eta =
      randn({H, D, R}, gate.dtype(), &gen) * std::pow(static_cast<double>(D * R), -0.25);
  // Folded into the codes by the fused filter, so no gated copy of q, k or qhat, khat is made.
  return code->filter(q, k, offset, {sqrt(1.0 - gamma), sqrt(gamma).unsqueeze(-1) * eta});
}

int64_t SPEFilter::output_width(int64_t head_dim) const {
  SPEAR_CHECK_SHAPE(head_dim == code->features(), "spe_filter: the attention's head width ",
                    head_dim, " differs from the positional code's features ", code->features());
  return code->realizations();
}

// lags: (L) -> (H,D,L): (1 - gamma) P + gamma, or P without a gate
Tensor SPEFilter::expected_kernel(const Tensor& lags) const {
  Tensor kernel = code->expected_kernel(lags);
  if (!gate.defined()) return kernel;
  const Tensor gamma = sigmoid(gate).unsqueeze(-1);
  return (1.0 - gamma) * kernel + gamma;
}

std::string SPEFilter::extra_repr() const {
  return str_cat("gated=", gate.defined() ? "true" : "false", ", layer=", layer_,
                 ", realizations=", code->realizations());
}

}  // namespace spear::spe
