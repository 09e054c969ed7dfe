// Differentiable reductions, softmax and cumsum. A reduction's backward spreads the gradient
// back over the reduced dims: it is reshaped to the input's rank with the reduced dims as size 1
// (the keepdim shape) and broadcast from there.
#include "autograd/function.h"
#include "autograd/ops.h"
#include "tensor/kernels/kernels.h"

namespace spear {
namespace {

// The input shape with every reduced dim set to 1 (dims empty = every dim).
Shape keepdim_shape(const Shape& shape, const std::vector<int64_t>& dims) {
  Shape kept = shape;
  const auto rank = static_cast<int64_t>(shape.size());
  if (dims.empty()) return Shape(shape.size(), 1);
  for (int64_t d : dims) kept[wrap_dim(d, rank, "reduce")] = 1;
  return kept;
}

// The gradient of a reduced output, reshaped so it broadcasts against the input.
Tensor unreduce(const Context& ctx, const Tensor& g) {
  return kernels::reshape(g, keepdim_shape(ctx.input_shape(0), ctx.dims));
}

// x: S -> sum over dims (ctx.dims; keepdim only changes the output's shape)
struct SumFn : Function<SumFn> {
  static constexpr const char* name = "sum";
  static Tensor forward(Context& ctx, const Tensor& x, const std::vector<int64_t>& dims,
                        bool keepdim) {
    ctx.dims = dims;
    return kernels::sum(x, dims, keepdim);
  }
  // dx = g broadcast over the reduced dims
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {kernels::expand(unreduce(ctx, g), ctx.input_shape(0))};
  }
};
SPEAR_REGISTER_FUNCTION(SumFn);

// x: S -> mean over dims
struct MeanFn : Function<MeanFn> {
  static constexpr const char* name = "mean";
  static Tensor forward(Context& ctx, const Tensor& x, const std::vector<int64_t>& dims,
                        bool keepdim) {
    ctx.dims = dims;
    Tensor y = kernels::mean(x, dims, keepdim);
    ctx.scalar = static_cast<double>(y.numel()) / static_cast<double>(x.numel());  // 1 / count
    return y;
  }
  // dx = g / count, broadcast over the reduced dims
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {kernels::expand(unreduce(ctx, g) * ctx.scalar, ctx.input_shape(0))};
  }
};
SPEAR_REGISTER_FUNCTION(MeanFn);

// x: S -> max (or min) over dims. Ties share the gradient equally, as in PyTorch's amax.
template <bool Max>
struct ExtremeFn : Function<ExtremeFn<Max>> {
  static constexpr const char* name = Max ? "amax" : "amin";
  static Tensor forward(Context& ctx, const Tensor& x, const std::vector<int64_t>& dims,
                        bool keepdim) {
    ctx.dims = dims;
    Tensor y = Max ? kernels::amax(x, dims, keepdim) : kernels::amin(x, dims, keepdim);
    ctx.save_for_backward({x, y});
    return y;
  }
  // dx = g * [x == y] / (number of elements equal to y)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    Tensor hit = eq(ctx.saved(0), unreduce(ctx, ctx.saved(1)));
    Tensor count = kernels::sum(hit, ctx.dims, true);
    return {hit * (unreduce(ctx, g) / count)};
  }
};
SPEAR_REGISTER_FUNCTION(ExtremeFn<true>);
SPEAR_REGISTER_FUNCTION(ExtremeFn<false>);

// x: S -> variance over dims, divided by count - 1 when unbiased (ctx.scalar = that divisor)
struct VarFn : Function<VarFn> {
  static constexpr const char* name = "var";
  static Tensor forward(Context& ctx, const Tensor& x, const std::vector<int64_t>& dims,
                        bool keepdim, bool unbiased) {
    ctx.dims = dims;
    Tensor y = kernels::var(x, dims, keepdim, unbiased);
    double count =
        static_cast<double>(x.numel()) / static_cast<double>(std::max<int64_t>(y.numel(), 1));
    ctx.scalar = unbiased ? count - 1 : count;
    ctx.save_for_backward({x});
    return y;
  }
  // dx = g * 2 (x - mean) / divisor
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    Tensor x = ctx.saved(0);
    Tensor centred = x - kernels::mean(x, ctx.dims, true);
    return {centred * (unreduce(ctx, g) * (2.0 / ctx.scalar))};
  }
};
SPEAR_REGISTER_FUNCTION(VarFn);

// x: S -> log(sum(exp(x))) over dims
struct LogsumexpFn : Function<LogsumexpFn> {
  static constexpr const char* name = "logsumexp";
  static Tensor forward(Context& ctx, const Tensor& x, const std::vector<int64_t>& dims,
                        bool keepdim) {
    ctx.dims = dims;
    Tensor y = kernels::logsumexp(x, dims, keepdim);
    ctx.save_for_backward({x, y});
    return y;
  }
  // dx = g * exp(x - y), i.e. g times the softmax of x over dims
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    Tensor p = exp(ctx.saved(0) - unreduce(ctx, ctx.saved(1)));
    return {p * unreduce(ctx, g)};
  }
};
SPEAR_REGISTER_FUNCTION(LogsumexpFn);

// x: S -> y = softmax(x) along dim: S; ctx.dims = {dim}
struct SoftmaxFn : Function<SoftmaxFn> {
  static constexpr const char* name = "softmax";
  static Tensor forward(Context& ctx, const Tensor& x, int64_t dim) {
    ctx.dims = {dim};
    Tensor y = kernels::softmax(x, dim);
    ctx.save_for_backward({y});
    return y;
  }
  // dx = y * (g - sum(g * y) along dim)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    Tensor y = ctx.saved(0);
    return {y * (g - kernels::sum(g * y, ctx.dims, true))};
  }
};
SPEAR_REGISTER_FUNCTION(SoftmaxFn);

// x: S -> y = log_softmax(x) along dim: S; ctx.dims = {dim}
struct LogSoftmaxFn : Function<LogSoftmaxFn> {
  static constexpr const char* name = "log_softmax";
  static Tensor forward(Context& ctx, const Tensor& x, int64_t dim) {
    ctx.dims = {dim};
    Tensor y = kernels::log_softmax(x, dim);
    ctx.save_for_backward({y});
    return y;
  }
  // dx = g - exp(y) * sum(g) along dim
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {g - exp(ctx.saved(0)) * kernels::sum(g, ctx.dims, true)};
  }
};
SPEAR_REGISTER_FUNCTION(LogSoftmaxFn);

// x: S -> running sums along dim: S; ctx.dims = {dim}, ctx.flag = reverse
struct CumsumFn : Function<CumsumFn> {
  static constexpr const char* name = "cumsum";
  static Tensor forward(Context& ctx, const Tensor& x, int64_t dim, bool reverse) {
    ctx.dims = {dim};
    ctx.flag = reverse;
    return kernels::cumsum(x, dim, reverse);
  }
  // dx = cumsum of g in the opposite direction (each x[i] feeds every y[j] with j >= i)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {kernels::cumsum(g, ctx.dims[0], !ctx.flag)};
  }
};
SPEAR_REGISTER_FUNCTION(CumsumFn);

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return SumFn::apply(x, dims, keepdim);
}
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return MeanFn::apply(x, dims, keepdim);
}
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return ExtremeFn<true>::apply(x, dims, keepdim);
}
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return ExtremeFn<false>::apply(x, dims, keepdim);
}
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool unbiased) {
  return VarFn::apply(x, dims, keepdim, unbiased);
}
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return LogsumexpFn::apply(x, dims, keepdim);
}
Tensor softmax(const Tensor& x, int64_t dim) {
  return SoftmaxFn::apply(x, dim);
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  return LogSoftmaxFn::apply(x, dim);
}
Tensor cumsum(const Tensor& x, int64_t dim, bool reverse) {
  return CumsumFn::apply(x, dim, reverse);
}

// Indices carry no gradient.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  return kernels::argmax(x, dim, keepdim);
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  return kernels::argmin(x, dim, keepdim);
}

}  // namespace spear
