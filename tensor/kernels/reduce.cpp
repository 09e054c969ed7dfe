// Reductions: sum, mean, amax/amin, argmax/argmin, var, and sum_to (the adjoint of broadcasting).
// x: (..) -> x's shape with the reduced dims removed (kept as size 1 with keepdim).
// Each runs on the row layout of reduce.h (sums may read columns in place) in its fixed order.
#include "tensor/kernels/reduce.h"

#include <cmath>
#include <string>
#include <tuple>
#include <utility>

#include "tensor/kernels/kernels.h"

namespace spear::kernels {

ReductionRows reduction_rows(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim,
                             const char* op, bool allow_columns) {
  const int64_t rank = x.dim();
  // A 0-d tensor still accepts dim 0 or -1, which reduce its single element.
  std::vector<bool> reduced(static_cast<size_t>(std::max<int64_t>(rank, 1)), dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, rank, op);
    SPEAR_CHECK_SHAPE(!reduced[w], op, ": dim ", w, " appears more than once in dims ",
                      Shape(dims));
    reduced[w] = true;
  }
  ReductionRows rows;
  std::vector<int64_t> kept, gone;
  for (int64_t d = 0; d < rank; ++d) {
    if (reduced[d]) {
      gone.push_back(d);
      rows.inner *= x.shape()[d];
      if (keepdim) rows.out_shape.push_back(1);
    } else {
      kept.push_back(d);
      rows.outer *= x.shape()[d];
      rows.out_shape.push_back(x.shape()[d]);
    }
  }
  std::vector<int64_t> kept_then_gone = kept, gone_then_kept = gone;
  kept_then_gone.insert(kept_then_gone.end(), gone.begin(), gone.end());
  gone_then_kept.insert(gone_then_kept.end(), kept.begin(), kept.end());
  const Tensor as_rows = permute(x, kept_then_gone), as_columns = permute(x, gone_then_kept);
  rows.columns = allow_columns && !as_rows.is_contiguous() && as_columns.is_contiguous();
  rows.data = rows.columns ? as_columns : contiguous(as_rows);
  return rows;
}

namespace {

// sum of nothing is 0, but the max or mean of nothing is undefined (PyTorch raises for max too).
void check_not_empty(const ReductionRows& rows, const Tensor& x, const std::vector<int64_t>& dims,
                     const char* op) {
  SPEAR_CHECK(rows.inner > 0, op, ": cannot reduce over zero elements (input shape ", x.shape(),
              ", ", dims.empty() ? std::string("all dims") : str_cat("dims ", Shape(dims)), ")");
}

// One value per row, rounded to T, in a new tensor of the reduced shape.
template <typename T, typename Acc>
Tensor make_output(const ReductionRows& rows, const std::vector<Acc>& values) {
  Tensor out = Tensor::empty(rows.out_shape, dtype_of<T>());
  T* p = out.data_ptr<T>();
  for (int64_t r = 0; r < rows.outer; ++r) p[r] = static_cast<T>(values[r]);
  return out;
}

template <typename T>
std::vector<acc_t<T>> row_sums(const ReductionRows& rows) {
  return sum_rows<T>(rows, [](int64_t, T v) { return static_cast<acc_t<T>>(v); });
}

template <typename T>
std::vector<double> row_means(const ReductionRows& rows) {
  std::vector<double> means = row_sums<T>(rows);
  for (double& m : means) m /= static_cast<double>(rows.inner);
  return means;
}

template <typename T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(v);
  return false;
}

// The most extreme element of each row and the FIRST position where it occurs; beyond(a, b) says
// a is strictly more extreme than b. NaN is beyond every number, so it propagates (as in PyTorch).
template <typename T, typename Beyond>
std::vector<std::pair<T, int64_t>> extreme_rows(const ReductionRows& rows, Beyond beyond) {
  using Best = std::pair<T, int64_t>;
  auto replaces = [&](T a, T b) { return is_nan(a) ? !is_nan(b) : beyond(a, b); };
  const T* data = rows.data.data_ptr<T>();
  return reduce_rows<Best>(
      rows.outer, rows.inner, Best{},
      [&](int64_t r, int64_t begin, int64_t end) {
        const T* row = data + r * rows.inner;
        Best best{row[begin], begin};
        for (int64_t i = begin + 1; i < end; ++i)
          if (replaces(row[i], best.first)) best = {row[i], i};
        return best;
      },
      // Ties keep the left partial, which holds the earlier position.
      [&](const Best& left, const Best& right) {
        return replaces(right.first, left.first) ? right : left;
      });
}

// amax, amin, argmax and argmin share one scan; `want_index` picks which half of its answer.
template <typename Beyond>
Tensor extreme(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool want_index,
               const char* op) {
  ReductionRows rows = reduction_rows(x, dims, keepdim, op);
  check_not_empty(rows, x, dims, op);
  return SPEAR_DISPATCH_ALL(x.dtype(), op, [&] {
    std::vector<std::pair<scalar_t, int64_t>> best = extreme_rows<scalar_t>(rows, Beyond());
    std::vector<scalar_t> values(best.size());
    std::vector<int64_t> indices(best.size());
    for (size_t r = 0; r < best.size(); ++r) std::tie(values[r], indices[r]) = best[r];
    return want_index ? make_output<int64_t>(rows, indices) : make_output<scalar_t>(rows, values);
  });
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  ReductionRows rows = reduction_rows(x, dims, keepdim, "sum", /*allow_columns=*/true);
  return SPEAR_DISPATCH_ALL(x.dtype(), "sum",
                            [&] { return make_output<scalar_t>(rows, row_sums<scalar_t>(rows)); });
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  ReductionRows rows = reduction_rows(x, dims, keepdim, "mean", /*allow_columns=*/true);
  return SPEAR_DISPATCH_FLOAT(x.dtype(), "mean", [&] {
    check_not_empty(rows, x, dims, "mean");
    return make_output<scalar_t>(rows, row_means<scalar_t>(rows));
  });
}

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme<std::greater<>>(x, dims, keepdim, false, "amax");
}

Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme<std::less<>>(x, dims, keepdim, false, "amin");
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme<std::greater<>>(x, {dim}, keepdim, true, "argmax");
}

Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme<std::less<>>(x, {dim}, keepdim, true, "argmin");
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool unbiased) {
  ReductionRows rows = reduction_rows(x, dims, keepdim, "var", /*allow_columns=*/true);
  return SPEAR_DISPATCH_FLOAT(x.dtype(), "var", [&] {
    check_not_empty(rows, x, dims, "var");
    // Two passes, the mean and then squared deviations from it, avoid the cancellation of
    // E[x^2] - E[x]^2 when the mean is large compared with the spread.
    const std::vector<double> means = row_means<scalar_t>(rows);
    std::vector<double> squares = sum_rows<scalar_t>(rows, [&](int64_t r, scalar_t v) {
      const double d = static_cast<double>(v) - means[r];
      return d * d;
    });
    // Unbiased var of one element is 0 / 0 = NaN, as in PyTorch.
    const double divisor = static_cast<double>(unbiased ? rows.inner - 1 : rows.inner);
    for (double& s : squares) s /= divisor;
    return make_output<scalar_t>(rows, squares);
  });
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  const int64_t lead = grad.dim() - static_cast<int64_t>(shape.size());
  SPEAR_CHECK_SHAPE(lead >= 0 && broadcast_shapes(shape, grad.shape(), "sum_to") == grad.shape(),
                    "sum_to: shape ", shape, " does not broadcast to the gradient's shape ",
                    grad.shape());
  // Broadcasting added the `lead` leading dims and stretched the size-1 dims of `shape`.
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < grad.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && grad.shape()[d] != 1)) dims.push_back(d);
  // sum() reads an empty dims list as "every dim", so nothing to reduce is its own case.
  if (dims.empty()) return contiguous(grad);
  return reshape(sum(grad, dims, /*keepdim=*/true), shape);
}

}  // namespace spear::kernels
