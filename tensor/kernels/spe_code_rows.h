// One position's SPE code applied to the batch's rows of one head, the step both fused filters
// (spe_sine.cpp, spe_conv.cpp) repeat for every (position, head):
//   y (B, R) = x (B, D) code (D, R),   backward: dx = g code^T,  dcode = x^T g.
// The shapes are tiny (8 x 16 x 64 in the benchmarks), where a BLAS call costs about as much as
// its work, and there are N H of them per side. Each output row here is a weighted sum of rows,
// run along the row in vector registers, and every sum runs in a fixed order. Also here: the SPE
// gate applied to a block of codes, and its backward.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace spear::kernels {

// out[j] = sum_k coef[k * ld_coef] rows[k * ld_rows + j] for j < n, summed over k in order. The
// outputs go kLanes at a time through a fixed-size accumulator, which the compiler keeps in vector
// registers for the whole sum over k, instead of loading and storing out at every k.
template <typename T>
void sum_scaled_rows(int64_t count, const T* coef, int64_t ld_coef, const T* rows, int64_t ld_rows,
                     int64_t n, T* out) {
  constexpr int64_t kLanes = 16;
  int64_t j0 = 0;
  for (; j0 + kLanes <= n; j0 += kLanes) {
    T acc[kLanes] = {};
    for (int64_t k = 0; k < count; ++k) {
      const T c = coef[k * ld_coef];
      const T* row = rows + k * ld_rows + j0;
      for (int64_t l = 0; l < kLanes; ++l) acc[l] += c * row[l];
    }
    std::copy(acc, acc + kLanes, out + j0);
  }
  for (int64_t j = j0; j < n; ++j) {
    T acc = 0;
    for (int64_t k = 0; k < count; ++k) acc += coef[k * ld_coef] * rows[k * ld_rows + j];
    out[j] = acc;
  }
}

// y rows (stride ld_y) = x rows (stride ld_x) times code (D, R) packed.
template <typename T>
void apply_code(const T* x, int64_t ld_x, const T* code, int64_t B, int64_t D, int64_t R, T* y,
                int64_t ld_y) {
  for (int64_t b = 0; b < B; ++b) sum_scaled_rows(D, x + b * ld_x, 1, code, R, R, y + b * ld_y);
}

// dx rows (stride ld_dx) = g rows (stride ld_g) times code^T, through code^T (R, D), kept in a
// buffer of the calling thread, so that each output row is again a sum of rows.
template <typename T>
void apply_code_input_grad(const T* g, int64_t ld_g, const T* code, int64_t B, int64_t D, int64_t R,
                           T* dx, int64_t ld_dx) {
  thread_local std::vector<T> scratch;
  scratch.resize(static_cast<size_t>(R * D));
  for (int64_t d = 0; d < D; ++d)
    for (int64_t r = 0; r < R; ++r) scratch[r * D + d] = code[d * R + r];
  for (int64_t b = 0; b < B; ++b)
    sum_scaled_rows(R, g + b * ld_g, 1, scratch.data(), D, D, dx + b * ld_dx);
}

// dcode (D, R) packed = x^T g: row d sums g's rows weighted by column d of x.
template <typename T>
void apply_code_code_grad(const T* x, int64_t ld_x, const T* g, int64_t ld_g, int64_t B, int64_t D,
                          int64_t R, T* dcode) {
  for (int64_t d = 0; d < D; ++d) sum_scaled_rows(B, x + d, ld_x, g, ld_g, R, dcode + d * R);
}

// The gate folded into a block of codes (SpeGate, spe.h): rows (rows, channels, R) packed, with
// channel c scaled by a[c] and shifted by w[c, :]:  gated[i, c, :] = a[c] code[i, c, :] + w[c, :].
template <typename T>
void gate_codes(const T* a, const T* w, int64_t rows, int64_t channels, int64_t R, const T* code,
                T* gated) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < channels; ++c) {
      const T* in = code + (i * channels + c) * R;
      T* out = gated + (i * channels + c) * R;
      for (int64_t r = 0; r < R; ++r) out[r] = a[c] * in[r] + w[c * R + r];
    }
}

// Its backward for the channels [c0, c1): given dgated, the gradient of the gated codes, and the
// codes before the gate,
//   da[c] += sum_i dgated[i, c, :] . code[i, c, :],   dw[c, :] += sum_i dgated[i, c, :],
// then dgated becomes the codes' own gradient, a[c] dgated. Sums run over i in order.
template <typename T>
void gate_codes_backward(const T* a, int64_t rows, int64_t channels, int64_t R, const T* code,
                         T* dgated, int64_t c0, int64_t c1, double* da, T* dw) {
  constexpr int64_t kLanes = 16;  // partial sums of the dot, so its loop vectorises
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t i = 0; i < rows; ++i) {
      const T* in = code + (i * channels + c) * R;
      T* d = dgated + (i * channels + c) * R;
      T lanes[kLanes] = {};
      int64_t r = 0;
      for (; r + kLanes <= R; r += kLanes)
        for (int64_t l = 0; l < kLanes; ++l) lanes[l] += d[r + l] * in[r + l];
      T dot = 0;
      for (int64_t l = 0; l < kLanes; ++l) dot += lanes[l];
      for (; r < R; ++r) dot += d[r] * in[r];
      for (int64_t e = 0; e < R; ++e) {
        dw[c * R + e] += d[e];
        d[e] *= a[c];
      }
      da[c] += static_cast<double>(dot);
    }
}

}  // namespace spear::kernels
