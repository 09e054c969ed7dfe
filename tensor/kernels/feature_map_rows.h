// The element-wise feature maps of linear attention, applied by the fused kernel to a chunk of
// rows as it reads them (tensor/kernels/linear_attention.cpp), and their derivatives.
#pragma once
#include <cstdint>

#include "tensor/kernels/fast_exp.h"
#include "tensor/linear_attention_options.h"

namespace spear::kernels {

template <typename T>
struct FeatureMap {
  FeatureMapKind kind;
  T relu_eps;
};

// out (len, f) packed = phi(x rows); padded rows are 0, so those keys leave every sum. One loop per
// map, without branches, so each vectorises.
template <typename T>
void map_rows(const FeatureMap<T>& phi, const T* x, int64_t ld, int64_t len, int64_t f,
              const int64_t* pad, T* out) {
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

// dx rows = dphi (len, f) packed * phi'(x rows), given phi (len, f) = map_rows of the same rows:
// elu's derivative below 0 is e^x = phi itself, so no exp is recomputed. 0 for padded rows.
template <typename T>
void map_grad_rows(const FeatureMap<T>& phi, const T* x, int64_t ld, int64_t len, int64_t f,
                   const int64_t* pad, const T* mapped, const T* dphi, T* dx) {
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
