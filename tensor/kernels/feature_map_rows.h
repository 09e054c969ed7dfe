// The element-wise feature maps of linear attention, applied by the fused kernel to a chunk of
// rows as it reads them (tensor/kernels/linear_attention.cpp), and their derivatives.
#pragma once
#include <algorithm>
#include <cstdint>

#include "tensor/kernels/blas.h"
#include "tensor/kernels/fast_exp.h"
#include "tensor/linear_attention_options.h"

namespace spear::kernels {

template <typename T>
struct FeatureMap {
  FeatureMapKind kind;
  T relu_eps;
  // favor: W (f, d) packed, the input width d, and the scales D^(-1/4) of x^ and m^(-1/2).
  const T* w = nullptr;
  int64_t d = 0;
  T input_scale = 1, output_scale = 1;
};

// FAVOR+ rows: u = x^ W^T for the chunk in one GEMM, then per row phi = m^(-1/2) exp(u - c) with
// c = |x^|^2 / 2 for keys and c = max(u) for queries (the largest u - |x^|^2 / 2 is max(u) -
// |x^|^2 / 2, so the norm term cancels). out (len, f) packed; padded rows are 0.
template <typename T>
void favor_rows(const FeatureMap<T>& phi, const T* x, int64_t ld, int64_t len, int64_t f,
                const int64_t* pad, bool is_query, T* out) {
  gemm<T>(false, true, len, f, phi.d, phi.input_scale, x, ld, phi.w, phi.d, T(0), out, f);
  for (int64_t i = 0; i < len; ++i) {
    const T* row = x + i * ld;
    T* o = out + i * f;
    T shift = 0;
    if (is_query) {
      shift = *std::max_element(o, o + f);
    } else {
      for (int64_t c = 0; c < phi.d; ++c) shift += row[c] * row[c];
      shift *= phi.input_scale * phi.input_scale / 2;
    }
    const T scale = pad && pad[i] ? T(0) : phi.output_scale;
    for (int64_t c = 0; c < f; ++c) o[c] = scale * fast_exp(o[c] - shift);
  }
}

// out (len, f) packed = phi(x rows); padded rows are 0, so those keys leave every sum. One loop per
// map, without branches, so each vectorises. is_query matters to FAVOR+ alone.
template <typename T>
void map_rows(const FeatureMap<T>& phi, const T* x, int64_t ld, int64_t len, int64_t f,
              const int64_t* pad, bool is_query, T* out) {
  if (phi.kind == FeatureMapKind::favor) return favor_rows(phi, x, ld, len, f, pad, is_query, out);
  for (int64_t i = 0; i < len; ++i) {
    const T* row = x + i * ld;
    T* o = out + i * f;
    const T keep = pad && pad[i] ? T(0) : T(1);
    switch (phi.kind) {
      case FeatureMapKind::elu:  // elu(x) + 1 = x + 1 above 0, e^x below
        for (int64_t c = 0; c < f; ++c) {
          const T x_c = row[c], negative = x_c > 0 ? T(0) : x_c;
          // Both sides computed, then one picked, so the loop has no branch and vectorises.
          const T e = fast_exp(negative), plus_one = x_c + 1;
          const T phi_c = x_c > 0 ? plus_one : e;
          o[c] = keep * phi_c;
        }
        break;
      case FeatureMapKind::relu:
        for (int64_t c = 0; c < f; ++c) {
          const T x_c = row[c], positive = x_c > 0 ? x_c : T(0);
          o[c] = keep * (positive + phi.relu_eps);
        }
        break;
      default:
        for (int64_t c = 0; c < f; ++c) o[c] = keep * row[c];
    }
  }
}

// FAVOR+: with t = dphi * phi, the gradient of the exponent (whose max, for queries, counts as a
// constant, as the composed map detaches it),
//   dx = D^(-1/4) t W - D^(-1/2) rowsum(t) x,
// the second term from |x^|^2 / 2. dphi is overwritten by t.
template <typename T>
void favor_grad_rows(const FeatureMap<T>& phi, const T* x, int64_t ld, int64_t len, int64_t f,
                     const T* mapped, T* dphi, T* dx) {
  for (int64_t e = 0; e < len * f; ++e) dphi[e] *= mapped[e];
  gemm<T>(false, false, len, phi.d, f, phi.input_scale, dphi, f, phi.w, phi.d, T(0), dx, ld);
  for (int64_t i = 0; i < len; ++i) {
    T t_sum = 0;
    for (int64_t c = 0; c < f; ++c) t_sum += dphi[i * f + c];
    const T coef = t_sum * phi.input_scale * phi.input_scale;
    for (int64_t c = 0; c < phi.d; ++c) dx[i * ld + c] -= coef * x[i * ld + c];
  }
}

// dx rows = dphi (len, f) packed * phi'(x rows), given phi (len, f) = map_rows of the same rows:
// elu's derivative below 0 is e^x = phi itself, so no exp is recomputed. 0 for padded rows (FAVOR+
// gets that from phi = 0 there). dphi is scratch: FAVOR+ overwrites it.
template <typename T>
void map_grad_rows(const FeatureMap<T>& phi, const T* x, int64_t ld, int64_t len, int64_t f,
                   const int64_t* pad, const T* mapped, T* dphi, T* dx) {
  if (phi.kind == FeatureMapKind::favor)
    return favor_grad_rows(phi, x, ld, len, f, mapped, dphi, dx);
  for (int64_t i = 0; i < len; ++i) {
    const T* row = x + i * ld;
    const T *m = mapped + i * f, *d = dphi + i * f;
    T* o = dx + i * ld;
    const T keep = pad && pad[i] ? T(0) : T(1);
    switch (phi.kind) {
      case FeatureMapKind::elu:
        for (int64_t c = 0; c < f; ++c) {
          const T x_c = row[c], m_c = m[c];
          const T derivative = x_c > 0 ? T(1) : m_c;
          o[c] = keep * d[c] * derivative;
        }
        break;
      case FeatureMapKind::relu:
        for (int64_t c = 0; c < f; ++c) {
          const T x_c = row[c], d_c = d[c];
          const T passed = x_c > 0 ? d_c : T(0);
          o[c] = keep * passed;
        }
        break;
      default:
        for (int64_t c = 0; c < f; ++c) o[c] = keep * d[c];
    }
  }
}

}  // namespace spear::kernels
