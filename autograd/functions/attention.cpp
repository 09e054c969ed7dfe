// The fused linear-attention op. Its composed oracle (tests/test_linear_attention.cpp) builds
// the same result from matmul, cumsum and division.
#include "autograd/function.h"
#include "autograd/ops.h"
#include "tensor/kernels/kernels.h"

namespace spear {
namespace {

// q, k: (B, N, H, F), v: (B, N, H, M) -> (B, N, H, M); ctx.flag = causal, ctx.scalar = eps
struct LinearAttentionFn : Function<LinearAttentionFn> {
  static constexpr const char* name = "linear_attention";
  static Tensor forward(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                        bool causal, double eps) {
    ctx.flag = causal;
    ctx.scalar = eps;
    ctx.save_for_backward({q, k, v});
    return kernels::linear_attention(q, k, v, causal, eps);
  }
  // y = num / den: dq = S dnum + dden z, dk = R v + r, dv = R^T k (prefix S, z; suffix R, r)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return kernels::linear_attention_backward(ctx.saved(0), ctx.saved(1), ctx.saved(2), g, ctx.flag,
                                              ctx.scalar);
  }
};
SPEAR_REGISTER_FUNCTION(LinearAttentionFn);

}  // namespace

Tensor linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                        double eps) {
  return LinearAttentionFn::apply(q, k, v, causal, eps);
}

}  // namespace spear
