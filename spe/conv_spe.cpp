// Convolutional SPE (spec 3): per channel c = h*D + d, the codes are one white noise eps filtered
// by two learnable filters (cross-correlation, no flip), scaled by (R D)^(-1/4):
//   Qbar[n,c,r] = (R D)^(-1/4) sum_j Wk[c,j] eps[n+j,c,r],   Kbar: the same with Wq
// so E[Qbar(m) Kbar(n)] = (R D)^(-1/2) sum_j Wk[c,j] Wq[c,j+m-n]: the filters' cross-correlation,
// zero beyond lag P. As in the reference, the parameter conv_k makes Qbar and conv_q makes Kbar.
// In 2-D, n and j are pairs and the positions are the cells of the grid, row-major.
//
// The noise is indexed by absolute time (1-D) or grid cell (2-D) and drawn from its counters
// (tensor/kernels/spe.h gives the layout), so the code of a position is the same number whatever
// the length, offset or chunking it is computed with.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>
#include <vector>

#include "autograd/function.h"
#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "spe/spe.h"
#include "tensor/kernels/spe.h"
#include "tensor/random.h"

namespace spear::spe {
namespace {

// ctx.dims = {seed, first_row, rows, cols, realizations}, ctx.scalar = scale
void save_grid(Context& ctx, const kernels::ConvSpeGrid& grid) {
  ctx.dims = {static_cast<int64_t>(grid.seed), grid.first_row, grid.rows, grid.cols,
              grid.realizations};
  ctx.scalar = grid.scale;
}

kernels::ConvSpeGrid saved_grid(const Context& ctx) {
  kernels::ConvSpeGrid grid;
  grid.seed = static_cast<uint64_t>(ctx.dims[0]);
  grid.first_row = ctx.dims[1];
  grid.rows = ctx.dims[2];
  grid.cols = ctx.dims[3];
  grid.realizations = ctx.dims[4];
  grid.scale = ctx.scalar;
  return grid;
}

// q, k: (B,N,H,D), wq, wk: (H*D,1,P...) -> {qhat, khat}: (B,N,H,R): each side contracted over d
// with the codes its filter makes from the noise of `grid`, chunk by chunk, one noise draw per
// chunk for both sides (tensor/kernels/spe_conv.cpp).
struct ConvSpeFilterFn : Function<ConvSpeFilterFn> {
  static constexpr const char* name = "conv_spe_filter";
  static std::vector<Tensor> forward(Context& ctx, const Tensor& q, const Tensor& k,
                                     const Tensor& wq, const Tensor& wk, const Tensor& a,
                                     const Tensor& w, const kernels::ConvSpeGrid& grid) {
    save_grid(ctx, grid);
    ctx.save_for_backward({q, k, wq, wk, a, w});
    return kernels::conv_spe_filter({q, k}, {wq, wk}, grid, 0, {a, w});
  }
  // y = x code(w), per side: dx = g code^T, dw[c,j] = scale sum_{n,r} (x^T g)[n,c,r] eps[n+j,c,r];
  // the gate's from the gated codes' gradient (tensor/kernels/spe_code_rows.h)
  static std::vector<Tensor> backward(Context& ctx, const std::vector<Tensor>& grads) {
    std::vector<Tensor> d = kernels::conv_spe_filter_backward(
        {ctx.saved(0), ctx.saved(1)}, {ctx.saved(2), ctx.saved(3)}, grads, saved_grid(ctx), 0,
        {ctx.saved(4), ctx.saved(5)});
    d.resize(6);  // no gate: no gradients for a and w
    return d;
  }
};
SPEAR_REGISTER_FUNCTION(ConvSpeFilterFn);

// Where the positions [offset, offset + n) sit: 1-D, rows of one cell from time `offset`;
// 2-D, the whole grid (which needs n = N1 * N2 and offset 0).
kernels::ConvSpeGrid positions(const ConvSPE& spe, const std::vector<int64_t>& grid, int64_t n,
                               int64_t offset, const char* op) {
  kernels::ConvSpeGrid g;
  g.seed = spe.stream_seed(0);
  g.realizations = spe.realizations();
  g.scale = std::pow(static_cast<double>(spe.realizations() * spe.features()), -0.25);
  if (grid.empty()) {
    SPEAR_CHECK_SHAPE(n >= 0 && offset >= 0, op, ": positions need n >= 0 and offset >= 0, got n ",
                      n, ", offset ", offset);
    g.first_row = offset;
    g.rows = n;
    g.cols = 1;
  } else {
    SPEAR_CHECK_SHAPE(n == grid[0] * grid[1] && offset == 0, op, ": a 2-D code covers its whole ",
                      grid, " grid: expected n = ", grid[0] * grid[1], " and offset 0, got n ", n,
                      ", offset ", offset);
    g.rows = grid[0];
    g.cols = grid[1];
  }
  return g;
}

// (H*D, 1, P...) -> (H*D, P1, P2), P2 = 1 in 1-D
Tensor taps(const Tensor& weight) {
  return weight.reshape({weight.size(0), weight.size(2), weight.dim() == 4 ? weight.size(3) : 1});
}

}  // namespace

ConvSPE::ConvSPE(int64_t heads, int64_t features, int64_t realizations,
                 std::vector<int64_t> kernel_size, std::vector<int64_t> grid, uint64_t seed,
                 Generator* init_gen)
    : PositionalCode("ConvSPE", heads, features, realizations, seed),
      kernel_size_(std::move(kernel_size)),
      grid_(std::move(grid)) {
  const size_t ndim = kernel_size_.size();
  SPEAR_CHECK_T(ConfigError, ndim == 1 || ndim == 2,
                "ConvSPE: kernel_size must have 1 or 2 entries (1-D or 2-D), got ", kernel_size_);
  bool positive = true;
  for (int64_t p : kernel_size_) positive = positive && p > 0;
  SPEAR_CHECK_T(ConfigError, positive, "ConvSPE: kernel sizes must be positive, got ",
                kernel_size_);
  SPEAR_CHECK_T(ConfigError,
                ndim == 1 ? grid_.empty() : grid_.size() == 2 && grid_[0] > 0 && grid_[1] > 0,
                "ConvSPE: a ", ndim, "-D code needs ",
                ndim == 1 ? "no grid" : "a grid {N1, N2} of positive sizes", ", got grid ", grid_,
                " for kernel_size ", kernel_size_);
  // The reference's init: U[0, 1) / sqrt(prod(P) / 2), so that the expected kernel at init is
  // the triangle 0.5 (1 - |tau| / P) in 1-D (spec 3.3).
  Shape shape = {heads * features, 1};
  double taps_count = 1;
  for (int64_t p : kernel_size_) {
    shape.push_back(p);
    taps_count *= static_cast<double>(p);
  }
  NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(taps_count / 2.0);
  conv_q = register_parameter("conv_q", rand(shape, f32, init_gen) * bound);
  conv_k = register_parameter("conv_k", rand(shape, f32, init_gen) * bound);
}

// q, k: (B,N,H,D) at positions offset .. offset+N-1 -> qhat, khat: (B,N,H,R)
std::pair<Tensor, Tensor> ConvSPE::filter(const Tensor& q, const Tensor& k, int64_t offset,
                                          const Gate& gate) const {
  SPEAR_CHECK_SHAPE(
      q.dim() == 4 && q.shape() == k.shape() && q.size(2) == heads_ && q.size(3) == features_,
      "conv_spe.filter: expected q, k of one shape (B, N, ", heads_, ", ", features_, "), got q ",
      q.shape(), ", k ", k.shape());
  SPEAR_CHECK_DTYPE(q.dtype() == conv_q.dtype() && k.dtype() == conv_q.dtype(),
                    "conv_spe.filter: q, k are ", q.dtype(), ", ", k.dtype(),
                    " but the parameters are ", conv_q.dtype());
  const kernels::ConvSpeGrid g = positions(*this, grid_, q.size(1), offset, "conv_spe.filter");
  // As in the reference, conv_k makes Qbar and conv_q makes Kbar.
  std::vector<Tensor> out = ConvSpeFilterFn::apply(q, k, conv_k, conv_q, gate.a, gate.w, g);
  return {out[0], out[1]};
}

// -> Qbar, Kbar: (1,N,H,D,R). The filtering is a sum over the taps of shifted noise slices.
std::pair<Tensor, Tensor> ConvSPE::codes(int64_t n, int64_t offset) const {
  const kernels::ConvSpeGrid g = positions(*this, grid_, n, offset, "conv_spe.codes");
  const int64_t C = heads_ * features_, R = realizations_;
  const int64_t P1 = kernel_size_[0], P2 = kernel_size_.size() == 2 ? kernel_size_[1] : 1;
  // eps: (rows + P1 - 1, cols + P2 - 1, C, R), a constant
  const Tensor eps = kernels::conv_spe_noise(g.seed, g.first_row, g.rows + P1 - 1, g.cols + P2 - 1,
                                             C, R, conv_q.dtype());
  auto filtered = [&](const Tensor& weight) {
    const Tensor w = taps(weight);
    Tensor code;
    for (int64_t j1 = 0; j1 < P1; ++j1)
      for (int64_t j2 = 0; j2 < P2; ++j2) {
        Tensor term = eps.narrow(0, j1, g.rows).narrow(1, j2, g.cols) *
                      w.narrow(1, j1, 1).narrow(2, j2, 1).reshape({C, 1});
        code = code.defined() ? code + term : term;
      }
    return (code * g.scale).reshape({1, n, heads_, features_, R});
  };
  return {filtered(conv_k), filtered(conv_q)};
}

// lags: (L) i64, or (L, 2) in 2-D -> P: (H,D,L), P[c, tau] = sum_j Wk[c,j] Wq[c,j+tau]
Tensor ConvSPE::expected_kernel(const Tensor& lags) const {
  const int64_t ndim = static_cast<int64_t>(kernel_size_.size());
  SPEAR_CHECK_SHAPE(ndim == 1 ? lags.dim() == 1 : lags.dim() == 2 && lags.size(1) == 2,
                    "conv_spe.expected_kernel: lags must be ", ndim == 1 ? "(L)" : "(L, 2)",
                    " for a ", ndim, "-D code, got ", lags.shape());
  SPEAR_CHECK_DTYPE(lags.dtype() == i64, "conv_spe.expected_kernel: lags must be i64, got ",
                    lags.dtype());
  const int64_t C = heads_ * features_, L = lags.size(0);
  const Tensor wk = taps(conv_k), wq = taps(conv_q);
  const int64_t P1 = wk.size(1), P2 = wk.size(2);
  const std::vector<int64_t> tau = lags.to_vector<int64_t>();
  std::vector<Tensor> columns;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t t1 = tau[l * ndim], t2 = ndim == 2 ? tau[l * 2 + 1] : 0;
    // The taps j with both j and j + tau inside the filter: j from max(0, -tau), P - |tau| of them.
    const int64_t len1 = P1 - std::abs(t1), len2 = P2 - std::abs(t2);
    if (len1 <= 0 || len2 <= 0) {
      columns.push_back(zeros({C}, wk.dtype()));
      continue;
    }
    const int64_t j1 = std::max<int64_t>(0, -t1), j2 = std::max<int64_t>(0, -t2);
    Tensor a = wk.narrow(1, j1, len1).narrow(2, j2, len2);
    Tensor b = wq.narrow(1, j1 + t1, len1).narrow(2, j2 + t2, len2);
    columns.push_back(sum(a * b, {1, 2}));
  }
  if (columns.empty()) return zeros({heads_, features_, 0}, wk.dtype());
  return stack(columns, 1).reshape({heads_, features_, L});
}

}  // namespace spear::spe
