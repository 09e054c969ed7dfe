// Copies between strided views, with broadcasting and dtype conversion.
// dst: S, src: broadcastable to S -> dst holds src (converted to dst's dtype).
#include <cstring>

#include "tensor/kernels/iterate.h"
#include "tensor/kernels/kernels.h"

namespace spear::kernels {

Shape broadcast_strides(const Tensor& t, const Shape& to) {
  Shape strides(to.size(), 0);
  size_t lead = to.size() - t.shape().size();
  for (size_t d = 0; d < t.shape().size(); ++d)
    strides[lead + d] = t.shape()[d] == 1 ? 0 : t.strides()[d];
  return strides;
}

void copy_into(const Tensor& dst, const Tensor& src) {
  SPEAR_CHECK_SHAPE(broadcast_shapes(dst.shape(), src.shape(), "copy_") == dst.shape(),
                    "copy_: source shape ", src.shape(), " does not broadcast to ", dst.shape());
  SPEAR_DISPATCH_ALL(dst.dtype(), "copy_", [&] {
    using dst_t = scalar_t;
    SPEAR_DISPATCH_ALL(src.dtype(), "copy_", [&] {
      dst_t* out = dst.data_ptr<dst_t>();
      const scalar_t* in = src.data_ptr<scalar_t>();
      parallel_runs<2>(
          dst.shape(), {dst.strides(), broadcast_strides(src, dst.shape())},
          [&](int64_t n, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& st) {
            for (int64_t j = 0; j < n; ++j)
              out[off[0] + j * st[0]] = static_cast<dst_t>(in[off[1] + j * st[1]]);
          });
    });
  });
}

Tensor clone(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (x.is_contiguous())
    std::memcpy(out.raw_data(), x.raw_data(), static_cast<size_t>(x.numel()) * itemsize(x.dtype()));
  else
    copy_into(out, x);
  return out;
}

Tensor contiguous(const Tensor& x) {
  return x.is_contiguous() ? x : clone(x);
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor out = Tensor::empty(x.shape(), dtype);
  copy_into(out, x);
  return out;
}

}  // namespace spear::kernels
