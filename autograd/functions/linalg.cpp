// Differentiable matrix products.
#include "autograd/function.h"
#include "autograd/ops.h"
#include "tensor/kernels/kernels.h"

namespace spear {
namespace {

// a: (..., M, K), b: (..., K, N) -> (..., M, N), both at least 2-d; batch dims broadcast.
struct MatmulFn : Function<MatmulFn> {
  static constexpr const char* name = "matmul";
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    ctx.save_for_backward({a, b});
    return kernels::matmul(a, b);
  }
  // da = g @ b^T, db = a^T @ g (summed over broadcast batch dims by the engine)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    Tensor a = ctx.saved(0), b = ctx.saved(1);
    return {ctx.needs_input_grad(0) ? kernels::matmul(g, kernels::transpose(b, -1, -2)) : Tensor(),
            ctx.needs_input_grad(1) ? kernels::matmul(kernels::transpose(a, -1, -2), g) : Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(MatmulFn);

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  SPEAR_CHECK_SHAPE(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got ",
                    a.shape(), " @ ", b.shape());
  // Vectors become 1-row / 1-column matrices through differentiable views, as in PyTorch.
  if (a.dim() == 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1) return squeeze(matmul(a, unsqueeze(b, 1)), -1);
  SPEAR_CHECK_SHAPE(a.size(-1) == b.size(-2), "matmul: inner dims differ: ", a.shape(), " @ ",
                    b.shape());
  return MatmulFn::apply(a, b);
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  SPEAR_CHECK_SHAPE(
      a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
      "bmm: expected (B, M, K) @ (B, K, N), got ", a.shape(), " @ ", b.shape());
  return MatmulFn::apply(a, b);
}

}  // namespace spear
