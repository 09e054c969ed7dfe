// Differentiable indexing. A selection copies some elements of its input, possibly several times,
// so its backward adds each output gradient back to the element it was copied from: index_add
// for slices, scatter_add for single elements. Ids and masks are integers or flags: they get no
// gradient (their backward slot is an undefined Tensor).
#include "autograd/function.h"
#include "autograd/ops.h"
#include "tensor/kernels/kernels.h"

namespace spear {
namespace {

// x: (.., S, ..) along dim, index: (L) -> (.., L, ..); ctx.dims = {dim}
struct IndexSelectFn : Function<IndexSelectFn> {
  static constexpr const char* name = "index_select";
  static Tensor forward(Context& ctx, const Tensor& x, int64_t dim, const Tensor& index) {
    ctx.dims = {dim};
    ctx.save_for_backward({index});
    return kernels::index_select(x, dim, index);
  }
  // dx[.., index[l], ..] += g[.., l, ..]
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {kernels::index_add(ctx.input_shape(0), ctx.dims[0], ctx.saved(0), g), Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(IndexSelectFn);

// x: (..), index: I of the same rank -> I; ctx.dims = {dim}
struct GatherFn : Function<GatherFn> {
  static constexpr const char* name = "gather";
  static Tensor forward(Context& ctx, const Tensor& x, int64_t dim, const Tensor& index) {
    ctx.dims = {dim};
    ctx.save_for_backward({index});
    return kernels::gather(x, dim, index);
  }
  // for dim=1: dx[i][index[i][j]] += g[i][j]
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {kernels::scatter_add(ctx.input_shape(0), ctx.dims[0], ctx.saved(0), g), Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(GatherFn);

// weight: (V, C), ids: any shape -> ids.shape + (C)
struct EmbeddingFn : Function<EmbeddingFn> {
  static constexpr const char* name = "embedding";
  static Tensor forward(Context& ctx, const Tensor& weight, const Tensor& ids) {
    ctx.save_for_backward({ids});
    return kernels::embedding(weight, ids);
  }
  // dweight[ids[n]] += g[n], with ids flattened to (N) and g to (N, C)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    const Shape& w = ctx.input_shape(0);
    return {kernels::index_add(w, 0, kernels::reshape(ctx.saved(0), {-1}),
                               kernels::reshape(g, {-1, w[1]})),
            Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(EmbeddingFn);

// x: S, mask: broadcastable to S -> S
struct MaskedFillFn : Function<MaskedFillFn> {
  static constexpr const char* name = "masked_fill";
  static Tensor forward(Context& ctx, const Tensor& x, const Tensor& mask, double value) {
    ctx.save_for_backward({mask});
    return kernels::masked_fill(x, mask, value);
  }
  // dx = g where mask is zero, 0 where it filled (the output there does not depend on x)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {kernels::masked_fill(g, ctx.saved(0), 0.0), Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(MaskedFillFn);

}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  return IndexSelectFn::apply(x, dim, index);
}
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  return GatherFn::apply(x, dim, index);
}
Tensor embedding(const Tensor& weight, const Tensor& ids) {
  return EmbeddingFn::apply(weight, ids);
}
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return MaskedFillFn::apply(x, mask, value);
}

// A one-hot encoding is built from ids alone, so there is nothing to differentiate.
Tensor one_hot(const Tensor& ids, int64_t num_classes, DType dtype) {
  return kernels::one_hot(ids, num_classes, dtype);
}

}  // namespace spear
