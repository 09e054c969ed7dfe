// Cumulative sums along one dim.
// x: (..., N, ...) -> y: same shape; y[i] = x[0] + ... + x[i] along dim, or x[i] + ... + x[N-1]
// (suffix sums) when reverse.
// Each row is one running sum, added in the order of the scan, so threads only split the rows and
// the result never depends on their number. The running sum is kept in double for f32 and f64
// (each output is rounded once from it) and in int64 for i64.
#include <algorithm>

#include "tensor/kernels/kernels.h"
#include "tensor/kernels/reduce.h"

namespace spear::kernels {

Tensor cumsum(const Tensor& x, int64_t dim, bool reverse) {
  dim = wrap_dim(dim, x.dim(), "cumsum");
  const Tensor in = contiguous(x);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const DimRows rows(x.shape(), dim);
  SPEAR_DISPATCH_ALL(x.dtype(), "cumsum", [&] {
    const scalar_t* xp = in.data_ptr<scalar_t>();
    scalar_t* yp = out.data_ptr<scalar_t>();
    const int64_t work = rows.n * std::min(rows.inner, kBundle);
    parallel_for(0, rows.bundles(), grain_for(work), [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        const int64_t start = rows.start(b), width = rows.width(b);
        acc_t<scalar_t> acc[kBundle] = {};  // one running sum per row of the bundle
        for (int64_t step = 0; step < rows.n; ++step) {
          const int64_t k = reverse ? rows.n - 1 - step : step;
          const int64_t first = start + k * rows.inner;
          for (int64_t j = 0; j < width; ++j) {
            acc[j] += xp[first + j];
            yp[first + j] = static_cast<scalar_t>(acc[j]);
          }
        }
      }
    });
  });
  return out;
}

}  // namespace spear::kernels
