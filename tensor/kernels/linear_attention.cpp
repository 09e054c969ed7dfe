// Linear attention (Katharopoulos et al. 2020) on feature-mapped queries and keys.
//
// q, k: (B, N, H, F) non-negative features phi(q), phi(k); v: (B, N, H, M) -> y: (B, N, H, M)
//   non-causal: y_i = q_i^T (sum_j k_j v_j^T) / (q_i . sum_j k_j + eps)
//   causal:     the same sums over j <= i only (inclusive prefix)
//
// Each (batch, head) pair is one task, done start to finish by one thread, so results do not
// depend on the thread count. The causal form is computed chunk by chunk (chunks of kChunk
// positions): inside a chunk a masked (C x C) product, across chunks a running F x M state. All
// products are small GEMMs, and no per-position F x M state is ever stored, forward or backward:
// the backward makes two sweeps, one forward in time (recomputing the state, giving dq) and one
// backward in time (a suffix state R, giving dk and dv). See
// ../shared/reference/linear_attention_lra.md A.1.6 and A.3.2 for the derivation.
#include <algorithm>
#include <vector>

#include "tensor/kernels/blas.h"
#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"

namespace spear::kernels {
namespace {

constexpr int64_t kChunk = 64;

// One (batch, head) slice: row i of q starts at q + i * ld_qk, and so on.
template <typename T>
struct Slice {
  const T *q, *k, *v;
  int64_t n, f, m, ld_qk, ld_v;
};

// A = tril(Qc Kc^T): (n, n) in a buffer with row stride kChunk.
template <typename T>
void causal_scores(const T* qc, const T* kc, int64_t n, int64_t f, int64_t ld, T* a) {
  gemm<T>(false, true, n, n, f, T(1), qc, ld, kc, ld, T(0), a, kChunk);
  for (int64_t i = 0; i < n; ++i) std::fill(a + i * kChunk + i + 1, a + i * kChunk + n, T(0));
}

// y = num / den for one slice (row i of y at y + i * ld_y); also returns den (N) when asked.
template <typename T>
void forward_slice(const Slice<T>& s, bool causal, T eps, T* y, int64_t ld_y, T* den_out) {
  const int64_t n = s.n, f = s.f, m = s.m;
  std::vector<T> state(static_cast<size_t>(f * m), T(0)), z(static_cast<size_t>(f), T(0));
  std::vector<T> den(static_cast<size_t>(n));
  if (!causal) {
    gemm<T>(true, false, f, m, n, T(1), s.k, s.ld_qk, s.v, s.ld_v, T(0), state.data(), m);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < f; ++c) z[c] += s.k[j * s.ld_qk + c];
    gemm<T>(false, false, n, m, f, T(1), s.q, s.ld_qk, state.data(), m, T(0), y, ld_y);
    for (int64_t i = 0; i < n; ++i) {
      T d = eps;
      for (int64_t c = 0; c < f; ++c) d += s.q[i * s.ld_qk + c] * z[c];
      den[i] = d;
    }
  } else {
    std::vector<T> a(static_cast<size_t>(kChunk * kChunk));
    for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
      const int64_t len = std::min(kChunk, n - c0);
      const T *qc = s.q + c0 * s.ld_qk, *kc = s.k + c0 * s.ld_qk, *vc = s.v + c0 * s.ld_v;
      T* yc = y + c0 * ld_y;
      causal_scores(qc, kc, len, f, s.ld_qk, a.data());
      // num = Qc S + A Vc ;  den = Qc z + rowsum(A) + eps
      gemm<T>(false, false, len, m, f, T(1), qc, s.ld_qk, state.data(), m, T(0), yc, ld_y);
      gemm<T>(false, false, len, m, len, T(1), a.data(), kChunk, vc, s.ld_v, T(1), yc, ld_y);
      for (int64_t i = 0; i < len; ++i) {
        T d = eps;
        for (int64_t c = 0; c < f; ++c) d += qc[i * s.ld_qk + c] * z[c];
        for (int64_t j = 0; j <= i; ++j) d += a[i * kChunk + j];
        den[c0 + i] = d;
      }
      // S += Kc^T Vc ;  z += colsum(Kc)
      gemm<T>(true, false, f, m, len, T(1), kc, s.ld_qk, vc, s.ld_v, T(1), state.data(), m);
      for (int64_t j = 0; j < len; ++j)
        for (int64_t c = 0; c < f; ++c) z[c] += kc[j * s.ld_qk + c];
    }
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < m; ++c) y[i * ld_y + c] /= den[i];
  if (den_out) std::copy(den.begin(), den.end(), den_out);
}

// dnum = g / den and dden_i = -(g_i . y_i) / den_i; y, dnum: (N, M) row-contiguous.
template <typename T>
void output_grads(const Slice<T>& s, const T* g, const T* y, const T* den, T* dnum, T* dden) {
  for (int64_t i = 0; i < s.n; ++i) {
    T dot = 0;
    for (int64_t c = 0; c < s.m; ++c) {
      dnum[i * s.m + c] = g[i * s.ld_v + c] / den[i];
      dot += g[i * s.ld_v + c] * y[i * s.m + c];
    }
    dden[i] = -dot / den[i];
  }
}

template <typename T>
void backward_noncausal(const Slice<T>& s, const T* dnum, const T* dden, T* dq, T* dk, T* dv) {
  const int64_t n = s.n, f = s.f, m = s.m;
  std::vector<T> kv(static_cast<size_t>(f * m)), z(static_cast<size_t>(f), T(0));
  std::vector<T> dkv(static_cast<size_t>(f * m)), dz(static_cast<size_t>(f), T(0));
  gemm<T>(true, false, f, m, n, T(1), s.k, s.ld_qk, s.v, s.ld_v, T(0), kv.data(), m);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < f; ++c) z[c] += s.k[j * s.ld_qk + c];
  // dq = dnum KV^T + dden z^T
  gemm<T>(false, true, n, f, m, T(1), dnum, m, kv.data(), m, T(0), dq, s.ld_qk);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < f; ++c) {
      dq[i * s.ld_qk + c] += dden[i] * z[c];
      dz[c] += dden[i] * s.q[i * s.ld_qk + c];
    }
  // dKV = Q^T dnum ;  dk = V dKV^T + 1 dz^T ;  dv = K dKV
  gemm<T>(true, false, f, m, n, T(1), s.q, s.ld_qk, dnum, m, T(0), dkv.data(), m);
  gemm<T>(false, true, n, f, m, T(1), s.v, s.ld_v, dkv.data(), m, T(0), dk, s.ld_qk);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < f; ++c) dk[j * s.ld_qk + c] += dz[c];
  gemm<T>(false, false, n, m, f, T(1), s.k, s.ld_qk, dkv.data(), m, T(0), dv, s.ld_v);
}

// P = tril(dnum_c Vc^T + dden_c 1^T): how much each (i, j <= i) pair of the chunk passes back.
template <typename T>
void causal_pass_back(const T* dnum_c, const T* dden_c, const T* vc, int64_t len, int64_t m,
                      int64_t ld_v, T* p) {
  gemm<T>(false, true, len, len, m, T(1), dnum_c, m, vc, ld_v, T(0), p, kChunk);
  for (int64_t i = 0; i < len; ++i) {
    for (int64_t j = 0; j <= i; ++j) p[i * kChunk + j] += dden_c[i];
    std::fill(p + i * kChunk + i + 1, p + i * kChunk + len, T(0));
  }
}

template <typename T>
void backward_causal(const Slice<T>& s, const T* dnum, const T* dden, T* dq, T* dk, T* dv) {
  const int64_t n = s.n, f = s.f, m = s.m;
  std::vector<T> state(static_cast<size_t>(f * m), T(0)), z(static_cast<size_t>(f), T(0));
  std::vector<T> a(static_cast<size_t>(kChunk * kChunk)), p(static_cast<size_t>(kChunk * kChunk));
  // Sweep 1, forward in time: dq_c = dnum_c S^T + dden_c z^T + P Kc, with S, z before the chunk.
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t len = std::min(kChunk, n - c0);
    const T *kc = s.k + c0 * s.ld_qk, *vc = s.v + c0 * s.ld_v;
    const T *dnum_c = dnum + c0 * m, *dden_c = dden + c0;
    T* dqc = dq + c0 * s.ld_qk;
    causal_pass_back(dnum_c, dden_c, vc, len, m, s.ld_v, p.data());
    gemm<T>(false, true, len, f, m, T(1), dnum_c, m, state.data(), m, T(0), dqc, s.ld_qk);
    for (int64_t i = 0; i < len; ++i)
      for (int64_t c = 0; c < f; ++c) dqc[i * s.ld_qk + c] += dden_c[i] * z[c];
    gemm<T>(false, false, len, f, len, T(1), p.data(), kChunk, kc, s.ld_qk, T(1), dqc, s.ld_qk);
    gemm<T>(true, false, f, m, len, T(1), kc, s.ld_qk, vc, s.ld_v, T(1), state.data(), m);
    for (int64_t j = 0; j < len; ++j)
      for (int64_t c = 0; c < f; ++c) z[c] += kc[j * s.ld_qk + c];
  }
  // Sweep 2, backward in time, with the suffix state R = sum_{later} Q^T dnum, r = sum Q^T dden:
  //   dk_c = Vc R^T + 1 r^T + P^T Qc ;  dv_c = Kc R + A^T dnum_c
  std::vector<T>& suffix = state;
  std::vector<T>& r = z;
  std::fill(suffix.begin(), suffix.end(), T(0));
  std::fill(r.begin(), r.end(), T(0));
  const int64_t last = (n - 1) / kChunk * kChunk;
  for (int64_t c0 = last; c0 >= 0 && n > 0; c0 -= kChunk) {
    const int64_t len = std::min(kChunk, n - c0);
    const T *qc = s.q + c0 * s.ld_qk, *kc = s.k + c0 * s.ld_qk, *vc = s.v + c0 * s.ld_v;
    const T *dnum_c = dnum + c0 * m, *dden_c = dden + c0;
    T *dkc = dk + c0 * s.ld_qk, *dvc = dv + c0 * s.ld_v;
    causal_scores(qc, kc, len, f, s.ld_qk, a.data());
    causal_pass_back(dnum_c, dden_c, vc, len, m, s.ld_v, p.data());
    gemm<T>(false, true, len, f, m, T(1), vc, s.ld_v, suffix.data(), m, T(0), dkc, s.ld_qk);
    for (int64_t j = 0; j < len; ++j)
      for (int64_t c = 0; c < f; ++c) dkc[j * s.ld_qk + c] += r[c];
    gemm<T>(true, false, len, f, len, T(1), p.data(), kChunk, qc, s.ld_qk, T(1), dkc, s.ld_qk);
    gemm<T>(false, false, len, m, f, T(1), kc, s.ld_qk, suffix.data(), m, T(0), dvc, s.ld_v);
    gemm<T>(true, false, len, m, len, T(1), a.data(), kChunk, dnum_c, m, T(1), dvc, s.ld_v);
    gemm<T>(true, false, f, m, len, T(1), qc, s.ld_qk, dnum_c, m, T(1), suffix.data(), m);
    for (int64_t i = 0; i < len; ++i)
      for (int64_t c = 0; c < f; ++c) r[c] += dden_c[i] * qc[i * s.ld_qk + c];
  }
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const char* op) {
  SPEAR_CHECK_SHAPE(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op,
                    ": expected q, k: (B, N, H, F) and v: (B, N, H, M), got ", q.shape(), ", ",
                    k.shape(), ", ", v.shape());
  SPEAR_CHECK_SHAPE(q.shape() == k.shape() && v.size(0) == q.size(0) && v.size(1) == q.size(1) &&
                        v.size(2) == q.size(2),
                    op, ": shapes do not match: q ", q.shape(), ", k ", k.shape(), ", v ",
                    v.shape());
  SPEAR_CHECK_DTYPE(q.dtype() == k.dtype() && q.dtype() == v.dtype(), op,
                    ": dtypes differ: ", q.dtype(), ", ", k.dtype(), ", ", v.dtype());
}

// Runs fn(slice, b, h, offsets) for every (batch, head) pair in parallel.
template <typename T, typename Fn>
void for_each_slice(const Tensor& q, const Tensor& k, const Tensor& v, Fn fn) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), F = q.size(3), M = v.size(3);
  const T *pq = q.data_ptr<T>(), *pk = k.data_ptr<T>(), *pv = v.data_ptr<T>();
  parallel_for(0, B * H, grain_for(N * (F + M) * std::max<int64_t>(F, 8)),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t bh = lo; bh < hi; ++bh) {
                   const int64_t b = bh / H, h = bh % H;
                   const int64_t qk_off = b * N * H * F + h * F, v_off = b * N * H * M + h * M;
                   Slice<T> s{pq + qk_off, pk + qk_off, pv + v_off, N, F, M, H * F, H * M};
                   fn(s, bh, qk_off, v_off);
                 }
               });
}

}  // namespace

Tensor linear_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, bool causal,
                        double eps) {
  check_inputs(q_in, k_in, v_in, "linear_attention");
  Tensor q = contiguous(q_in), k = contiguous(k_in), v = contiguous(v_in);
  Tensor y = Tensor::empty(v.shape(), v.dtype());
  SPEAR_DISPATCH_FLOAT(q.dtype(), "linear_attention", [&] {
    using T = scalar_t;
    T* py = y.data_ptr<T>();
    for_each_slice<T>(q, k, v, [&](const Slice<T>& s, int64_t, int64_t, int64_t v_off) {
      forward_slice<T>(s, causal, static_cast<T>(eps), py + v_off, s.ld_v, nullptr);
    });
  });
  return y;
}

std::vector<Tensor> linear_attention_backward(const Tensor& q_in, const Tensor& k_in,
                                              const Tensor& v_in, const Tensor& grad_in,
                                              bool causal, double eps) {
  check_inputs(q_in, k_in, v_in, "linear_attention backward");
  SPEAR_CHECK_SHAPE(grad_in.shape() == v_in.shape(), "linear_attention backward: grad shape ",
                    grad_in.shape(), " != output shape ", v_in.shape());
  Tensor q = contiguous(q_in), k = contiguous(k_in), v = contiguous(v_in);
  Tensor g = contiguous(grad_in);
  Tensor dq = Tensor::empty(q.shape(), q.dtype()), dk = Tensor::empty(k.shape(), k.dtype());
  Tensor dv = Tensor::empty(v.shape(), v.dtype());
  SPEAR_DISPATCH_FLOAT(q.dtype(), "linear_attention backward", [&] {
    using T = scalar_t;
    const T* pg = g.data_ptr<T>();
    T *pdq = dq.data_ptr<T>(), *pdk = dk.data_ptr<T>(), *pdv = dv.data_ptr<T>();
    for_each_slice<T>(q, k, v, [&](const Slice<T>& s, int64_t, int64_t qk_off, int64_t v_off) {
      // The forward is recomputed (y and den): only q, k, v are kept between the passes.
      std::vector<T> y(static_cast<size_t>(s.n * s.m)), den(static_cast<size_t>(s.n));
      std::vector<T> dnum(static_cast<size_t>(s.n * s.m)), dden(static_cast<size_t>(s.n));
      forward_slice<T>(s, causal, static_cast<T>(eps), y.data(), s.m, den.data());
      output_grads<T>(s, pg + v_off, y.data(), den.data(), dnum.data(), dden.data());
      if (causal)
        backward_causal<T>(s, dnum.data(), dden.data(), pdq + qk_off, pdk + qk_off, pdv + v_off);
      else
        backward_noncausal<T>(s, dnum.data(), dden.data(), pdq + qk_off, pdk + qk_off, pdv + v_off);
    });
  });
  return {dq, dk, dv};
}

}  // namespace spear::kernels
