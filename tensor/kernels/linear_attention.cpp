// Linear attention (Katharopoulos et al. 2020) with its feature map fused in.
//
// q, k: (B, N, H, F) raw queries and keys, v: (B, N, H, M), key_padding_mask: (B, N) or undefined
//   -> y: (B, N, H, M)
//   y_i = phi(q_i)^T S / (phi(q_i) . z + eps),  S = sum_j phi(k_j) v_j^T,  z = sum_j phi(k_j)
// over the unpadded keys j (j <= i when causal). phi is elu + 1, relu + eps or the identity
// (when q and k already are features, as FAVOR+ gives).
//
// Every pass walks the sequence in chunks and applies phi to a chunk as it reads it, into a small
// buffer that stays in cache: q and k are read once per pass, and no phi(q), phi(k) tensor is ever
// written to memory. Non-causal: one pass over the keys builds S and z, one over the queries
// reads them. Causal: inside a chunk a masked (C x C) product, across chunks the running S, z.
// The backward recomputes what it needs from q, k, v and the output gradient, and never stores a
// per-position F x M state: non-causal, from the forward's final sums S, z (or a pass over the
// keys when they are not given), a pass over the queries
// (dq, and dS, dz) and one over the keys (dk, dv); causal, two sweeps, one forward in time (the
// prefix state, giving dq) and one backward (a suffix state R, giving dk and dv), which share
// only each position's den and dden. ../shared/reference/linear_attention_lra.md A.1.6, A.3.2.
//
// Each (batch, head) pair is done start to finish by one thread, the same way whatever the
// thread count, so results do not depend on it.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/kernels/attention_inputs.h"
#include "tensor/kernels/blas.h"
#include "tensor/kernels/feature_map_rows.h"
#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"

namespace spear::kernels {
namespace {

// Causal chunks stay small, since their masked products cost C^2 per chunk; non-causal chunks
// only set the size of the GEMMs.
int64_t chunk_size(bool causal) {
  return causal ? 64 : 256;
}

// One (batch, head) slice: row i of q starts at q + i * ld_qk, and so on; pad[j] != 0 marks a
// padded key (pad null: none).
template <typename T>
struct Slice {
  const T *q, *k, *v;
  const int64_t* pad;
  int64_t n, f, m, ld_qk, ld_v;
  int64_t index;  // b * H + h
};

// One head's running sums: S (F, M) and z (F) (forward: prefix sums; backward: also the suffix
// sums R, r), their gradients dS, dz, and the causal backward's den and dden (N), kept between
// its sweeps.
template <typename T>
struct HeadState {
  HeadState(int64_t f, int64_t m) : s(f * m), z(f), ds(f * m), dz(f) {}
  std::vector<T> s, z, ds, dz, den, dden;
};

// state (F, M + 1) <-> S (F, M), z (F): the layout of the forward's saved sums, S | z.
template <typename T>
void save_sums(const HeadState<T>& h, int64_t f, int64_t m, T* state) {
  for (int64_t c = 0; c < f; ++c) {
    std::copy(&h.s[c * m], &h.s[c * m] + m, state + c * (m + 1));
    state[c * (m + 1) + m] = h.z[c];
  }
}

template <typename T>
void load_sums(const T* state, int64_t f, int64_t m, HeadState<T>& h) {
  for (int64_t c = 0; c < f; ++c) {
    std::copy(state + c * (m + 1), state + c * (m + 1) + m, &h.s[c * m]);
    h.z[c] = state[c * (m + 1) + m];
  }
}

// Chunk-sized buffers, used by one head after another; the (C, C) ones only when causal.
template <typename T>
struct Scratch {
  Scratch(int64_t chunk, int64_t f, int64_t m, bool causal)
      : phi_q(chunk * f),
        phi_k(chunk * f),
        dphi(chunk * f),
        a(causal ? chunk * chunk : 0),
        p(causal ? chunk * chunk : 0),
        y(chunk * m),
        dnum(chunk * m),
        den(chunk),
        dden(chunk) {}
  std::vector<T> phi_q, phi_k, dphi;  // (C, F)
  std::vector<T> a, p;                // (C, C): causal scores and what they pass back
  std::vector<T> y, dnum;             // (C, M)
  std::vector<T> den, dden;           // (C)
};

// s (f, m) += x^T w ;  z (f) += x^T weights (all ones when null), for x (len, f) packed and w
// (len, m) with row stride ld_w: one chunk's update of a state (x = phi(k), w = v forward;
// x = phi(q), w = dnum and weights = dden for the backward's suffix state).
template <typename T>
void add_outer(const T* x, int64_t len, int64_t f, int64_t m, const T* w, int64_t ld_w,
               const T* weights, T* s, T* z) {
  gemm<T>(true, false, f, m, len, T(1), x, f, w, ld_w, T(1), s, m);
  for (int64_t i = 0; i < len; ++i)
    for (int64_t c = 0; c < f; ++c) z[c] += (weights ? weights[i] : T(1)) * x[i * f + c];
}

// a (len, len), row stride ld = tril(phi_q phi_k^T).
template <typename T>
void causal_scores(const T* phi_q, const T* phi_k, int64_t len, int64_t f, int64_t ld, T* a) {
  gemm<T>(false, true, len, len, f, T(1), phi_q, f, phi_k, f, T(0), a, ld);
  for (int64_t i = 0; i < len; ++i) std::fill(a + i * ld + i + 1, a + i * ld + len, T(0));
}

// y (len, m), row stride ld_y = (phi_q S + A v) / den with den = phi_q z + rowsum(A) + eps; the
// A terms only when a (causal scores, row stride ld_a) is given.
template <typename T>
void chunk_output(const T* phi_q, int64_t len, int64_t f, int64_t m, const T* s, const T* z,
                  const T* a, int64_t ld_a, const T* v, int64_t ld_v, T eps, T* y, int64_t ld_y,
                  T* den) {
  gemm<T>(false, false, len, m, f, T(1), phi_q, f, s, m, T(0), y, ld_y);
  if (a) gemm<T>(false, false, len, m, len, T(1), a, ld_a, v, ld_v, T(1), y, ld_y);
  for (int64_t i = 0; i < len; ++i) {
    T d = eps;
    for (int64_t c = 0; c < f; ++c) d += phi_q[i * f + c] * z[c];
    if (a)
      for (int64_t j = 0; j <= i; ++j) d += a[i * ld_a + j];
    den[i] = d;
    for (int64_t c = 0; c < m; ++c) y[i * ld_y + c] /= d;
  }
}

// dnum = g / den and dden_i = -(g_i . y_i) / den_i, the gradients of y = num / den.
template <typename T>
void output_grads(const T* g, int64_t ld_g, const T* y, const T* den, int64_t len, int64_t m,
                  T* dnum, int64_t ld_dnum, T* dden) {
  for (int64_t i = 0; i < len; ++i) {
    T dot = 0;
    for (int64_t c = 0; c < m; ++c) {
      dnum[i * ld_dnum + c] = g[i * ld_g + c] / den[i];
      dot += g[i * ld_g + c] * y[i * m + c];
    }
    dden[i] = -dot / den[i];
  }
}

// p (len, len), row stride ld = tril(dnum v^T + dden 1^T): what each pair (i, j <= i) of the
// chunk passes back to its scores.
template <typename T>
void causal_pass_back(const T* dnum, int64_t ld_dnum, const T* dden, const T* v, int64_t ld_v,
                      int64_t len, int64_t m, int64_t ld, T* p) {
  gemm<T>(false, true, len, len, m, T(1), dnum, ld_dnum, v, ld_v, T(0), p, ld);
  for (int64_t i = 0; i < len; ++i) {
    for (int64_t j = 0; j <= i; ++j) p[i * ld + j] += dden[i];
    std::fill(p + i * ld + i + 1, p + i * ld + len, T(0));
  }
}

// The per-chunk steps of every pass; c0, len: the chunk's first row and length. Rows of a slice
// sit at a stride of ld_qk (ld_v), so a chunk's rows of one head start at x + c0 * ld.
template <typename T>
struct Steps {
  const FeatureMap<T>& phi;
  T eps;
  int64_t chunk;  // row stride of the (C, C) buffers

  const int64_t* pad(const Slice<T>& s, int64_t c0) const { return s.pad ? s.pad + c0 : nullptr; }
  void map_q(const Slice<T>& s, int64_t c0, int64_t len, Scratch<T>& w) const {
    map_rows(phi, s.q + c0 * s.ld_qk, s.ld_qk, len, s.f, nullptr, true, w.phi_q.data());
  }
  void map_k(const Slice<T>& s, int64_t c0, int64_t len, Scratch<T>& w) const {
    map_rows(phi, s.k + c0 * s.ld_qk, s.ld_qk, len, s.f, pad(s, c0), false, w.phi_k.data());
  }

  // S += phi(k)^T v ;  z += colsum phi(k)
  void keys(const Slice<T>& s, HeadState<T>& h, int64_t c0, int64_t len, Scratch<T>& w) const {
    map_k(s, c0, len, w);
    add_outer<T>(w.phi_k.data(), len, s.f, s.m, s.v + c0 * s.ld_v, s.ld_v, nullptr, h.s.data(),
                 h.z.data());
  }

  // y = phi(q) S / (phi(q) z + eps), with S, z over all keys.
  void queries(const Slice<T>& s, HeadState<T>& h, int64_t c0, int64_t len, Scratch<T>& w,
               T* y) const {
    map_q(s, c0, len, w);
    chunk_output<T>(w.phi_q.data(), len, s.f, s.m, h.s.data(), h.z.data(), nullptr, 0, s.v, s.ld_v,
                    eps, y + c0 * s.ld_v, s.ld_v, w.den.data());
  }

  // Causal: y = (phi(q) S + A v) / den with S, z before the chunk; then S, z take the chunk in.
  void causal(const Slice<T>& s, HeadState<T>& h, int64_t c0, int64_t len, Scratch<T>& w,
              T* y) const {
    const T* vc = s.v + c0 * s.ld_v;
    map_q(s, c0, len, w);
    map_k(s, c0, len, w);
    causal_scores(w.phi_q.data(), w.phi_k.data(), len, s.f, chunk, w.a.data());
    chunk_output(w.phi_q.data(), len, s.f, s.m, h.s.data(), h.z.data(), w.a.data(), chunk, vc,
                 s.ld_v, eps, y + c0 * s.ld_v, s.ld_v, w.den.data());
    add_outer<T>(w.phi_k.data(), len, s.f, s.m, vc, s.ld_v, nullptr, h.s.data(), h.z.data());
  }

  // Non-causal backward over queries: dphi_q = dnum S^T + dden z^T ;  dS += phi_q^T dnum,
  // dz += dden phi_q.
  void query_grads(const Slice<T>& s, HeadState<T>& h, int64_t c0, int64_t len, Scratch<T>& w,
                   const T* g, T* dq) const {
    const int64_t f = s.f, m = s.m;
    const T* qc = s.q + c0 * s.ld_qk;
    map_q(s, c0, len, w);
    chunk_output<T>(w.phi_q.data(), len, f, m, h.s.data(), h.z.data(), nullptr, 0, s.v, s.ld_v, eps,
                    w.y.data(), m, w.den.data());
    output_grads(g + c0 * s.ld_v, s.ld_v, w.y.data(), w.den.data(), len, m, w.dnum.data(), m,
                 w.dden.data());
    gemm<T>(false, true, len, f, m, T(1), w.dnum.data(), m, h.s.data(), m, T(0), w.dphi.data(), f);
    for (int64_t i = 0; i < len; ++i)
      for (int64_t c = 0; c < f; ++c) w.dphi[i * f + c] += w.dden[i] * h.z[c];
    map_grad_rows(phi, qc, s.ld_qk, len, f, nullptr, w.phi_q.data(), w.dphi.data(),
                  dq + c0 * s.ld_qk);
    add_outer<T>(w.phi_q.data(), len, f, m, w.dnum.data(), m, w.dden.data(), h.ds.data(),
                 h.dz.data());
  }

  // Non-causal backward over keys: dphi_k = v dS^T + 1 dz^T ;  dv = phi_k dS
  void key_grads(const Slice<T>& s, HeadState<T>& h, int64_t c0, int64_t len, Scratch<T>& w, T* dk,
                 T* dv) const {
    const int64_t f = s.f, m = s.m;
    map_k(s, c0, len, w);
    gemm<T>(false, true, len, f, m, T(1), s.v + c0 * s.ld_v, s.ld_v, h.ds.data(), m, T(0),
            w.dphi.data(), f);
    for (int64_t j = 0; j < len; ++j)
      for (int64_t c = 0; c < f; ++c) w.dphi[j * f + c] += h.dz[c];
    map_grad_rows(phi, s.k + c0 * s.ld_qk, s.ld_qk, len, f, pad(s, c0), w.phi_k.data(),
                  w.dphi.data(), dk + c0 * s.ld_qk);
    gemm<T>(false, false, len, m, f, T(1), w.phi_k.data(), f, h.ds.data(), m, T(0),
            dv + c0 * s.ld_v, s.ld_v);
  }

  // Causal sweep 1, forward in time: dphi_q = dnum S^T + dden z^T + P phi_k, with S, z before the
  // chunk. Keeps each position's den and dden for sweep 2, which rebuilds dnum = g / den from them.
  void causal_query_grads(const Slice<T>& s, HeadState<T>& h, int64_t c0, int64_t len,
                          Scratch<T>& w, const T* g, T* dq) const {
    const int64_t f = s.f, m = s.m;
    const T* vc = s.v + c0 * s.ld_v;
    T *den = h.den.data() + c0, *dden = h.dden.data() + c0;
    map_q(s, c0, len, w);
    map_k(s, c0, len, w);
    causal_scores(w.phi_q.data(), w.phi_k.data(), len, f, chunk, w.a.data());
    chunk_output(w.phi_q.data(), len, f, m, h.s.data(), h.z.data(), w.a.data(), chunk, vc, s.ld_v,
                 eps, w.y.data(), m, den);
    output_grads(g + c0 * s.ld_v, s.ld_v, w.y.data(), den, len, m, w.dnum.data(), m, dden);
    causal_pass_back(w.dnum.data(), m, dden, vc, s.ld_v, len, m, chunk, w.p.data());
    gemm<T>(false, true, len, f, m, T(1), w.dnum.data(), m, h.s.data(), m, T(0), w.dphi.data(), f);
    for (int64_t i = 0; i < len; ++i)
      for (int64_t c = 0; c < f; ++c) w.dphi[i * f + c] += dden[i] * h.z[c];
    gemm<T>(false, false, len, f, len, T(1), w.p.data(), chunk, w.phi_k.data(), f, T(1),
            w.dphi.data(), f);
    map_grad_rows(phi, s.q + c0 * s.ld_qk, s.ld_qk, len, f, nullptr, w.phi_q.data(), w.dphi.data(),
                  dq + c0 * s.ld_qk);
    add_outer<T>(w.phi_k.data(), len, f, m, vc, s.ld_v, nullptr, h.s.data(), h.z.data());
  }

  // Causal sweep 2, backward in time, with the suffix sums R = sum_{later} phi_q^T dnum and
  // r = sum_{later} dden phi_q (in ds, dz):  dphi_k = v R^T + 1 r^T + P^T phi_q ;
  // dv = phi_k R + A^T dnum
  void causal_key_grads(const Slice<T>& s, HeadState<T>& h, int64_t c0, int64_t len, Scratch<T>& w,
                        const T* g, T* dk, T* dv) const {
    const int64_t f = s.f, m = s.m;
    const T *vc = s.v + c0 * s.ld_v, *gc = g + c0 * s.ld_v;
    const T *den = h.den.data() + c0, *dden = h.dden.data() + c0;
    T* dvc = dv + c0 * s.ld_v;
    for (int64_t i = 0; i < len; ++i)
      for (int64_t c = 0; c < m; ++c) w.dnum[i * m + c] = gc[i * s.ld_v + c] / den[i];
    map_q(s, c0, len, w);
    map_k(s, c0, len, w);
    causal_scores(w.phi_q.data(), w.phi_k.data(), len, f, chunk, w.a.data());
    causal_pass_back(w.dnum.data(), m, dden, vc, s.ld_v, len, m, chunk, w.p.data());
    gemm<T>(false, true, len, f, m, T(1), vc, s.ld_v, h.ds.data(), m, T(0), w.dphi.data(), f);
    for (int64_t j = 0; j < len; ++j)
      for (int64_t c = 0; c < f; ++c) w.dphi[j * f + c] += h.dz[c];
    gemm<T>(true, false, len, f, len, T(1), w.p.data(), chunk, w.phi_q.data(), f, T(1),
            w.dphi.data(), f);
    map_grad_rows(phi, s.k + c0 * s.ld_qk, s.ld_qk, len, f, pad(s, c0), w.phi_k.data(),
                  w.dphi.data(), dk + c0 * s.ld_qk);
    gemm<T>(false, false, len, m, f, T(1), w.phi_k.data(), f, h.ds.data(), m, T(0), dvc, s.ld_v);
    gemm<T>(true, false, len, m, len, T(1), w.a.data(), chunk, w.dnum.data(), m, T(1), dvc, s.ld_v);
    add_outer<T>(w.phi_q.data(), len, f, m, w.dnum.data(), m, dden, h.ds.data(), h.dz.data());
  }
};

// The heads of one batch element that one task computes, with their states and scratch buffers.
// Every pass goes chunk by chunk and, at each chunk, through all the group's heads before the
// next chunk: the heads of a position sit side by side in memory, so the pass reads whole rows in
// order instead of one head's narrow column at a stride (which costs up to 1.5x at large N).
template <typename T>
struct HeadGroup {
  std::vector<Slice<T>> slices;
  std::vector<HeadState<T>> states;
  Scratch<T> scratch;
  int64_t n, chunk;

  // Calls step(slice, state, c0, len, scratch) for every chunk, in time order or reversed.
  template <typename Step>
  void sweep(bool reverse, Step step) {
    const int64_t chunks = (n + chunk - 1) / chunk;
    for (int64_t i = 0; i < chunks; ++i) {
      const int64_t c0 = (reverse ? chunks - 1 - i : i) * chunk, len = std::min(chunk, n - c0);
      if (i + 1 < chunks) prefetch_chunk(reverse ? c0 - chunk : c0 + chunk);
      for (size_t h = 0; h < slices.size(); ++h) step(slices[h], states[h], c0, len, scratch);
    }
  }

  // Asks for the q, k, v rows of the chunk at c1 while this one is computed.
  void prefetch_chunk(int64_t c1) const {
    const Slice<T>& s = slices.front();
    const int64_t rows = std::min(chunk, n - c1);
    const auto lines = [&](const T* x, int64_t ld) {
      const char* first = reinterpret_cast<const char*>(x + c1 * ld);
      const char* last = reinterpret_cast<const char*>(x + (c1 + rows - 1) * ld + ld);
      for (const char* p = first; p < last; p += 64) __builtin_prefetch(p);
    };
    lines(s.q, s.ld_qk);
    lines(s.k, s.ld_qk);
    lines(s.v, s.ld_v);
  }
};

// Runs fn(group) for every group of heads in parallel.
// A group is all H heads of a batch element, or a part of them when there are fewer batch
// elements than twice the threads; each head's arithmetic is the same whatever its group, so
// results do not depend on the thread count.
template <typename T, typename Fn>
void for_each_group(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& pad, int64_t F,
                    bool causal, Fn fn) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), Dq = q.size(3), M = v.size(3);
  const int64_t groups = std::clamp<int64_t>(2 * get_num_threads() / std::max<int64_t>(B, 1), 1, H);
  const int64_t per_group = (H + groups - 1) / groups;
  const T *pq = q.data_ptr<T>(), *pk = k.data_ptr<T>(), *pv = v.data_ptr<T>();
  const int64_t* pp = pad.defined() ? pad.data_ptr<int64_t>() : nullptr;
  parallel_for(
      0, B * groups, grain_for(per_group * N * (F + M) * std::max<int64_t>(F, 8)),
      [&](int64_t lo, int64_t hi) {
        for (int64_t task = lo; task < hi; ++task) {
          const int64_t b = task / groups, h0 = task % groups * per_group;
          const int64_t h1 = std::min(H, h0 + per_group);
          HeadGroup<T> group{
              {}, {}, Scratch<T>(chunk_size(causal), F, M, causal), N, chunk_size(causal)};
          for (int64_t h = h0; h < h1; ++h) {
            const int64_t qk_off = b * N * H * Dq + h * Dq, v_off = b * N * H * M + h * M;
            group.slices.push_back({pq + qk_off, pk + qk_off, pv + v_off, pp ? pp + b * N : nullptr,
                                    N, F, M, H * Dq, H * M, b * H + h});
            group.states.emplace_back(F, M);
          }
          if (h1 > h0) fn(group);
        }
      });
}

// The map of `options`, with FAVOR+'s projection (contiguous, checked by feature_width) read
// from `projection`.
template <typename T>
FeatureMap<T> feature_map(const LinearAttentionOptions& options, const Tensor& projection) {
  FeatureMap<T> phi{options.feature_map, static_cast<T>(options.relu_eps)};
  if (options.feature_map == FeatureMapKind::favor) {
    phi.w = projection.data_ptr<T>();
    phi.d = projection.size(1);
    phi.input_scale = static_cast<T>(std::pow(static_cast<double>(phi.d), -0.25));
    phi.output_scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(projection.size(0))));
  }
  return phi;
}

// F, the width of phi(q) and phi(k): FAVOR+'s m, else q's own width. Checks the projection.
int64_t feature_width(const Tensor& q, const LinearAttentionOptions& options, const char* op) {
  if (options.feature_map != FeatureMapKind::favor) return q.size(3);
  const Tensor& w = options.projection;
  SPEAR_CHECK_SHAPE(w.defined() && w.dim() == 2 && w.size(1) == q.size(3) && w.size(0) > 0, op,
                    ": the favor map needs a projection (m, D) with D = ", q.size(3),
                    " (q's width), got ", w.defined() ? w.shape() : Shape());
  SPEAR_CHECK_DTYPE(w.dtype() == q.dtype(), op, ": the favor projection is ", w.dtype(),
                    " but q is ", q.dtype());
  return w.size(0);
}

}  // namespace

std::vector<Tensor> linear_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                     const Tensor& key_padding_mask,
                                     const LinearAttentionOptions& options) {
  check_attention_inputs(q_in, k_in, v_in, key_padding_mask, "linear_attention");
  Tensor q = contiguous(q_in), k = contiguous(k_in), v = contiguous(v_in);
  Tensor pad = padding_as_i64(key_padding_mask);
  Tensor y = Tensor::empty(v.shape(), v.dtype());
  const int64_t F = feature_width(q, options, "linear_attention"), M = v.size(3);
  const Tensor projection =
      options.projection.defined() ? contiguous(options.projection) : Tensor();
  Tensor sums = Tensor::empty({q.size(0), q.size(2), F, M + 1}, q.dtype());
  SPEAR_DISPATCH_FLOAT(q.dtype(), "linear_attention", [&] {
    using T = scalar_t;
    const FeatureMap<T> phi = feature_map<T>(options, projection);
    const Steps<T> steps{phi, static_cast<T>(options.eps), chunk_size(options.causal)};
    // A slice's rows of y sit at the offset of its rows of v.
    T* const py = y.data_ptr<T>();
    T* const psums = sums.data_ptr<T>();
    const T* const pv = v.data_ptr<T>();
    for_each_group<T>(q, k, v, pad, F, options.causal, [&](HeadGroup<T>& group) {
      auto out = [&](const Slice<T>& s) { return py + (s.v - pv); };
      using S = const Slice<T>&;
      using H = HeadState<T>&;
      using W = Scratch<T>&;
      if (options.causal) {
        group.sweep(false, [&](S s, H h, int64_t c0, int64_t len, W w) {
          steps.causal(s, h, c0, len, w, out(s));
        });
      } else {
        group.sweep(false,
                    [&](S s, H h, int64_t c0, int64_t len, W w) { steps.keys(s, h, c0, len, w); });
        group.sweep(false, [&](S s, H h, int64_t c0, int64_t len, W w) {
          steps.queries(s, h, c0, len, w, out(s));
        });
      }
      for (size_t i = 0; i < group.slices.size(); ++i)
        save_sums(group.states[i], F, M, psums + group.slices[i].index * F * (M + 1));
    });
  });
  return {y, sums};
}

std::vector<Tensor> linear_attention_backward(const Tensor& q_in, const Tensor& k_in,
                                              const Tensor& v_in, const Tensor& key_padding_mask,
                                              const Tensor& sums_in, const Tensor& grad_in,
                                              const LinearAttentionOptions& options) {
  check_attention_inputs(q_in, k_in, v_in, key_padding_mask, "linear_attention backward");
  SPEAR_CHECK_SHAPE(grad_in.shape() == v_in.shape(), "linear_attention backward: grad shape ",
                    grad_in.shape(), " != output shape ", v_in.shape());
  Tensor q = contiguous(q_in), k = contiguous(k_in), v = contiguous(v_in);
  Tensor g = contiguous(grad_in), pad = padding_as_i64(key_padding_mask);
  Tensor dq = Tensor::empty(q.shape(), q.dtype()), dk = Tensor::empty(k.shape(), k.dtype());
  Tensor dv = Tensor::empty(v.shape(), v.dtype());
  const int64_t F = feature_width(q, options, "linear_attention backward"), M = v.size(3);
  const Tensor projection =
      options.projection.defined() ? contiguous(options.projection) : Tensor();
  const Shape sums_shape = {q.size(0), q.size(2), F, M + 1};
  SPEAR_CHECK_SHAPE(
      !sums_in.defined() || sums_in.shape() == sums_shape, "linear_attention backward: sums ",
      sums_in.defined() ? sums_in.shape() : Shape(), " != (B, H, F, M + 1) = ", sums_shape);
  Tensor sums = sums_in.defined() ? contiguous(sums_in) : sums_in;
  SPEAR_DISPATCH_FLOAT(q.dtype(), "linear_attention backward", [&] {
    using T = scalar_t;
    const FeatureMap<T> phi = feature_map<T>(options, projection);
    const Steps<T> steps{phi, static_cast<T>(options.eps), chunk_size(options.causal)};
    // A slice's rows of dq and dk sit at the offset of its rows of q (k has q's shape), those of g
    // and dv at the offset of its rows of v.
    const T *pq = q.data_ptr<T>(), *pv = v.data_ptr<T>(), *pg = g.data_ptr<T>();
    T *pdq = dq.data_ptr<T>(), *pdk = dk.data_ptr<T>(), *pdv = dv.data_ptr<T>();
    for_each_group<T>(q, k, v, pad, F, options.causal, [&](HeadGroup<T>& group) {
      using S = const Slice<T>&;
      using H = HeadState<T>&;
      using W = Scratch<T>&;
      if (options.causal) {
        for (HeadState<T>& h : group.states) {
          h.den.resize(static_cast<size_t>(group.n));
          h.dden.resize(static_cast<size_t>(group.n));
        }
        group.sweep(false, [&](S s, H h, int64_t c0, int64_t len, W w) {
          steps.causal_query_grads(s, h, c0, len, w, pg + (s.v - pv), pdq + (s.q - pq));
        });
        group.sweep(true, [&](S s, H h, int64_t c0, int64_t len, W w) {
          steps.causal_key_grads(s, h, c0, len, w, pg + (s.v - pv), pdk + (s.q - pq),
                                 pdv + (s.v - pv));
        });
        return;
      }
      if (sums.defined())
        for (size_t i = 0; i < group.slices.size(); ++i)
          load_sums(sums.data_ptr<T>() + group.slices[i].index * F * (M + 1), F, M,
                    group.states[i]);
      else
        group.sweep(false,
                    [&](S s, H h, int64_t c0, int64_t len, W w) { steps.keys(s, h, c0, len, w); });
      group.sweep(false, [&](S s, H h, int64_t c0, int64_t len, W w) {
        steps.query_grads(s, h, c0, len, w, pg + (s.v - pv), pdq + (s.q - pq));
      });
      group.sweep(false, [&](S s, H h, int64_t c0, int64_t len, W w) {
        steps.key_grads(s, h, c0, len, w, pdk + (s.q - pq), pdv + (s.v - pv));
      });
    });
  });
  return {dq, dk, dv};
}

}  // namespace spear::kernels
