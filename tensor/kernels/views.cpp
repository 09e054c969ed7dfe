// Views: new shape, strides and offset over the same storage. No element is copied, except by
// reshape when the requested shape cannot be expressed with strides.
#include <algorithm>
#include <numeric>

#include "tensor/kernels/kernels.h"

namespace spear::kernels {
namespace {

Tensor restride(const Tensor& x, const Shape& shape, const Shape& strides, int64_t offset) {
  return Tensor::make_view(x.storage(), shape, strides, offset, x.dtype());
}

// Replaces a single -1 by the size that keeps numel; checks the element count.
Shape infer_size(Shape shape, int64_t numel, const char* op) {
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      SPEAR_CHECK_SHAPE(infer_at < 0, op, ": only one dimension can be -1, got ", shape);
      infer_at = static_cast<int64_t>(i);
    } else {
      SPEAR_CHECK_SHAPE(shape[i] >= 0, op, ": invalid size in ", shape);
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    SPEAR_CHECK_SHAPE(known != 0 && numel % known == 0, op, ": shape ", shape,
                      " is invalid for input of size ", numel);
    shape[infer_at] = numel / known;
  }
  SPEAR_CHECK_SHAPE(shape_numel(shape) == numel, op, ": shape ", shape,
                    " is invalid for input of size ", numel);
  return shape;
}

// Strides for viewing x as `shape` without a copy; false when impossible. Old dims are taken
// from the right in chunks that are contiguous with each other; each chunk must be split exactly
// into whole new dims, which then get strides inside that chunk.
bool view_strides(const Tensor& x, const Shape& shape, Shape& strides) {
  strides.assign(shape.size(), 0);
  if (x.numel() == 0 || x.dim() == 0) {
    strides = contiguous_strides(shape);
    return true;
  }
  const Shape& old_shape = x.shape();
  const Shape& old_strides = x.strides();
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    bool chunk_ends =
        d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
      strides[view_d] = view_numel * chunk_base_stride;
      view_numel *= shape[view_d];
      --view_d;
    }
    if (view_numel != tensor_numel) return false;
    if (d > 0) {
      chunk_base_stride = old_strides[d - 1];
      tensor_numel = view_numel = 1;
    }
  }
  return view_d == -1;
}

}  // namespace

Tensor view(const Tensor& x, Shape shape) {
  shape = infer_size(std::move(shape), x.numel(), "view");
  Shape strides;
  SPEAR_CHECK_SHAPE(view_strides(x, shape, strides), "view: cannot view a tensor of shape ",
                    x.shape(), " with strides ", x.strides(), " as ", shape,
                    " without a copy; use reshape");
  return restride(x, shape, strides, x.offset());
}

Tensor reshape(const Tensor& x, Shape shape) {
  shape = infer_size(std::move(shape), x.numel(), "reshape");
  Shape strides;
  if (view_strides(x, shape, strides)) return restride(x, shape, strides, x.offset());
  return view(clone(x), shape);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  SPEAR_CHECK_SHAPE(static_cast<int64_t>(dims.size()) == x.dim(), "permute: got ", dims.size(),
                    " dims for a tensor of rank ", x.dim());
  Shape shape(dims.size()), strides(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], x.dim(), "permute");
    SPEAR_CHECK_SHAPE(!seen[d], "permute: dim ", d, " repeated in ", Shape(dims));
    seen[d] = true;
    shape[i] = x.shape()[d];
    strides[i] = x.strides()[d];
  }
  return restride(x, shape, strides, x.offset());
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  std::vector<int64_t> dims(x.dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(dim0, x.dim(), "transpose")], dims[wrap_dim(dim1, x.dim(), "transpose")]);
  return permute(x, dims);
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  dim = wrap_dim(dim, x.dim(), "slice");
  SPEAR_CHECK_SHAPE(step > 0, "slice: step must be positive, got ", step);
  int64_t size = x.shape()[dim];
  // Python semantics: negative indices count from the end, out-of-range bounds are clamped.
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, start, size);
  Shape shape = x.shape(), strides = x.strides();
  shape[dim] = (end - start + step - 1) / step;
  strides[dim] *= step;
  return restride(x, shape, strides, x.offset() + start * x.strides()[dim]);
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  int64_t d = wrap_dim(dim, x.dim(), "narrow");
  SPEAR_CHECK_SHAPE(start >= 0 && length >= 0 && start + length <= x.shape()[d], "narrow: range [",
                    start, ", ", start + length, ") out of bounds for dim ", d, " of shape ",
                    x.shape());
  return slice(x, d, start, start + length);
}

Tensor squeeze(const Tensor& x) {
  Shape shape, strides;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (x.shape()[d] != 1) {
      shape.push_back(x.shape()[d]);
      strides.push_back(x.strides()[d]);
    }
  return restride(x, shape, strides, x.offset());
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  dim = wrap_dim(dim, x.dim(), "squeeze");
  if (x.shape()[dim] != 1) return x;
  Shape shape = x.shape(), strides = x.strides();
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return restride(x, shape, strides, x.offset());
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  dim = wrap_dim(dim, x.dim() + 1, "unsqueeze");
  Shape shape = x.shape(), strides = x.strides();
  int64_t stride = dim < x.dim() ? x.strides()[dim] * x.shape()[dim] : 1;
  shape.insert(shape.begin() + dim, 1);
  strides.insert(strides.begin() + dim, stride);
  return restride(x, shape, strides, x.offset());
}

Tensor expand(const Tensor& x, const Shape& shape) {
  SPEAR_CHECK_SHAPE(shape.size() >= x.shape().size(), "expand: cannot expand shape ", x.shape(),
                    " to fewer dims ", shape);
  size_t lead = shape.size() - x.shape().size();
  Shape out_shape(shape.size()), strides(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      SPEAR_CHECK_SHAPE(shape[i] >= 0, "expand: new leading dim must be >= 0 in ", shape);
      out_shape[i] = shape[i];
      continue;
    }
    int64_t have = x.shape()[i - lead];
    int64_t want = shape[i] == -1 ? have : shape[i];
    SPEAR_CHECK_SHAPE(want == have || have == 1, "expand: cannot expand shape ", x.shape(), " to ",
                      shape);
    out_shape[i] = want;
    strides[i] = want == have ? x.strides()[i - lead] : 0;
  }
  return restride(x, out_shape, strides, x.offset());
}

Shape flattened_shape(const Shape& shape, int64_t start_dim, int64_t end_dim) {
  const auto rank = static_cast<int64_t>(shape.size());
  if (rank == 0) return {1};
  start_dim = wrap_dim(start_dim, rank, "flatten");
  end_dim = wrap_dim(end_dim, rank, "flatten");
  SPEAR_CHECK_SHAPE(start_dim <= end_dim, "flatten: start_dim ", start_dim, " > end_dim ", end_dim);
  Shape out(shape.begin(), shape.begin() + start_dim);
  int64_t merged = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) merged *= shape[d];
  out.push_back(merged);
  out.insert(out.end(), shape.begin() + end_dim + 1, shape.end());
  return out;
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  return reshape(x, flattened_shape(x.shape(), start_dim, end_dim));
}

}  // namespace spear::kernels
