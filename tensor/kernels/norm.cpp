// Layer normalisation over the last dim, and its backward pass.
//
// Each row of C elements is normalised on its own:
//   mean = sum(x) / C,   rstd = 1 / sqrt(sum((x - mean)^2) / C + eps),   xhat = (x - mean) * rstd
//   y = xhat * weight + bias
// Row statistics are computed in double, for f32 too (two passes, so a large mean does not cancel
// the spread), and returned so the backward pass does not recompute them.
//
// dweight and dbias sum over every row. Rows are grouped into blocks of kRowBlock; each block sums
// its rows in order into a partial, and the partials are added in block order. The block size is
// a constant, so the order of additions depends on the shape only, never on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"

namespace spear::kernels {
namespace {

constexpr int64_t kRowBlock = 64;

// weight and bias must be (C), in x's dtype.
void check_param(const Tensor& x, const Tensor& p, const char* what, const char* op) {
  SPEAR_CHECK_SHAPE(p.shape() == Shape{x.size(-1)}, op, ": ", what, " shape ", p.shape(),
                    " does not match the normalised last dim of input ", x.shape());
  SPEAR_CHECK_DTYPE(p.dtype() == x.dtype(), op, ": ", what, " is ", p.dtype(), " but input is ",
                    x.dtype());
}

}  // namespace

// x: (..., C), weight: (C), bias: (C) -> y: (..., C), mean: (...), rstd: (...)
LayerNormResult layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  SPEAR_CHECK_SHAPE(x.dim() >= 1, "layer_norm: input must have at least 1 dim, got shape ",
                    x.shape());
  SPEAR_CHECK_DTYPE(x.is_floating_point(), "layer_norm: expected a floating input, got ",
                    x.dtype());
  check_param(x, weight, "weight", "layer_norm");
  check_param(x, bias, "bias", "layer_norm");
  const int64_t c = x.size(-1);
  const Shape row_shape(x.shape().begin(), x.shape().end() - 1);
  LayerNormResult out{Tensor::empty(x.shape(), x.dtype()), Tensor::empty(row_shape, x.dtype()),
                      Tensor::empty(row_shape, x.dtype())};
  const Tensor in = contiguous(x), w = contiguous(weight), b = contiguous(bias);
  SPEAR_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&] {
    const scalar_t *xp = in.data_ptr<scalar_t>(), *wp = w.data_ptr<scalar_t>(),
                   *bp = b.data_ptr<scalar_t>();
    scalar_t *yp = out.y.data_ptr<scalar_t>(), *mp = out.mean.data_ptr<scalar_t>(),
             *rp = out.rstd.data_ptr<scalar_t>();
    parallel_for(0, shape_numel(row_shape), grain_for(c), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const scalar_t* xr = xp + r * c;
        double sum = 0;
        for (int64_t k = 0; k < c; ++k) sum += xr[k];
        const double mean = sum / static_cast<double>(c);
        double squares = 0;
        for (int64_t k = 0; k < c; ++k) squares += (xr[k] - mean) * (xr[k] - mean);
        const double rstd = 1.0 / std::sqrt(squares / static_cast<double>(c) + eps);
        for (int64_t k = 0; k < c; ++k)
          yp[r * c + k] = static_cast<scalar_t>((xr[k] - mean) * rstd * wp[k] + bp[k]);
        mp[r] = static_cast<scalar_t>(mean);
        rp[r] = static_cast<scalar_t>(rstd);
      }
    });
  });
  return out;
}

// grad, x: (..., C), weight: (C), mean, rstd: (...) -> dx: (..., C), dweight: (C), dbias: (C)
LayerNormGrads layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                                   const Tensor& mean, const Tensor& rstd) {
  SPEAR_CHECK_SHAPE(x.dim() >= 1 && grad.shape() == x.shape(), "layer_norm_backward: grad shape ",
                    grad.shape(), " does not match input ", x.shape());
  check_param(x, weight, "weight", "layer_norm_backward");
  const int64_t c = x.size(-1);
  const int64_t rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  SPEAR_CHECK_SHAPE(mean.numel() == rows && rstd.numel() == rows, "layer_norm_backward: expected ",
                    rows, " row statistics for input ", x.shape(), ", got mean ", mean.shape(),
                    " and rstd ", rstd.shape());
  LayerNormGrads out{Tensor::empty(x.shape(), x.dtype()), Tensor::empty({c}, x.dtype()),
                     Tensor::empty({c}, x.dtype())};
  const Tensor g = contiguous(grad), in = contiguous(x), w = contiguous(weight),
               m = contiguous(mean), s = contiguous(rstd);
  SPEAR_DISPATCH_FLOAT(x.dtype(), "layer_norm_backward", [&] {
    const scalar_t *gp = g.data_ptr<scalar_t>(), *xp = in.data_ptr<scalar_t>(),
                   *wp = w.data_ptr<scalar_t>(), *mp = m.data_ptr<scalar_t>(),
                   *sp = s.data_ptr<scalar_t>();
    scalar_t* dxp = out.dx.data_ptr<scalar_t>();
    const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
    // Per block: C partial sums of g * xhat (for dweight), then C of g (for dbias).
    std::vector<double> partial(static_cast<size_t>(blocks * 2 * c), 0.0);
    parallel_for(0, blocks, grain_for(kRowBlock * c), [&](int64_t lo, int64_t hi) {
      for (int64_t blk = lo; blk < hi; ++blk) {
        double* dw = partial.data() + blk * 2 * c;
        double* db = dw + c;
        for (int64_t r = blk * kRowBlock; r < std::min(rows, (blk + 1) * kRowBlock); ++r) {
          const scalar_t *gr = gp + r * c, *xr = xp + r * c;
          const double mu = mp[r], rs = sp[r];
          // dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat))
          double gw_sum = 0, gw_xhat_sum = 0;
          for (int64_t k = 0; k < c; ++k) {
            const double gw = static_cast<double>(gr[k]) * wp[k];
            gw_sum += gw;
            gw_xhat_sum += gw * (xr[k] - mu) * rs;
          }
          const double gw_mean = gw_sum / static_cast<double>(c);
          const double gw_xhat_mean = gw_xhat_sum / static_cast<double>(c);
          for (int64_t k = 0; k < c; ++k) {
            const double xhat = (xr[k] - mu) * rs;
            const double gw = static_cast<double>(gr[k]) * wp[k];
            dxp[r * c + k] = static_cast<scalar_t>(rs * (gw - gw_mean - xhat * gw_xhat_mean));
            dw[k] += gr[k] * xhat;
            db[k] += gr[k];
          }
        }
      }
    });
    scalar_t *dwp = out.dweight.data_ptr<scalar_t>(), *dbp = out.dbias.data_ptr<scalar_t>();
    parallel_for(0, c, grain_for(2 * blocks), [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) {
        double dw = 0, db = 0;
        for (int64_t blk = 0; blk < blocks; ++blk) {
          dw += partial[blk * 2 * c + k];
          db += partial[blk * 2 * c + c + k];
        }
        dwp[k] = static_cast<scalar_t>(dw);
        dbp[k] = static_cast<scalar_t>(db);
      }
    });
  });
  return out;
}

}  // namespace spear::kernels
