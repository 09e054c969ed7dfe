// The raw compute of stochastic positional encoding (spe/): fused filters that turn queries and
// keys (B, N, H, D) into (B, N, H, R) without ever holding the (N, H, D, R) codes. No autograd;
// the differentiable Functions around them live next to their modules in spe/. Inputs may be any
// strided view; outputs are new contiguous tensors.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace spear::kernels {

// The SPE gate (spec 4.2) folded into the codes, so that no gated copy of q and k, and no
// position-free term of the outputs, is ever made:
//   code'[n, h, d, :] = a[h, d] code[n, h, d, :] + w[h, d, :]
// with a = sqrt(1 - gamma) and w = sqrt(gamma) eta (spe/filter.cpp). Undefined tensors: no gate.
struct SpeGate {
  Tensor a;  // (H, D)
  Tensor w;  // (H, D, R)
  bool defined() const { return a.defined(); }
};
// A defined gate checked against codes of H heads, D features and R realizations of `dtype`,
// made contiguous; an undefined one as it is. Errors name op. (In spe_sine.cpp; both filters use
// it.)
SpeGate checked_gate(const SpeGate& gate, int64_t H, int64_t D, int64_t R, DType dtype,
                     const char* op);

// ---- spe_sine.cpp ----
// The sine SPE filter (spec 2.2-2.3), positions p = offset + n:
//   y[b,n,h,r] = (R D)^(-1/4) sum_{d,c} x[b,n,h,d] omega[p,h,d,c] z[h,d,c,r]
//   omega[p,h,d,2k] = cos(2 pi f[h,d,k] p + theta[h,d,k]),  omega[p,h,d,2k+1] = sin(...)
// The phase is computed in double whatever the dtype, so it stays accurate at large positions.
// x: (B, N, H, D), f, theta: (H, D, K), z: (H, D, 2K, R) -> y: (B, N, H, R). An undefined theta
// means zero phases (the key side).
Tensor sine_spe_filter(const Tensor& x, const Tensor& f, const Tensor& theta, const Tensor& z,
                       int64_t offset, const SpeGate& gate = {});
struct SineSpeFilterGrads {
  Tensor dx;      // (B, N, H, D)
  Tensor df;      // (H, D, K)
  Tensor dtheta;  // (H, D, K), undefined when theta is
  Tensor dz;      // (H, D, 2K, R)
  Tensor da, dw;  // the gate's, (H, D) and (H, D, R); undefined without a gate
};
// grad: (B, N, H, R) and the forward's inputs -> the gradients of every input. The parameter
// gradients are sums over positions, accumulated in an order fixed by the shapes alone.
SineSpeFilterGrads sine_spe_filter_backward(const Tensor& grad, const Tensor& x, const Tensor& f,
                                            const Tensor& theta, const Tensor& z, int64_t offset,
                                            const SpeGate& gate = {});

// ---- spe_conv.cpp ----
// The conv SPE filter (spec 3.2-3.3). Positions are the cells of a grid of `rows` x `cols`,
// row-major (a 1-D sequence: cols = 1, one row per position, rows counted from time 0). The white
// noise eps[t1, t2, c, r] ~ N(0, 1) covers every row and the columns 0 .. cols + P2 - 2 (the
// filters' reach), and is element
//   ((t1 * (cols + P2 - 1) + t2) * C + c) * R + r
// of the Philox stream `seed` (spear::randn from counter 0 of that seed): a pure function of the
// cell, so any rows can be drawn directly, and a range of rows is one range of counters. With
// n1 counted from first_row, the codes are
//   code[n1, n2, c, r] = scale * sum_{j1, j2} w[c, j1, j2] eps[first_row + n1 + j1, n2 + j2, c, r].
struct ConvSpeGrid {
  uint64_t seed = 0;      // the noise stream
  int64_t first_row = 0;  // the absolute row of the first position (1-D: the time offset)
  int64_t rows = 0;       // the positions are rows x cols cells
  int64_t cols = 1;
  int64_t realizations = 1;  // R
  double scale = 1;          // (R D)^(-1/4)
};
// The noise of rows first_row .. first_row + num_rows - 1 -> (num_rows, noise_cols, C, R).
Tensor conv_spe_noise(uint64_t seed, int64_t first_row, int64_t num_rows, int64_t noise_cols,
                      int64_t channels, int64_t realizations, DType dtype);
// Several sides (queries and keys) share the noise: side i is xs[i]: (B, rows*cols, H, D) with
// weights[i]: (H*D, 1, P1) or (H*D, 1, P1, P2), all sides of one shape -> ys[i]: (B, rows*cols,
// H, R):
//   y[b, n, h, r] = sum_d x[b, n, h, d] code[n, h*D + d, r],
// built chunk_rows grid rows at a time (0: a size chosen from the shapes), so the codes exist
// for one chunk only, and each chunk's noise is drawn once for all sides. A code value does not
// depend on the chunking.
std::vector<Tensor> conv_spe_filter(const std::vector<Tensor>& xs,
                                    const std::vector<Tensor>& weights, const ConvSpeGrid& grid,
                                    int64_t chunk_rows = 0, const SpeGate& gate = {});
// grads[i]: (B, rows*cols, H, R) -> {dx for each side, then dweight for each side, then the
// gate's da and dw when gated}. The codes are rebuilt chunk by chunk; dweight sums the chunks in
// order. The gate is shared by the sides, so its gradients add both sides'.
std::vector<Tensor> conv_spe_filter_backward(const std::vector<Tensor>& xs,
                                             const std::vector<Tensor>& weights,
                                             const std::vector<Tensor>& grads,
                                             const ConvSpeGrid& grid, int64_t chunk_rows = 0,
                                             const SpeGate& gate = {});

}  // namespace spear::kernels
