// The fused attention ops. Their composed oracles (nn::linear_attention_composed, and
// nn::SoftmaxAttention with fused = false) build the same results from matmul, softmax, cumsum.
#include "autograd/function.h"
#include "autograd/ops.h"
#include "tensor/kernels/kernels.h"

namespace spear {
namespace {

// q, k: (B, N, H, D), v: (B, N, H, M), mask: (B, N) or undefined -> (B, N, H, M); FAVOR+'s
// projection rides in the options and gets no gradient. ctx.flag = causal, ctx.dims = {feature
// map}, ctx.scalars = {eps, relu_eps}
struct LinearAttentionFn : Function<LinearAttentionFn> {
  static constexpr const char* name = "linear_attention";
  static Tensor forward(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& key_padding_mask, const LinearAttentionOptions& options) {
    ctx.flag = options.causal;
    ctx.dims = {static_cast<int64_t>(options.feature_map)};
    ctx.scalars = {options.eps, options.relu_eps};
    std::vector<Tensor> out = kernels::linear_attention(q, k, v, key_padding_mask, options);
    // The sums S, z are (B, H, F, M + 1): the non-causal backward reads them instead of a pass
    // over the keys.
    ctx.save_for_backward(
        {q, k, v, key_padding_mask, options.causal ? Tensor() : out[1], options.projection});
    return out[0];
  }
  // y = num / den: dphi(q) = dnum S^T + dden z^T, dphi(k) = v R^T + r, dv = phi(k) R (prefix S,
  // z; suffix R, r), then dq = dphi(q) phi'(q) and dk = dphi(k) phi'(k)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    LinearAttentionOptions options;
    options.causal = ctx.flag;
    options.feature_map = static_cast<FeatureMapKind>(ctx.dims[0]);
    options.eps = ctx.scalars[0];
    options.relu_eps = ctx.scalars[1];
    options.projection = ctx.saved(5);
    std::vector<Tensor> grads = kernels::linear_attention_backward(
        ctx.saved(0), ctx.saved(1), ctx.saved(2), ctx.saved(3), ctx.saved(4), g, options);
    grads.push_back(Tensor());  // the mask gets no gradient
    return grads;
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

Tensor linear_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& key_padding_mask, const LinearAttentionOptions& options) {
  return LinearAttentionFn::apply(q, k, v, key_padding_mask, options);
}

Tensor linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                        double eps) {
  LinearAttentionOptions options;
  options.causal = causal;
  options.eps = eps;
  return linear_attention(q, k, v, Tensor(), options);
}

}  // namespace spear
