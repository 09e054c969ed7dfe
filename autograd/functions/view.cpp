// Differentiable views and copies. A view's backward puts the gradient back into the input's
// geometry: reshape it back, permute it back, or scatter it into zeros for a slice.
#include <numeric>

#include "autograd/function.h"
#include "autograd/ops.h"
#include "tensor/kernels/kernels.h"

namespace spear {
namespace {

// x: S -> y: S' with numel(S') == numel(S) (reshape, view, flatten, squeeze, unsqueeze).
// With must_view, a copy is an error instead of a fallback (view()'s contract).
struct ReshapeFn : Function<ReshapeFn> {
  static constexpr const char* name = "reshape";
  static Tensor forward(Context&, const Tensor& x, const Shape& shape, bool must_view) {
    return must_view ? kernels::view(x, shape) : kernels::reshape(x, shape);
  }
  // dx = reshape(g, S)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {kernels::reshape(g, ctx.input_shape(0))};
  }
};
SPEAR_REGISTER_FUNCTION(ReshapeFn);

// x: (S_0, ..., S_n) -> (S_dims[0], ..., S_dims[n]); ctx.dims = dims
struct PermuteFn : Function<PermuteFn> {
  static constexpr const char* name = "permute";
  static Tensor forward(Context& ctx, const Tensor& x, const std::vector<int64_t>& dims) {
    ctx.dims = dims;
    return kernels::permute(x, dims);
  }
  // dx = permute(g, inverse(dims))
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    std::vector<int64_t> inverse(ctx.dims.size());
    for (size_t i = 0; i < ctx.dims.size(); ++i)
      inverse[wrap_dim(ctx.dims[i], g.dim(), "permute")] = static_cast<int64_t>(i);
    return {kernels::permute(g, inverse)};
  }
};
SPEAR_REGISTER_FUNCTION(PermuteFn);

// x: S -> x[..., start:end:step, ...] along dim; ctx.dims = {dim, start, end, step}
struct SliceFn : Function<SliceFn> {
  static constexpr const char* name = "slice";
  static Tensor forward(Context& ctx, const Tensor& x, int64_t dim, int64_t start, int64_t end,
                        int64_t step) {
    ctx.dims = {dim, start, end, step};
    return kernels::slice(x, dim, start, end, step);
  }
  // dx = zeros(S) with g written into the slice
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    Tensor dx = zeros(ctx.input_shape(0), g.dtype());
    kernels::slice(dx, ctx.dims[0], ctx.dims[1], ctx.dims[2], ctx.dims[3]).copy_(g);
    return {dx};
  }
};
SPEAR_REGISTER_FUNCTION(SliceFn);

// x: S -> broadcast to S' (stride-0 view)
struct ExpandFn : Function<ExpandFn> {
  static constexpr const char* name = "expand";
  static Tensor forward(Context&, const Tensor& x, const Shape& shape) {
    return kernels::expand(x, shape);
  }
  // dx = g summed over the broadcast dims (done by the engine)
  static std::vector<Tensor> backward(Context&, const Tensor& g) { return {g}; }
};
SPEAR_REGISTER_FUNCTION(ExpandFn);

// x: S -> a copy of x: S (clone always copies; contiguous copies only when x is strided)
struct CloneFn : Function<CloneFn> {
  static constexpr const char* name = "clone";
  static Tensor forward(Context&, const Tensor& x, bool always) {
    return always ? kernels::clone(x) : kernels::contiguous(x);
  }
  // dx = g
  static std::vector<Tensor> backward(Context&, const Tensor& g) { return {g}; }
};
SPEAR_REGISTER_FUNCTION(CloneFn);

// x: S of one dtype -> S of another
struct ToDtypeFn : Function<ToDtypeFn> {
  static constexpr const char* name = "to";
  static Tensor forward(Context&, const Tensor& x, DType dtype) {
    return kernels::to_dtype(x, dtype);
  }
  // dx = g converted back (done by the engine)
  static std::vector<Tensor> backward(Context&, const Tensor& g) { return {g}; }
};
SPEAR_REGISTER_FUNCTION(ToDtypeFn);

}  // namespace

Tensor clone(const Tensor& x) {
  return CloneFn::apply(x, true);
}
Tensor contiguous(const Tensor& x) {
  return x.is_contiguous() ? x : CloneFn::apply(x, false);
}
Tensor to(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  if (!is_floating(dtype)) return kernels::to_dtype(x, dtype);  // integers carry no gradient
  return ToDtypeFn::apply(x, dtype);
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  return ReshapeFn::apply(x, shape, false);
}
Tensor view(const Tensor& x, const Shape& shape) {
  return ReshapeFn::apply(x, shape, true);
}
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  return PermuteFn::apply(x, dims);
}
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  std::vector<int64_t> dims(x.dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(dim0, x.dim(), "transpose")], dims[wrap_dim(dim1, x.dim(), "transpose")]);
  return PermuteFn::apply(x, dims);
}
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  return SliceFn::apply(x, dim, start, end, step);
}
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  kernels::narrow(x, dim, start, length);  // throws when the range is out of bounds
  return SliceFn::apply(x, dim, start, start + length, int64_t(1));
}
Tensor squeeze(const Tensor& x) {
  return ReshapeFn::apply(x, kernels::squeeze(x).shape(), true);
}
Tensor squeeze(const Tensor& x, int64_t dim) {
  return ReshapeFn::apply(x, kernels::squeeze(x, dim).shape(), true);
}
Tensor unsqueeze(const Tensor& x, int64_t dim) {
  return ReshapeFn::apply(x, kernels::unsqueeze(x, dim).shape(), true);
}
Tensor expand(const Tensor& x, const Shape& shape) {
  return ExpandFn::apply(x, shape);
}
Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  return ReshapeFn::apply(x, kernels::flattened_shape(x.shape(), start_dim, end_dim), false);
}

}  // namespace spear
