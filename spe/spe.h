// Stochastic positional encoding (Liutkus et al., ICML 2021): relative positional encoding for
// linear attention. See ../shared/reference/spe_reference.md (the spec; section numbers below).
//
// A PositionalCode draws, per (head h, feature d), R realizations of two jointly stationary
// Gaussian processes Qbar(n), Kbar(n) whose cross-covariance is a learnable kernel P_hd(m - n).
// The per-layer SPEFilter turns queries and keys into
//   qhat[b,n,h,r] = sum_d q[b,n,h,d] Qbar[n,h,d,r],   khat[b,n,h,r] = sum_d k[b,n,h,d]
//   Kbar[n,h,d,r]
// so that E[qhat_m . khat_n] = sqrt(R/D) sum_d q_md k_nd P_d(m - n) (spec 1.3-1.4): the attention
// that follows sees a relative-position-aware logit while staying linear in N.
//
// Randomness (where spear does better than the reference, spec 4.6-4.7, 10.7): every noise value
// is a pure function of (seed, draw, index) through the counter-based generator, so
//   - a draw is fixed for a whole sequence: codes for positions [t0, t0 + L) of one draw are the
//     same numbers whether computed at once, in chunks, or one position at a time (decoding);
//   - codes for N_max truncated to N equal codes for N;
//   - nothing of size N is stored for the noise: any position's noise is computed when needed.
// The training loop selects a new draw every step (set_draw(step)); evaluation and generation use
// one fixed draw, so they are deterministic.
#pragma once
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "nn/attention.h"
#include "nn/module.h"

namespace spear::spe {

class PositionalCode : public nn::Module {
 public:
  PositionalCode(std::string type_name, int64_t heads, int64_t features, int64_t realizations,
                 uint64_t seed);
  int64_t heads() const { return heads_; }
  int64_t features() const { return features_; }          // D
  int64_t realizations() const { return realizations_; }  // R

  // Selects draw `draw` (kept in the buffer "draw", so checkpoints restore it).
  void set_draw(int64_t draw);
  int64_t draw() const;
  // The seed of one independent noise stream of the current draw (stream 0: the code noise;
  // filters use their own stream numbers for the gate noise).
  uint64_t stream_seed(uint64_t stream) const;

  // A filter's gate, folded into the codes: Qbar' = a Qbar + w per (h, d), with a: (H, D) and
  // w: (H, D, R) (SPEFilter makes them); undefined tensors: no gate.
  struct Gate {
    Tensor a, w;
  };
  // q, k: (B, N, H, D) at positions offset .. offset + N - 1 -> (qhat, khat): (B, N, H, R).
  // Fused: the (N, H, D, R) codes are never held whole. Differentiable in q, k, every parameter
  // of the code and the gate's a and w.
  virtual std::pair<Tensor, Tensor> filter(const Tensor& q, const Tensor& k, int64_t offset,
                                           const Gate& gate = {}) const = 0;
  // The codes themselves, (1, N, H, D, R) each (Qbar, Kbar), differentiable: the composed path,
  // for tests and for small N.
  virtual std::pair<Tensor, Tensor> codes(int64_t n, int64_t offset) const = 0;
  // P_hd at the given lags tau = m - n (query minus key): lags (L) i64 -> (H, D, L), without the
  // (R D)^(-1/2) factor and without the gate. For 2-D codes, lags (L, 2).
  virtual Tensor expected_kernel(const Tensor& lags) const = 0;

 protected:
  int64_t heads_, features_, realizations_;
  Tensor draw_;  // i64 0-d buffer
  uint64_t seed_;
};

// Sine SPE (spec 2): P_hd(tau) = sum_k softplus(G_hdk)^2 / (2K) cos(2 pi f_hdk tau + theta_hdk),
// f = sigmoid(F) / 2. Parameters freqs F, offsets theta, gains G: (H, D, K), initialised as the
// reference does (F ~ N(0,1) - 4, theta ~ N(0,1), G ~ N(0,1) renormalised).
class SineSPE : public PositionalCode {
 public:
  SineSPE(int64_t heads, int64_t features, int64_t realizations, int64_t sines, uint64_t seed,
          Generator* init_gen = nullptr);
  std::pair<Tensor, Tensor> filter(const Tensor& q, const Tensor& k, int64_t offset,
                                   const Gate& gate = {}) const override;
  std::pair<Tensor, Tensor> codes(int64_t n, int64_t offset) const override;
  Tensor expected_kernel(const Tensor& lags) const override;
  Tensor freqs, offsets, gains;
};

// Convolutional SPE (spec 3): Qbar, Kbar are white noise filtered by learnable depthwise filters,
// P_hd(tau) = the cross-correlation of the two filters. ndim 1: kernel_size {P}, positions
// 0..N-1. ndim 2: kernel_size {P1, P2} on a grid of `grid` = {N1, N2} (positions are the grid
// cells in row-major order; N must equal N1 * N2). Parameters conv_q and conv_k: (H*D, 1, P...)
// with the reference's names and its swap (conv_k makes Qbar), init U[0,1) / sqrt(prod(P) / 2).
class ConvSPE : public PositionalCode {
 public:
  ConvSPE(int64_t heads, int64_t features, int64_t realizations, std::vector<int64_t> kernel_size,
          std::vector<int64_t> grid, uint64_t seed, Generator* init_gen = nullptr);
  std::pair<Tensor, Tensor> filter(const Tensor& q, const Tensor& k, int64_t offset,
                                   const Gate& gate = {}) const override;
  std::pair<Tensor, Tensor> codes(int64_t n, int64_t offset) const override;
  Tensor expected_kernel(const Tensor& lags) const override;
  Tensor conv_q, conv_k;

 private:
  std::vector<int64_t> kernel_size_, grid_;
};

// The per-layer filter, plugged into MultiheadAttention as its QKEncoding: (q, k) (B, N, H, D)
// -> (qhat, khat) (B, N, H, R). Gated (spec 4.2, PyTorch convention): Qbar' = sqrt(1 - gamma)
// Qbar + sqrt(gamma) eta with gamma = sigmoid(gate), gate: (H, D) ~ N(0, 1), eta (H, D, R) ~
// N(0, 1) (D R)^(-1/4), constant over positions, shared by q and k, drawn from this layer's own
// stream of the code's current draw. The code may be shared by several layers; only the filter
// with owns_code registers it (so its parameters are trained and saved once).
class SPEFilter : public nn::QKEncoding {
 public:
  SPEFilter(std::shared_ptr<PositionalCode> code, bool gated, uint64_t layer, bool owns_code);
  std::pair<Tensor, Tensor> forward(const Tensor& q, const Tensor& k,
                                    int64_t offset) const override;
  int64_t output_width(int64_t head_dim) const override;
  // E[qhat . khat] per (h, d) at the given lags, gate included: (1 - gamma) P + gamma.
  Tensor expected_kernel(const Tensor& lags) const;
  std::shared_ptr<PositionalCode> code;
  Tensor gate;  // (H, D), undefined when not gated

 protected:
  std::string extra_repr() const override;

 private:
  uint64_t layer_;
};

// Every PositionalCode in a model (shared ones once), to select draws: set_draw(model, step).
std::vector<std::shared_ptr<PositionalCode>> positional_codes(const nn::Module& model);
void set_draw(const nn::Module& model, int64_t draw);

}  // namespace spear::spe
