// How a fused linear attention is computed: causal or not, the denominator's epsilon, and the
// feature map phi it applies to its raw queries and keys (reference linear_attention_lra.md A.1).
#pragma once

namespace spear {

enum class FeatureMapKind {
  identity,  // q and k already are features (FAVOR+ computes its own before the call)
  elu,       // phi(x) = elu(x) + 1
  relu,      // phi(x) = relu(x) + relu_eps
};

struct LinearAttentionOptions {
  bool causal = false;
  double eps = 1e-6;  // added to every denominator
  FeatureMapKind feature_map = FeatureMapKind::identity;
  double relu_eps = 1e-3;  // the floor of the relu feature map, so every feature is > 0
};

}  // namespace spear
