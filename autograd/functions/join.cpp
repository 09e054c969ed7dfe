// Differentiable joins. cat's backward hands each input its slice of the gradient; stack is
// unsqueeze + cat, and split and chunk are narrow() views, so they need no Function of their own.
#include "autograd/function.h"
#include "autograd/ops.h"
#include "tensor/kernels/kernels.h"

namespace spear {
namespace {

// xs[i]: S with S_i along dim -> S with sum_i S_i along dim; ctx.dims = {dim}
struct CatFn : Function<CatFn> {
  static constexpr const char* name = "cat";
  static Tensor forward(Context& ctx, const std::vector<Tensor>& xs, int64_t dim) {
    Tensor y = kernels::cat(xs, dim);
    ctx.dims = {wrap_dim(dim, y.dim(), "cat")};
    return y;
  }
  // dx_i = g[..., offset_i : offset_i + S_i, ...]
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    std::vector<Tensor> grads;
    const int64_t dim = ctx.dims[0];
    int64_t offset = 0;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      const int64_t size = ctx.input_shape(i)[dim];
      grads.push_back(kernels::narrow(g, dim, offset, size));
      offset += size;
    }
    return grads;
  }
};
SPEAR_REGISTER_FUNCTION(CatFn);

}  // namespace

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  return CatFn::apply(xs, dim);
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  SPEAR_CHECK(!xs.empty(), "stack: expected a non-empty list of tensors");
  for (size_t i = 1; i < xs.size(); ++i)
    SPEAR_CHECK_SHAPE(xs[i].shape() == xs[0].shape(), "stack: tensor ", i, " has shape ",
                      xs[i].shape(), " but tensor 0 has shape ", xs[0].shape());
  std::vector<Tensor> columns;
  for (const Tensor& x : xs) columns.push_back(unsqueeze(x, dim));
  return cat(columns, dim);
}

namespace {
// The kernel decides (and validates) the pieces; each becomes a recorded narrow of x.
std::vector<Tensor> recorded_pieces(const Tensor& x, int64_t dim,
                                    const std::vector<Tensor>& views) {
  std::vector<Tensor> pieces;
  int64_t offset = 0;
  for (const Tensor& view : views) {
    pieces.push_back(narrow(x, dim, offset, view.size(dim)));
    offset += view.size(dim);
  }
  return pieces;
}
}  // namespace

std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim) {
  std::vector<Tensor> views = kernels::split(x, size, dim);
  return recorded_pieces(x, wrap_dim(dim, x.dim(), "split"), views);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  std::vector<Tensor> views = kernels::chunk(x, chunks, dim);
  return recorded_pieces(x, wrap_dim(dim, x.dim(), "chunk"), views);
}

}  // namespace spear
