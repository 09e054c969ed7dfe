// How a fused linear attention is computed: causal or not, the denominator's epsilon, and the
// feature map phi it applies to its raw queries and keys (reference linear_attention_lra.md A.1).
#pragma once
#include "tensor/tensor.h"

namespace spear {

enum class FeatureMapKind {
  identity,  // q and k already are features
  elu,       // phi(x) = elu(x) + 1
  relu,      // phi(x) = relu(x) + relu_eps
  // FAVOR+ positive random features: phi(x) = m^(-1/2) exp(W x^ - |x^|^2 / 2 - c), x^ = x D^(-1/4),
  // W = projection (m, D); c = the row's largest W x^ - |x^|^2 / 2 for queries (a constant for
  // the gradient, and one that cancels between numerator and denominator), 0 for keys.
  favor,
};

struct LinearAttentionOptions {
  bool causal = false;
  double eps = 1e-6;  // added to every denominator
  FeatureMapKind feature_map = FeatureMapKind::identity;
  double relu_eps = 1e-3;  // the floor of the relu feature map, so every feature is > 0
  Tensor projection;       // favor: W (m, D), of the inputs' dtype; it gets no gradient
};

}  // namespace spear
