// The fused attention ops. Their composed oracles (nn::linear_attention_composed, and
// nn::SoftmaxAttention with fused = false) build the same results from matmul, softmax, cumsum.
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

// q, k: (B, N, H, D), v: (B, N, H, M), mask: (B, N) or undefined -> (B, N, H, M); ctx.flag = causal
struct SoftmaxAttentionFn : Function<SoftmaxAttentionFn> {
  static constexpr const char* name = "softmax_attention";
  static Tensor forward(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& key_padding_mask, bool causal) {
    ctx.flag = causal;
    std::vector<Tensor> out = kernels::softmax_attention(q, k, v, key_padding_mask, causal);
    ctx.save_for_backward({q, k, v, key_padding_mask, out[0], out[1]});
    return out[0];
  }
  // p = softmax(s): ds = p (dp - rowsum(dy y)), dq = ds k / sqrt(D), dk = ds^T q / sqrt(D), dv =
  // p^T dy
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    std::vector<Tensor> grads =
        kernels::softmax_attention_backward(ctx.saved(0), ctx.saved(1), ctx.saved(2), ctx.saved(3),
                                            ctx.flag, ctx.saved(4), ctx.saved(5), g);
    grads.push_back(Tensor());  // the mask gets no gradient
    return grads;
  }
};
SPEAR_REGISTER_FUNCTION(SoftmaxAttentionFn);

}  // namespace

Tensor softmax_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& key_padding_mask, bool causal) {
  return SoftmaxAttentionFn::apply(q, k, v, key_padding_mask, causal);
}

Tensor linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                        double eps) {
  return LinearAttentionFn::apply(q, k, v, causal, eps);
}

}  // namespace spear
