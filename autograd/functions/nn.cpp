// Fused layers: layer_norm, dropout and cross_entropy. Each equals a composition of simpler ops
// (tests/test_fused.cpp checks forward and gradients against it), but runs as one kernel per
// direction (tensor/kernels/norm.cpp, loss.cpp) and saves only what its backward needs: mean and
// rstd per row, the scaled mask, logsumexp per row.
#include "autograd/function.h"
#include "autograd/ops.h"
#include "tensor/kernels/kernels.h"
#include "tensor/random.h"

namespace spear {
namespace {

using kernels::BinaryOp;

// x: (..., C), weight: (C), bias: (C) -> y: (..., C), normalised over the last dim
struct LayerNormFn : Function<LayerNormFn> {
  static constexpr const char* name = "layer_norm";
  static Tensor forward(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                        double eps) {
    kernels::LayerNormResult r = kernels::layer_norm(x, weight, bias, eps);
    ctx.save_for_backward({x, weight, r.mean, r.rstd});
    return r.y;
  }
  // dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat)), dw = sum(g * xhat), db = sum(g)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    kernels::LayerNormGrads d =
        kernels::layer_norm_backward(g, ctx.saved(0), ctx.saved(1), ctx.saved(2), ctx.saved(3));
    return {d.dx, d.dweight, d.dbias};
  }
};
SPEAR_REGISTER_FUNCTION(LayerNormFn);

// x: S -> y = x * mask / (1 - p): S, mask ~ Bernoulli(1 - p). The mask is kept already scaled
// by 1 / (1 - p), so forward and backward are one multiply each.
struct DropoutFn : Function<DropoutFn> {
  static constexpr const char* name = "dropout";
  static Tensor forward(Context& ctx, const Tensor& x, double p, Generator* gen) {
    const double scale = p < 1 ? 1 / (1 - p) : 0.0;  // p == 1 drops everything
    Tensor mask = kernels::binary(BinaryOp::mul, bernoulli_mask(x.shape(), 1 - p, x.dtype(), gen),
                                  scalar_tensor(scale, x.dtype()));
    ctx.save_for_backward({mask});
    return kernels::binary(BinaryOp::mul, x, mask);
  }
  // dx = g * mask / (1 - p)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) { return {g * ctx.saved(0)}; }
};
SPEAR_REGISTER_FUNCTION(DropoutFn);

// logits: (..., C), targets: (...) i64 -> mean loss: ().
// ctx.dims = {ignore_index}, ctx.scalar = label smoothing eps; targets get no gradient.
struct CrossEntropyFn : Function<CrossEntropyFn> {
  static constexpr const char* name = "cross_entropy";
  static Tensor forward(Context& ctx, const Tensor& logits, const Tensor& targets,
                        int64_t ignore_index, double label_smoothing) {
    ctx.dims = {ignore_index};
    ctx.scalar = label_smoothing;
    kernels::CrossEntropyResult r =
        kernels::cross_entropy(logits, targets, ignore_index, label_smoothing);
    ctx.save_for_backward({logits, targets, r.logsumexp});
    return r.loss;
  }
  // dlogits = (softmax(logits) - ((1-eps) onehot(t) + eps/C)) * g / count, 0 on ignored rows
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {kernels::cross_entropy_backward(g, ctx.saved(0), ctx.saved(1), ctx.saved(2),
                                            ctx.dims[0], ctx.scalar),
            Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(CrossEntropyFn);

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  SPEAR_CHECK_SHAPE(x.dim() >= 1, "layer_norm: input must have at least 1 dim, got shape ",
                    x.shape());
  // A missing weight or bias becomes a constant of ones or zeros, so the Function always has
  // three inputs; a constant requires no grad, so the engine drops its gradient.
  const Shape c{x.size(-1)};
  return LayerNormFn::apply(x, weight.defined() ? weight : ones(c, x.dtype()),
                            bias.defined() ? bias : zeros(c, x.dtype()), eps);
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  SPEAR_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability p must be in [0, 1], got ", p);
  SPEAR_CHECK_DTYPE(x.is_floating_point(), "dropout: expected a floating input, got ", x.dtype());
  if (!training || p == 0) return x;
  return DropoutFn::apply(x, p, gen);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                     double label_smoothing) {
  return CrossEntropyFn::apply(logits, targets, ignore_index, label_smoothing);
}

}  // namespace spear
