// Cross-entropy fused with log-softmax.
//
// A row x of C logits with target t has log p_c = x_c - lse, lse = logsumexp(x), so
//   loss_row = (1 - eps) * (lse - x_t) + eps * (lse - mean_c x_c)
// where the second term is mean_c(-log p_c), the cross-entropy against the uniform distribution
// (label smoothing eps). The loss is the mean of loss_row over the rows whose target is not
// ignore_index. Its gradient is
//   dlogits_row = (softmax(x) - q) * g / count,   q = (1 - eps) * onehot(t) + eps / C
// and zero on ignored rows. Nothing of size (N, C) is stored between the passes: the backward
// recomputes softmax(x) = e^(x - lse) from the saved lse.
//
// Row work is done in double, for f32 too. Row losses are added in row order on one thread, so
// the mean does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"

namespace spear::kernels {
namespace {

// logits as (n, c) rows and targets as (n), both contiguous, after every check.
struct LossRows {
  Tensor logits, targets;
  int64_t n = 0, c = 0;
  int64_t count = 0;  // targets that are not ignore_index
};

LossRows loss_rows(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                   double label_smoothing, const char* op) {
  SPEAR_CHECK_DTYPE(logits.is_floating_point(), op, ": logits must be floating, got ",
                    logits.dtype());
  SPEAR_CHECK_DTYPE(targets.dtype() == i64, op, ": targets must be i64 class ids, got ",
                    targets.dtype());
  SPEAR_CHECK_SHAPE(logits.dim() >= 1 && logits.size(-1) >= 1, op,
                    ": logits must have a last dim of at least one class, got shape ",
                    logits.shape());
  const Shape rows_shape(logits.shape().begin(), logits.shape().end() - 1);
  SPEAR_CHECK_SHAPE(targets.shape() == rows_shape, op, ": targets shape ", targets.shape(),
                    " does not match logits ", logits.shape(), " (expected ", rows_shape, ")");
  SPEAR_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, op,
              ": label_smoothing must be in [0, 1], got ", label_smoothing);
  LossRows rows{contiguous(logits), contiguous(targets), shape_numel(rows_shape), logits.size(-1)};
  const int64_t* t = rows.targets.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows.n; ++r) {
    if (t[r] == ignore_index) continue;
    SPEAR_CHECK(t[r] >= 0 && t[r] < rows.c, op, ": target ", t[r], " out of range [0, ", rows.c,
                ") at position ", r);
    ++rows.count;
  }
  return rows;
}

}  // namespace

// logits: (..., C), targets: (...) -> loss: (), logsumexp: (...)
CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                                 double label_smoothing) {
  const LossRows rows = loss_rows(logits, targets, ignore_index, label_smoothing, "cross_entropy");
  CrossEntropyResult out{Tensor::empty({}, logits.dtype()),
                         Tensor::empty(targets.shape(), logits.dtype())};
  const double eps = label_smoothing;
  SPEAR_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    const scalar_t* xp = rows.logits.data_ptr<scalar_t>();
    const int64_t* tp = rows.targets.data_ptr<int64_t>();
    scalar_t* lse_p = out.logsumexp.data_ptr<scalar_t>();
    std::vector<double> row_loss(static_cast<size_t>(rows.n), 0.0);
    parallel_for(0, rows.n, grain_for(rows.c), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const scalar_t* xr = xp + r * rows.c;
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t k = 0; k < rows.c; ++k) m = std::max(m, static_cast<double>(xr[k]));
        double s = 0, sum_x = 0;
        for (int64_t k = 0; k < rows.c; ++k) {
          s += std::exp(xr[k] - m);
          sum_x += xr[k];
        }
        const double lse = m + std::log(s);
        lse_p[r] = static_cast<scalar_t>(lse);
        if (tp[r] == ignore_index) continue;
        row_loss[r] = (1 - eps) * (lse - xr[tp[r]]);
        // Skipped when eps is 0, so a -inf logit (a masked class) does not give 0 * inf = NaN.
        if (eps > 0) row_loss[r] += eps * (lse - sum_x / static_cast<double>(rows.c));
      }
    });
    double total = 0;
    for (double l : row_loss) total += l;
    out.loss.data_ptr<scalar_t>()[0] =
        static_cast<scalar_t>(total / static_cast<double>(rows.count));
  });
  return out;
}

// grad: (), logits: (..., C), targets, logsumexp: (...) -> dlogits: (..., C)
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& targets,
                              const Tensor& logsumexp, int64_t ignore_index,
                              double label_smoothing) {
  const LossRows rows =
      loss_rows(logits, targets, ignore_index, label_smoothing, "cross_entropy_backward");
  SPEAR_CHECK_SHAPE(grad.numel() == 1 && logsumexp.shape() == targets.shape(),
                    "cross_entropy_backward: expected a one-element grad and logsumexp of shape ",
                    targets.shape(), ", got ", grad.shape(), " and ", logsumexp.shape());
  Tensor out = Tensor::empty(logits.shape(), logits.dtype());
  const double eps = label_smoothing;
  const double uniform = eps / static_cast<double>(rows.c);
  // count == 0 only when every row is ignored; then no row uses the (infinite) scale.
  const double scale = grad.item<double>() / static_cast<double>(rows.count);
  const Tensor lse = contiguous(logsumexp);
  SPEAR_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_backward", [&] {
    const scalar_t *xp = rows.logits.data_ptr<scalar_t>(), *lse_p = lse.data_ptr<scalar_t>();
    const int64_t* tp = rows.targets.data_ptr<int64_t>();
    scalar_t* dp = out.data_ptr<scalar_t>();
    parallel_for(0, rows.n, grain_for(rows.c), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const scalar_t* xr = xp + r * rows.c;
        scalar_t* dr = dp + r * rows.c;
        if (tp[r] == ignore_index) {
          std::fill(dr, dr + rows.c, scalar_t(0));
          continue;
        }
        for (int64_t k = 0; k < rows.c; ++k) {
          const double q = uniform + (k == tp[r] ? 1 - eps : 0.0);
          dr[k] =
              static_cast<scalar_t>((std::exp(xr[k] - static_cast<double>(lse_p[r])) - q) * scale);
        }
      }
    });
  });
  return out;
}

}  // namespace spear::kernels
