// Softmax attention in tiles, with a streaming softmax (the "flash attention" scheme of Dao et
// al. 2022, on a CPU): nothing of size N x N is ever stored.
//
// q, k: (B, N, H, D), v: (B, N, H, M), key_padding_mask: (B, N) or undefined -> y: (B, N, H, M)
//   y_i = sum_j softmax_j(scale q_i . k_j) v_j over the keys j that query i may see (j <= i when
//   causal, unpadded keys only). A query that may see no key outputs zeros.
//
// Forward, per (batch, head): for a block of queries, walk the key blocks keeping for each query
// the running max m, the running sum l of exp(s - m) and the running weighted sum of values; each
// new block rescales them by exp(m_old - m_new). The log-sum-exp lse = m + log l of every query
// is kept (N numbers per head) for the backward.
// Backward: recompute each block of probabilities p = exp(s - lse) from q, k and lse, then
//   dv_j += p^T dy,  dp = dy v^T,  ds = p (dp - rowsum(dy * y)),  dq += scale ds k,  dk += scale
//   ds^T q.
// Each (batch, head) is one task, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tensor/kernels/attention_inputs.h"
#include "tensor/kernels/blas.h"
#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"

namespace spear::kernels {
namespace {

constexpr int64_t kBlock = 64;

template <typename T>
struct Heads {
  const T *q, *k, *v;
  const int64_t* pad;  // (N) non-zero at padded keys, or null
  int64_t n, d, m, ld_qk, ld_v;
  T scale;
  bool causal;
};

// s = scale q_i k_j^T for query rows [i0, i0 + bi) and key rows [j0, j0 + bj), with keys a query
// may not see set to -inf. Returns false when the whole block is hidden.
template <typename T>
bool scores(const Heads<T>& h, int64_t i0, int64_t bi, int64_t j0, int64_t bj, T* s) {
  if (h.causal && j0 > i0 + bi - 1) return false;
  gemm<T>(false, true, bi, bj, h.d, h.scale, h.q + i0 * h.ld_qk, h.ld_qk, h.k + j0 * h.ld_qk,
          h.ld_qk, T(0), s, kBlock);
  const T hidden = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < bi; ++i)
    for (int64_t j = 0; j < bj; ++j)
      if ((h.causal && j0 + j > i0 + i) || (h.pad && h.pad[j0 + j] != 0))
        s[i * kBlock + j] = hidden;
  return true;
}

template <typename T>
void forward_heads(const Heads<T>& h, T* y, T* lse) {
  std::vector<T> s(kBlock * kBlock), acc(static_cast<size_t>(kBlock * h.m));
  std::vector<T> run_max(kBlock), run_sum(kBlock);
  for (int64_t i0 = 0; i0 < h.n; i0 += kBlock) {
    const int64_t bi = std::min(kBlock, h.n - i0);
    std::fill(run_max.begin(), run_max.end(), -std::numeric_limits<T>::infinity());
    std::fill(run_sum.begin(), run_sum.end(), T(0));
    std::fill(acc.begin(), acc.end(), T(0));
    for (int64_t j0 = 0; j0 < h.n; j0 += kBlock) {
      const int64_t bj = std::min(kBlock, h.n - j0);
      if (!scores(h, i0, bi, j0, bj, s.data())) break;
      for (int64_t i = 0; i < bi; ++i) {
        T* row = &s[i * kBlock];
        const T block_max = *std::max_element(row, row + bj);
        const T new_max = std::max(run_max[i], block_max);
        if (new_max == -std::numeric_limits<T>::infinity()) {  // nothing visible yet
          std::fill(row, row + bj, T(0));
          continue;
        }
        const T rescale = std::exp(run_max[i] - new_max);  // exp(-inf) = 0 on the first block
        T sum = 0;
        for (int64_t j = 0; j < bj; ++j) sum += (row[j] = std::exp(row[j] - new_max));
        run_sum[i] = run_sum[i] * rescale + sum;
        run_max[i] = new_max;
        for (int64_t c = 0; c < h.m; ++c) acc[i * h.m + c] *= rescale;
      }
      gemm<T>(false, false, bi, h.m, bj, T(1), s.data(), kBlock, h.v + j0 * h.ld_v, h.ld_v, T(1),
              acc.data(), h.m);
    }
    for (int64_t i = 0; i < bi; ++i) {
      const bool seen = run_sum[i] > 0;
      lse[i0 + i] = seen ? run_max[i] + std::log(run_sum[i]) : -std::numeric_limits<T>::infinity();
      for (int64_t c = 0; c < h.m; ++c)
        y[(i0 + i) * h.ld_v + c] = seen ? acc[i * h.m + c] / run_sum[i] : T(0);
    }
  }
}

template <typename T>
void backward_heads(const Heads<T>& h, const T* y, const T* lse, const T* dy, T* dq, T* dk, T* dv) {
  std::vector<T> p(kBlock * kBlock), dp(kBlock * kBlock), delta(static_cast<size_t>(h.n));
  for (int64_t i = 0; i < h.n; ++i) {
    T dot = 0;
    for (int64_t c = 0; c < h.m; ++c) dot += dy[i * h.ld_v + c] * y[i * h.ld_v + c];
    delta[i] = dot;
    std::fill(dq + i * h.ld_qk, dq + i * h.ld_qk + h.d, T(0));
  }
  for (int64_t j0 = 0; j0 < h.n; j0 += kBlock) {
    const int64_t bj = std::min(kBlock, h.n - j0);
    for (int64_t j = 0; j < bj; ++j) {
      std::fill(dk + (j0 + j) * h.ld_qk, dk + (j0 + j) * h.ld_qk + h.d, T(0));
      std::fill(dv + (j0 + j) * h.ld_v, dv + (j0 + j) * h.ld_v + h.m, T(0));
    }
    for (int64_t i0 = h.causal ? j0 / kBlock * kBlock : 0; i0 < h.n; i0 += kBlock) {
      const int64_t bi = std::min(kBlock, h.n - i0);
      if (!scores(h, i0, bi, j0, bj, p.data())) continue;
      for (int64_t i = 0; i < bi; ++i)
        for (int64_t j = 0; j < bj; ++j) {
          T& x = p[i * kBlock + j];
          x = std::isinf(lse[i0 + i]) ? T(0) : std::exp(x - lse[i0 + i]);
        }
      const T* dy_i = dy + i0 * h.ld_v;
      // dv_j += p^T dy ;  dp = dy v_j^T ;  ds = p (dp - delta) (in place in dp)
      gemm<T>(true, false, bj, h.m, bi, T(1), p.data(), kBlock, dy_i, h.ld_v, T(1),
              dv + j0 * h.ld_v, h.ld_v);
      gemm<T>(false, true, bi, bj, h.m, T(1), dy_i, h.ld_v, h.v + j0 * h.ld_v, h.ld_v, T(0),
              dp.data(), kBlock);
      for (int64_t i = 0; i < bi; ++i)
        for (int64_t j = 0; j < bj; ++j)
          dp[i * kBlock + j] = p[i * kBlock + j] * (dp[i * kBlock + j] - delta[i0 + i]);
      // dq_i += scale ds k_j ;  dk_j += scale ds^T q_i
      gemm<T>(false, false, bi, h.d, bj, h.scale, dp.data(), kBlock, h.k + j0 * h.ld_qk, h.ld_qk,
              T(1), dq + i0 * h.ld_qk, h.ld_qk);
      gemm<T>(true, false, bj, h.d, bi, h.scale, dp.data(), kBlock, h.q + i0 * h.ld_qk, h.ld_qk,
              T(1), dk + j0 * h.ld_qk, h.ld_qk);
    }
  }
}

// Calls fn(heads, qk_offset, v_offset, b, h) for every (batch, head) in parallel.
template <typename T, typename Fn>
void for_each_head(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& pad,
                   bool causal, Fn fn) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), D = q.size(3), M = v.size(3);
  const T *pq = q.data_ptr<T>(), *pk = k.data_ptr<T>(), *pv = v.data_ptr<T>();
  const int64_t* pp = pad.defined() ? pad.data_ptr<int64_t>() : nullptr;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t bh = lo; bh < hi; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const int64_t qk_off = b * N * H * D + h * D, v_off = b * N * H * M + h * M;
      Heads<T> heads{pq + qk_off, pk + qk_off, pv + v_off, pp ? pp + b * N : nullptr,
                     N,           D,           M,          H * D,
                     H * M,       scale,       causal};
      fn(heads, qk_off, v_off, bh);
    }
  });
}

}  // namespace

std::vector<Tensor> softmax_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                      const Tensor& key_padding_mask, bool causal) {
  check_attention_inputs(q_in, k_in, v_in, key_padding_mask, "softmax_attention");
  Tensor q = contiguous(q_in), k = contiguous(k_in), v = contiguous(v_in);
  Tensor pad = padding_as_i64(key_padding_mask);
  Tensor y = Tensor::empty(v.shape(), v.dtype());
  Tensor lse = Tensor::empty({q.size(0), q.size(2), q.size(1)}, q.dtype());  // (B, H, N)
  SPEAR_DISPATCH_FLOAT(q.dtype(), "softmax_attention", [&] {
    using T = scalar_t;
    T *py = y.data_ptr<T>(), *plse = lse.data_ptr<T>();
    const int64_t N = q.size(1);
    for_each_head<T>(q, k, v, pad, causal,
                     [&](const Heads<T>& h, int64_t, int64_t v_off, int64_t bh) {
                       forward_heads<T>(h, py + v_off, plse + bh * N);
                     });
  });
  return {y, lse};
}

std::vector<Tensor> softmax_attention_backward(const Tensor& q_in, const Tensor& k_in,
                                               const Tensor& v_in, const Tensor& key_padding_mask,
                                               bool causal, const Tensor& y_in,
                                               const Tensor& lse_in, const Tensor& grad_in) {
  check_attention_inputs(q_in, k_in, v_in, key_padding_mask, "softmax_attention backward");
  Tensor q = contiguous(q_in), k = contiguous(k_in), v = contiguous(v_in);
  Tensor y = contiguous(y_in), lse = contiguous(lse_in), g = contiguous(grad_in);
  Tensor pad = padding_as_i64(key_padding_mask);
  Tensor dq = Tensor::empty(q.shape(), q.dtype()), dk = Tensor::empty(k.shape(), k.dtype());
  Tensor dv = Tensor::empty(v.shape(), v.dtype());
  SPEAR_DISPATCH_FLOAT(q.dtype(), "softmax_attention backward", [&] {
    using T = scalar_t;
    const T *py = y.data_ptr<T>(), *plse = lse.data_ptr<T>(), *pg = g.data_ptr<T>();
    T *pdq = dq.data_ptr<T>(), *pdk = dk.data_ptr<T>(), *pdv = dv.data_ptr<T>();
    const int64_t N = q.size(1);
    for_each_head<T>(q, k, v, pad, causal,
                     [&](const Heads<T>& h, int64_t qk_off, int64_t v_off, int64_t bh) {
                       backward_heads<T>(h, py + v_off, plse + bh * N, pg + v_off, pdq + qk_off,
                                         pdk + qk_off, pdv + v_off);
                     });
  });
  return {dq, dk, dv};
}

}  // namespace spear::kernels
