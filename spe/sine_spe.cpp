// Sine SPE (spec 2): per (head, feature), K sinusoids with learnable frequency, phase and gain,
// randomly mixed into R realizations. With f = sigmoid(F) / 2, lambda = softplus(G) and
// eps ~ N(0, 1) (H, D, 2K, R) from stream 0 of the current draw:
//   Z[h,d,c,r]    = lambda[h,d,c/2] eps[h,d,c,r] / sqrt(2K)      (gains duplicated: g0,g0,g1,g1,..)
//   Qbar[n,h,d,r] = (R D)^(-1/4) sum_c OmegaQ[n,h,d,c] Z[h,d,c,r]   (and Kbar with OmegaK)
//   OmegaQ[n,h,d,2k], [2k+1] = cos, sin(2 pi f_hdk n + theta_hdk);  OmegaK: the same, theta = 0
// so E[Qbar(m) Kbar(n)] = (R D)^(-1/2) sum_k lambda_k^2 / (2K) cos(2 pi f_k (m - n) + theta_k).
// The noise does not depend on the positions at all: one (H, D, 2K, R) draw serves every length
// and every offset, so truncation and offset invariance hold by construction.
#include <cmath>

#include "autograd/function.h"
#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "spe/spe.h"
#include "tensor/kernels/spe.h"
#include "tensor/random.h"

namespace spear::spe {
namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

// x: (B,N,H,D), f, theta: (H,D,K) (theta undefined on the key side), z: (H,D,2K,R), the gate's
// a: (H,D) and w: (H,D,R) (both undefined without a gate) -> (B,N,H,R); ctx.dims = {offset}
struct SineSpeFilterFn : Function<SineSpeFilterFn> {
  static constexpr const char* name = "sine_spe_filter";
  static Tensor forward(Context& ctx, const Tensor& x, const Tensor& f, const Tensor& theta,
                        const Tensor& z, const Tensor& a, const Tensor& w, int64_t offset) {
    ctx.dims = {offset};
    ctx.save_for_backward({x, f, z, theta, a, w});
    return kernels::sine_spe_filter(x, f, theta, z, offset, kernels::SpeGate{a, w});
  }
  // y = s (x omega) z: dx = s sum_c omega (g z^T), dz = s (x omega)^T g, and through
  // alpha = 2 pi f p + theta: df = sum_p 2 pi p dalpha, dtheta = sum_p dalpha; the gate's from
  // the gated codes' gradient (tensor/kernels/spe_code_rows.h)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    kernels::SineSpeFilterGrads d =
        kernels::sine_spe_filter_backward(g, ctx.saved(0), ctx.saved(1), ctx.saved(3), ctx.saved(2),
                                          ctx.dims[0], {ctx.saved(4), ctx.saved(5)});
    return {d.dx, d.df, d.dtheta, d.dz, d.da, d.dw};
  }
};
SPEAR_REGISTER_FUNCTION(SineSpeFilterFn);

int64_t sines(const SineSPE& spe) {
  return spe.freqs.size(2);
}

// f = sigmoid(F) / 2 in (0, 1/2): cycles per position, below the Nyquist frequency.
Tensor frequencies(const SineSPE& spe) {
  return sigmoid(spe.freqs) / 2.0;
}

// Z: (H, D, 2K, R), the (unscaled) mixing weights of the current draw; differentiable in G.
Tensor noise_weights(const SineSPE& spe) {
  const int64_t H = spe.heads(), D = spe.features(), K = sines(spe), R = spe.realizations();
  Generator gen(spe.stream_seed(0));
  Tensor eps = randn({H, D, 2 * K, R}, spe.gains.dtype(), &gen);
  // Each gain twice in a row, matching the interleaved cos/sin columns (spec 2.3's historic bug
  // was tiling them instead).
  Tensor gain = softplus(spe.gains).unsqueeze(-1).expand({H, D, K, 2}).reshape({H, D, 2 * K});
  return gain.unsqueeze(-1) * eps / std::sqrt(2.0 * K);
}

double code_scale(const PositionalCode& code) {
  return std::pow(static_cast<double>(code.realizations() * code.features()), -0.25);
}

void check_positions(const char* op, int64_t n, int64_t offset) {
  SPEAR_CHECK_SHAPE(n >= 0 && offset >= 0, op, ": positions need n >= 0 and offset >= 0, got n ", n,
                    ", offset ", offset);
}

}  // namespace

SineSPE::SineSPE(int64_t heads, int64_t features, int64_t realizations, int64_t sines,
                 uint64_t seed, Generator* init_gen)
    : PositionalCode("SineSPE", heads, features, realizations, seed) {
  SPEAR_CHECK_T(ConfigError, sines > 0, "SineSPE: sines must be positive, got ", sines);
  const Shape shape = {heads, features, sines};
  // The reference's init, drawn in this order: F ~ N(0,1) - 4 (frequencies around
  // sigmoid(-4)/2 = 0.009 cycles per position, i.e. long range), theta ~ N(0,1), and G ~ N(0,1)
  // divided by sqrt(|G|_2 over K) / 2 (on the raw parameter, before softplus).
  NoGradGuard no_grad;
  Tensor f = randn(shape, f64, init_gen) - 4.0;
  Tensor theta = randn(shape, f64, init_gen);
  Tensor g = randn(shape, f64, init_gen);
  g = g / (sqrt(sqrt(sum(g * g, {2}, true))) / 2.0);
  freqs = register_parameter("freqs", f.to(f32));
  offsets = register_parameter("offsets", theta.to(f32));
  gains = register_parameter("gains", g.to(f32));
}

// q, k: (B,N,H,D) at positions offset .. offset+N-1 -> qhat, khat: (B,N,H,R)
std::pair<Tensor, Tensor> SineSPE::filter(const Tensor& q, const Tensor& k, int64_t offset,
                                          const Gate& gate) const {
  SPEAR_CHECK_SHAPE(
      q.dim() == 4 && q.shape() == k.shape() && q.size(2) == heads_ && q.size(3) == features_,
      "sine_spe.filter: expected q, k of one shape (B, N, ", heads_, ", ", features_, "), got q ",
      q.shape(), ", k ", k.shape());
  SPEAR_CHECK_DTYPE(q.dtype() == freqs.dtype() && k.dtype() == freqs.dtype(),
                    "sine_spe.filter: q, k are ", q.dtype(), ", ", k.dtype(),
                    " but the parameters are ", freqs.dtype());
  check_positions("sine_spe.filter", q.size(1), offset);
  const Tensor f = frequencies(*this), z = noise_weights(*this);
  return {SineSpeFilterFn::apply(q, f, offsets, z, gate.a, gate.w, offset),
          SineSpeFilterFn::apply(k, f, Tensor(), z, gate.a, gate.w, offset)};
}

// -> Qbar, Kbar: (1,N,H,D,R) at positions offset .. offset+N-1
std::pair<Tensor, Tensor> SineSPE::codes(int64_t n, int64_t offset) const {
  check_positions("sine_spe.codes", n, offset);
  const int64_t H = heads_, D = features_, K = sines(*this);
  const DType dtype = freqs.dtype();
  // alpha: (H,D,N,K), in double whatever the dtype, as the fused filter does (spec 10.8).
  Tensor p = arange(static_cast<double>(offset), static_cast<double>(offset + n), 1.0, f64);
  Tensor alpha_k = frequencies(*this).to(f64).unsqueeze(2) * p.reshape({1, 1, n, 1}) * kTwoPi;
  Tensor alpha_q = alpha_k + offsets.to(f64).unsqueeze(2);
  // Omega: (H,D,N,2K), columns [cos_0, sin_0, cos_1, sin_1, ...]
  auto bases = [&](const Tensor& alpha) {
    return stack({cos(alpha), sin(alpha)}, -1).reshape({H, D, n, 2 * K}).to(dtype);
  };
  const Tensor z = noise_weights(*this) * code_scale(*this);  // (H,D,2K,R)
  auto code = [&](const Tensor& alpha) {
    return matmul(bases(alpha), z).permute({2, 0, 1, 3}).unsqueeze(0);  // (1,N,H,D,R)
  };
  return {code(alpha_q), code(alpha_k)};
}

// lags: (L) i64 -> P: (H,D,L), P[h,d,l] = sum_k softplus(G)^2 / (2K) cos(2 pi f lag + theta)
Tensor SineSPE::expected_kernel(const Tensor& lags) const {
  SPEAR_CHECK_SHAPE(lags.dim() == 1, "sine_spe.expected_kernel: lags must be (L), got ",
                    lags.shape());
  SPEAR_CHECK_DTYPE(lags.dtype() == i64, "sine_spe.expected_kernel: lags must be i64, got ",
                    lags.dtype());
  const int64_t K = sines(*this);
  Tensor tau = lags.to(f64);
  Tensor alpha = frequencies(*this).to(f64).unsqueeze(-1) * tau * kTwoPi +
                 offsets.to(f64).unsqueeze(-1);                                  // (H,D,K,L)
  Tensor power = (softplus(gains) * softplus(gains) / (2.0 * K)).unsqueeze(-1);  // (H,D,K,1)
  return sum(power * cos(alpha).to(power.dtype()), {2});
}

}  // namespace spear::spe
