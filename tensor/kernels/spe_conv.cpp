// ConvSPE's fused filter (spec 3, ../shared/reference/spe_reference.md): queries or keys
// contracted with white noise filtered by one learnable filter per channel.
//
// x: (B, N, H, D), w: (C, 1, P1[, P2]) with C = H*D -> y: (B, N, H, R)
//   code[n, c, r] = scale * sum_j w[c, j] eps[n + j, c, r]         (2-D: n and j are pairs)
//   y[b, n, h, r] = sum_d x[b, n, h, d] code[n, h*D + d, r]
//
// Held whole, the codes would be N*C*R values: D times a batch element's share of y. So the
// positions go chunk by chunk of grid rows: draw the noise of the chunk's window (its rows plus the
// P1 - 1 rows its filters reach beyond), build the chunk's codes in a scratch buffer, contract them
// with x for every batch element, drop them. Queries and keys go through one call as two sides:
// each chunk's noise is drawn once and filtered by each side's own filter. Scratch, forward and
// backward (which rebuilds the codes and reuses their buffer for the codes' gradient):
//   (chunk + P1 - 1) * (cols + P2 - 1) * C * R noise values + chunk * cols * C * R code values.
//
// Long 1-D filters (P1 >= kMinBandTaps) go through GEMMs: for each channel, a block of code rows
// is a band matrix holding the filter (row i: w at columns i .. i + P1 - 1) times the block's noise
// window, about twice the multiply-adds of the direct sum but at GEMM speed; and the filter's
// gradient sums the diagonals of dcode times the noise window's transpose. Short and 2-D filters
// use the direct sums, vectorised along r.
//
// Determinism: chunks run one after the other; inside a chunk, threads split independent outputs
// (channels for the codes and the filters' gradient, (position, head) pairs for the
// contractions), and every sum runs in a fixed order. Results do not depend on the thread count,
// and a code value does not even depend on the chunking.
#include <algorithm>
#include <vector>

#include "tensor/kernels/blas.h"
#include "tensor/kernels/kernels.h"
#include "tensor/kernels/spe.h"
#include "tensor/kernels/spe_code_rows.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

namespace spear::kernels {
namespace {

// A chunk has at least 4 (P1 - 1) rows, so the P1 - 1 rows of noise it shares with the next one
// cost at most a quarter more draws, and at least kChunkElements code values, so that each of its
// parallel passes has work enough for every thread.
constexpr int64_t kChunkElements = int64_t{1} << 18;
constexpr int64_t kMinBandTaps = 16;

struct Sizes {
  int64_t B, N, H, D, C, R, P1, P2, rows, cols, noise_cols;
};

Sizes check_inputs(const Tensor& x, const Tensor& w, const ConvSpeGrid& grid, const char* op) {
  SPEAR_CHECK_SHAPE(x.dim() == 4, op, ": expected x: (B, N, H, D), got ", x.shape());
  SPEAR_CHECK_SHAPE(w.dim() == 3 || w.dim() == 4, op,
                    ": expected weight: (H*D, 1, P1) or (H*D, 1, P1, P2), got ", w.shape());
  Sizes s{};
  s.B = x.size(0), s.N = x.size(1), s.H = x.size(2), s.D = x.size(3);
  s.C = s.H * s.D, s.R = grid.realizations;
  s.P1 = w.size(2), s.P2 = w.dim() == 4 ? w.size(3) : 1;
  s.rows = grid.rows, s.cols = grid.cols, s.noise_cols = grid.cols + s.P2 - 1;
  SPEAR_CHECK_SHAPE(w.size(0) == s.C && w.size(1) == 1 && s.P1 > 0 && s.P2 > 0, op, ": weight ",
                    w.shape(), " does not fit x ", x.shape(), " (expected [", s.C, ", 1, P...])");
  SPEAR_CHECK_SHAPE(grid.rows >= 0 && grid.cols > 0 && grid.first_row >= 0 && s.R > 0, op,
                    ": bad grid: first_row ", grid.first_row, ", rows ", grid.rows, ", cols ",
                    grid.cols, ", realizations ", s.R);
  SPEAR_CHECK_SHAPE(s.N == s.rows * s.cols, op, ": x ", x.shape(), " has ", s.N,
                    " positions but the grid has ", s.rows, " x ", s.cols);
  SPEAR_CHECK_DTYPE(x.dtype() == w.dtype(), op, ": dtypes differ: x ", x.dtype(), ", weight ",
                    w.dtype());
  return s;
}

int64_t rows_per_chunk(const Sizes& s, int64_t requested) {
  if (requested > 0) return requested;
  return std::max({int64_t{1}, 4 * (s.P1 - 1), kChunkElements / (s.cols * s.C * s.R)});
}

// A buffer for one chunk's codes (or their gradient). A tensor rather than a vector: at large
// widths it is tens of MiB, which would go back to the OS after every call and be faulted in
// again; spear's allocator keeps such blocks for the next call.
template <typename T>
Tensor chunk_codes_buffer(const Sizes& s, int64_t chunk_rows) {
  const int64_t rows = std::min(rows_per_chunk(s, chunk_rows), s.rows);
  return Tensor::empty({rows * s.cols * s.C * s.R}, dtype_of<T>());
}

// Calls fn(first row, row count, noise window) for each chunk of rows, in order.
template <typename T, typename Fn>
void for_each_chunk(const Sizes& s, const ConvSpeGrid& grid, int64_t chunk_rows, Fn fn) {
  const int64_t chunk = rows_per_chunk(s, chunk_rows);
  for (int64_t a = 0; a < s.rows; a += chunk) {
    const int64_t len = std::min(chunk, s.rows - a);
    Tensor noise = conv_spe_noise(grid.seed, grid.first_row + a, len + s.P1 - 1, s.noise_cols, s.C,
                                  s.R, dtype_of<T>());
    fn(a, len, noise.data_ptr<T>());
  }
}

bool use_band(const Sizes& s) {
  return s.cols == 1 && s.P2 == 1 && s.P1 >= kMinBandTaps;
}

// Code rows per band GEMM: the band is (rows, rows + P1 - 1), and a shorter block uses its
// top-left corner.
int64_t band_rows(const Sizes& s) {
  return std::max<int64_t>(s.P1, 64);
}

// band (rows, rows + P - 1) = the filter wc on every row, shifted one column per row.
template <typename T>
void fill_band(const T* wc, int64_t P, int64_t rows, T* band) {
  const int64_t ld = rows + P - 1;
  std::fill(band, band + rows * ld, T(0));
  for (int64_t i = 0; i < rows; ++i) std::copy(wc, wc + P, band + i * ld + i);
}

// The 1-D code of `len` rows through band GEMMs; noise and code rows of channel c sit C R apart.
template <typename T>
void build_codes_band(const Sizes& s, const T* w, const T* eps, int64_t len, T scale, T* code) {
  const int64_t rows = band_rows(s), ld = rows + s.P1 - 1;
  parallel_for(0, s.C, grain_for(len * 2 * s.P1 * s.R), [&](int64_t lo, int64_t hi) {
    std::vector<T> band(static_cast<size_t>(rows * ld));
    for (int64_t c = lo; c < hi; ++c) {
      fill_band(w + c * s.P1, s.P1, rows, band.data());
      for (int64_t i0 = 0; i0 < len; i0 += rows) {
        const int64_t block = std::min(rows, len - i0);
        gemm<T>(false, false, block, s.R, block + s.P1 - 1, scale, band.data(), ld,
                eps + (i0 * s.C + c) * s.R, s.C * s.R, T(0), code + (i0 * s.C + c) * s.R,
                s.C * s.R);
      }
    }
  });
}

// dw[c, j] += scale * sum_i G[i, i + j] with G = dcode (block, R) eps window^T (R, block + P - 1).
template <typename T>
void add_weight_grad_band(const Sizes& s, const T* dcode, const T* eps, int64_t len, T scale,
                          T* dw) {
  const int64_t rows = band_rows(s), ld = rows + s.P1 - 1;
  parallel_for(0, s.C, grain_for(len * 2 * s.P1 * s.R), [&](int64_t lo, int64_t hi) {
    std::vector<T> g(static_cast<size_t>(rows * ld));
    for (int64_t c = lo; c < hi; ++c)
      for (int64_t i0 = 0; i0 < len; i0 += rows) {
        const int64_t block = std::min(rows, len - i0);
        gemm<T>(false, true, block, block + s.P1 - 1, s.R, T(1), dcode + (i0 * s.C + c) * s.R,
                s.C * s.R, eps + (i0 * s.C + c) * s.R, s.C * s.R, T(0), g.data(), ld);
        for (int64_t j = 0; j < s.P1; ++j) {
          T total = 0;
          for (int64_t i = 0; i < block; ++i) total += g[i * ld + i + j];
          dw[c * s.P1 + j] += scale * total;
        }
      }
  });
}

// code[i1, i2, c, :] = scale * sum_{j1, j2} w[c, j1, j2] eps[i1 + j1, i2 + j2, c, :] for the
// `len` rows of a chunk (eps: its noise window). Vectorised along r.
template <typename T>
void build_codes(const Sizes& s, const T* w, const T* eps, int64_t len, T scale, T* code) {
  parallel_for(0, s.C, grain_for(len * s.cols * s.P1 * s.P2 * s.R), [&](int64_t lo, int64_t hi) {
    std::vector<T> acc(static_cast<size_t>(s.R));
    for (int64_t c = lo; c < hi; ++c) {
      const T* wc = w + c * s.P1 * s.P2;
      for (int64_t i1 = 0; i1 < len; ++i1)
        for (int64_t i2 = 0; i2 < s.cols; ++i2) {
          std::fill(acc.begin(), acc.end(), T(0));
          for (int64_t j1 = 0; j1 < s.P1; ++j1)
            for (int64_t j2 = 0; j2 < s.P2; ++j2) {
              const T wj = wc[j1 * s.P2 + j2];
              const T* e = eps + (((i1 + j1) * s.noise_cols + i2 + j2) * s.C + c) * s.R;
              for (int64_t r = 0; r < s.R; ++r) acc[r] += wj * e[r];
            }
          T* out = code + ((i1 * s.cols + i2) * s.C + c) * s.R;
          for (int64_t r = 0; r < s.R; ++r) out[r] = scale * acc[r];
        }
    }
  });
}

// dw[c, j1, j2] += scale * sum_{i1, i2, r} dcode[i1, i2, c, r] eps[i1 + j1, i2 + j2, c, r]: one
// chunk's share, summed along r last so the inner loop vectorises.
template <typename T>
void add_weight_grad(const Sizes& s, const T* dcode, const T* eps, int64_t len, T scale, T* dw) {
  parallel_for(0, s.C, grain_for(len * s.cols * s.P1 * s.P2 * s.R), [&](int64_t lo, int64_t hi) {
    std::vector<T> acc(static_cast<size_t>(s.R));
    for (int64_t c = lo; c < hi; ++c)
      for (int64_t j1 = 0; j1 < s.P1; ++j1)
        for (int64_t j2 = 0; j2 < s.P2; ++j2) {
          std::fill(acc.begin(), acc.end(), T(0));
          for (int64_t i1 = 0; i1 < len; ++i1)
            for (int64_t i2 = 0; i2 < s.cols; ++i2) {
              const T* g = dcode + ((i1 * s.cols + i2) * s.C + c) * s.R;
              const T* e = eps + (((i1 + j1) * s.noise_cols + i2 + j2) * s.C + c) * s.R;
              for (int64_t r = 0; r < s.R; ++r) acc[r] += g[r] * e[r];
            }
          T total = 0;
          for (int64_t r = 0; r < s.R; ++r) total += acc[r];
          dw[(c * s.P1 + j1) * s.P2 + j2] += scale * total;
        }
  });
}

// Runs fn(n, h, i) for every (position n = n0 + i, head h) of a chunk of `count` positions.
template <typename Fn>
void for_each_position_head(const Sizes& s, int64_t n0, int64_t count, Fn fn) {
  parallel_for(0, count * s.H, grain_for(s.B * s.D * s.R), [&](int64_t lo, int64_t hi) {
    for (int64_t ih = lo; ih < hi; ++ih) fn(n0 + ih / s.H, ih % s.H, ih / s.H);
  });
}

}  // namespace

// -> eps: (num_rows, noise_cols, C, R), the rows first_row .. first_row + num_rows - 1
Tensor conv_spe_noise(uint64_t seed, int64_t first_row, int64_t num_rows, int64_t noise_cols,
                      int64_t channels, int64_t realizations, DType dtype) {
  SPEAR_CHECK_SHAPE(
      first_row >= 0 && num_rows >= 0 && noise_cols > 0 && channels > 0 && realizations > 0,
      "conv_spe_noise: bad sizes: first_row ", first_row, ", rows ", num_rows, ", cols ",
      noise_cols, ", channels ", channels, ", realizations ", realizations);
  Generator gen(seed);
  gen.set_state(seed, static_cast<uint64_t>(first_row * noise_cols * channels * realizations));
  return randn({num_rows, noise_cols, channels, realizations}, dtype, &gen);
}

namespace {

template <typename T>
void fill_codes(const Sizes& s, const T* w, const T* eps, int64_t len, T scale, T* code) {
  if (use_band(s))
    build_codes_band<T>(s, w, eps, len, scale, code);
  else
    build_codes<T>(s, w, eps, len, scale, code);
}

template <typename T>
void add_weight_grads(const Sizes& s, const T* dcode, const T* eps, int64_t len, T scale, T* dw) {
  if (use_band(s))
    add_weight_grad_band<T>(s, dcode, eps, len, scale, dw);
  else
    add_weight_grad<T>(s, dcode, eps, len, scale, dw);
}

}  // namespace

namespace {

// The sides of one call: every x has one shape, every weight another; the sizes they share.
Sizes check_sides(const std::vector<Tensor>& xs, const std::vector<Tensor>& weights,
                  const ConvSpeGrid& grid, const char* op) {
  SPEAR_CHECK_SHAPE(!xs.empty() && xs.size() == weights.size(), op, ": expected one weight per x, ",
                    "got ", xs.size(), " x and ", weights.size(), " weights");
  const Sizes s = check_inputs(xs[0], weights[0], grid, op);
  for (size_t i = 1; i < xs.size(); ++i) {
    check_inputs(xs[i], weights[i], grid, op);
    SPEAR_CHECK_SHAPE(xs[i].shape() == xs[0].shape() && weights[i].shape() == weights[0].shape(),
                      op, ": side ", i, " (x ", xs[i].shape(), ", weight ", weights[i].shape(),
                      ") differs from side 0 (x ", xs[0].shape(), ", weight ", weights[0].shape(),
                      ")");
    SPEAR_CHECK_DTYPE(xs[i].dtype() == xs[0].dtype(), op, ": side ", i, " is ", xs[i].dtype(),
                      ", side 0 ", xs[0].dtype());
  }
  return s;
}

std::vector<Tensor> contiguous_all(const std::vector<Tensor>& ts) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(contiguous(t));
  return out;
}

}  // namespace

// xs[i]: (B, N, H, D), weights[i]: (H*D, 1, P1[, P2]) -> ys[i]: (B, N, H, R)
std::vector<Tensor> conv_spe_filter(const std::vector<Tensor>& xs_in,
                                    const std::vector<Tensor>& weights_in, const ConvSpeGrid& grid,
                                    int64_t chunk_rows, const SpeGate& gate_in) {
  const Sizes s = check_sides(xs_in, weights_in, grid, "conv_spe_filter");
  const SpeGate gate = checked_gate(gate_in, s.H, s.D, s.R, xs_in[0].dtype(), "conv_spe_filter");
  const std::vector<Tensor> xs = contiguous_all(xs_in), ws = contiguous_all(weights_in);
  std::vector<Tensor> ys;
  for (size_t i = 0; i < xs.size(); ++i)
    ys.push_back(Tensor::empty({s.B, s.N, s.H, s.R}, xs[0].dtype()));
  if (ys[0].numel() == 0) return ys;
  SPEAR_DISPATCH_FLOAT(xs[0].dtype(), "conv_spe_filter", [&] {
    using T = scalar_t;
    Tensor code_buffer = chunk_codes_buffer<T>(s, chunk_rows);
    T* const code = code_buffer.data_ptr<T>();
    for_each_chunk<T>(s, grid, chunk_rows, [&](int64_t a, int64_t len, const T* eps) {
      for (size_t side = 0; side < xs.size(); ++side) {
        const T* px = xs[side].data_ptr<T>();
        T* py = ys[side].data_ptr<T>();
        fill_codes<T>(s, ws[side].data_ptr<T>(), eps, len, static_cast<T>(grid.scale), code);
        if (gate.defined())
          gate_codes(gate.a.data_ptr<T>(), gate.w.data_ptr<T>(), len * s.cols, s.C, s.R, code,
                     code);
        // y[:, n, h, :] = x[:, n, h, :] (B x D) @ code[i, h] (D x R)
        for_each_position_head(s, a * s.cols, len * s.cols, [&](int64_t n, int64_t h, int64_t i) {
          apply_code(px + (n * s.H + h) * s.D, s.N * s.H * s.D, code + (i * s.H + h) * s.D * s.R,
                     s.B, s.D, s.R, py + (n * s.H + h) * s.R, s.N * s.H * s.R);
        });
      }
    });
  });
  return ys;
}

// -> {dx for each side, then dweight for each side}
std::vector<Tensor> conv_spe_filter_backward(const std::vector<Tensor>& xs_in,
                                             const std::vector<Tensor>& weights_in,
                                             const std::vector<Tensor>& grads_in,
                                             const ConvSpeGrid& grid, int64_t chunk_rows,
                                             const SpeGate& gate_in) {
  const Sizes s = check_sides(xs_in, weights_in, grid, "conv_spe_filter backward");
  const SpeGate gate =
      checked_gate(gate_in, s.H, s.D, s.R, xs_in[0].dtype(), "conv_spe_filter backward");
  SPEAR_CHECK_SHAPE(grads_in.size() == xs_in.size(), "conv_spe_filter backward: expected ",
                    xs_in.size(), " grads, got ", grads_in.size());
  for (const Tensor& g : grads_in)
    SPEAR_CHECK_SHAPE(g.shape() == Shape({s.B, s.N, s.H, s.R}),
                      "conv_spe_filter backward: grad shape ", g.shape(), " != output shape ",
                      Shape({s.B, s.N, s.H, s.R}));
  const std::vector<Tensor> xs = contiguous_all(xs_in), ws = contiguous_all(weights_in),
                            gs = contiguous_all(grads_in);
  std::vector<Tensor> out;
  for (const Tensor& x : xs) out.push_back(zeros(x.shape(), x.dtype()));
  for (const Tensor& w : ws) out.push_back(zeros(w.shape(), w.dtype()));
  if (gate.defined()) {
    out.push_back(zeros(gate.a.shape(), gate.a.dtype()));
    out.push_back(zeros(gate.w.shape(), gate.w.dtype()));
  }
  if (s.B == 0) return out;
  const size_t sides = xs.size();
  SPEAR_DISPATCH_FLOAT(xs[0].dtype(), "conv_spe_filter backward", [&] {
    using T = scalar_t;
    const T scale = static_cast<T>(grid.scale);
    // Without a gate the codes' buffer turns into their gradient's; with one, the gated codes go
    // to a second buffer that turns into the gradient, and the codes stay for the gate's.
    Tensor code_buffer = chunk_codes_buffer<T>(s, chunk_rows);
    Tensor gated_buffer = gate.defined() ? chunk_codes_buffer<T>(s, chunk_rows) : Tensor();
    T* const code = code_buffer.data_ptr<T>();
    T* const gated_code = gate.defined() ? gated_buffer.data_ptr<T>() : nullptr;
    std::vector<double> da(gate.defined() ? static_cast<size_t>(s.C) : 0, 0.0);
    for_each_chunk<T>(s, grid, chunk_rows, [&](int64_t a, int64_t len, const T* eps) {
      const int64_t rows = len * s.cols;
      T* dcode = gate.defined() ? gated_code : code;
      for (size_t side = 0; side < sides; ++side) {
        const T *px = xs[side].data_ptr<T>(), *pg = gs[side].data_ptr<T>();
        T* pdx = out[side].data_ptr<T>();
        fill_codes<T>(s, ws[side].data_ptr<T>(), eps, len, scale, code);
        if (gate.defined())
          gate_codes(gate.a.data_ptr<T>(), gate.w.data_ptr<T>(), rows, s.C, s.R, code, gated_code);
        for_each_position_head(s, a * s.cols, rows, [&](int64_t n, int64_t h, int64_t i) {
          const T* gn = pg + (n * s.H + h) * s.R;
          const T* xn = px + (n * s.H + h) * s.D;
          T* c = dcode + (i * s.H + h) * s.D * s.R;
          // dx[:, n, h, :] = g (B x R) @ code^T (R x D); then the code's own gradient replaces
          // it: dcode[i, h] = x^T (D x B) @ g (B x R)
          apply_code_input_grad(gn, s.N * s.H * s.R, c, s.B, s.D, s.R, pdx + (n * s.H + h) * s.D,
                                s.N * s.H * s.D);
          apply_code_code_grad(xn, s.N * s.H * s.D, gn, s.N * s.H * s.R, s.B, s.D, s.R, c);
        });
        if (gate.defined())
          parallel_for(0, s.C, grain_for(rows * s.R), [&](int64_t c0, int64_t c1) {
            gate_codes_backward(gate.a.data_ptr<T>(), rows, s.C, s.R, code, dcode, c0, c1,
                                da.data(), out[2 * sides + 1].data_ptr<T>());
          });
        add_weight_grads<T>(s, dcode, eps, len, scale, out[sides + side].data_ptr<T>());
      }
    });
    for (int64_t c = 0; c < static_cast<int64_t>(da.size()); ++c)
      out[2 * sides].data_ptr<T>()[c] = static_cast<T>(da[c]);
  });
  return out;
}

}  // namespace spear::kernels
