// Linear attention as an AttentionKernel: a feature map phi, then
//   y_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i) . sum_j phi(k_j) + eps)
// over all j, or j <= i when causal. O(N) time and memory instead of softmax's O(N^2).
//
// Feature maps (../shared/reference/linear_attention_lra.md A.1, A.2, A.2.5):
//   elu      phi(x) = elu(x) + 1                       (Katharopoulos et al.; no temperature)
//   relu     phi(x) = relu(x) + 1e-3                    (LRA's "Linear Transformer-ReLU")
//   favor    phi(x) = m^(-1/2) exp(W x^ - |x^|^2 / 2)   (Performer's FAVOR+, x^ = x D^(-1/4), W: m
//            positive orthogonal random features; unbiased for exp(q.k / sqrt(D)))
#pragma once
#include <memory>
#include <string>

#include "nn/attention.h"

namespace spear::nn {

class FeatureMap : public Module {
 public:
  using Module::Module;
  // x: (B, N, H, D) -> (B, N, H, F), every feature > 0.
  virtual Tensor forward(const Tensor& x, bool is_query) const = 0;
  virtual int64_t num_features(int64_t head_dim) const { return head_dim; }
  // Called once per attention call, before the queries and keys are mapped (FAVOR+ redraws here).
  virtual void before_forward() {}
  // A map the fused kernel can apply itself (element-wise ones, and FAVOR+ with its projection)
  // sets options.feature_map and returns true; the kernel then reads the raw q and k once and
  // never writes their mapped copies.
  virtual bool fuse_into(LinearAttentionOptions&) const { return false; }
};

class EluFeatureMap : public FeatureMap {
 public:
  EluFeatureMap() : FeatureMap("EluFeatureMap") {}
  Tensor forward(const Tensor& x, bool is_query) const override;
  bool fuse_into(LinearAttentionOptions& options) const override;
};

class ReluFeatureMap : public FeatureMap {
 public:
  explicit ReluFeatureMap(double epsilon = 1e-3);
  Tensor forward(const Tensor& x, bool is_query) const override;
  bool fuse_into(LinearAttentionOptions& options) const override;

 protected:
  std::string extra_repr() const override;

 private:
  double epsilon_;
};

// FAVOR+ positive orthogonal random features. The projection W (m, D) is a buffer, so it is saved
// and restored with the model, as are the generator state and the call count behind redraws.
//   redraw_interval 0: draw once and keep; 1: a new W for every training forward pass;
//   K: every K training passes. In eval mode W never changes (unless redraw_in_eval).
// Stabiliser: each query row subtracts its own max before exp (a per-row factor that cancels
// between numerator and denominator); keys subtract nothing that depends on data, since only a
// factor common to all keys cancels and a max over positions would look into the future in a
// causal model. exp stays finite anyway: w.x^ - |x^|^2 / 2 <= |w|^2 / 2.
class FavorFeatureMap : public FeatureMap {
 public:
  FavorFeatureMap(int64_t head_dim, int64_t num_features, int64_t redraw_interval, uint64_t seed,
                  bool redraw_in_eval = false);
  Tensor forward(const Tensor& x, bool is_query) const override;
  bool fuse_into(LinearAttentionOptions& options) const override;
  int64_t num_features(int64_t) const override { return projection.size(0); }
  // Draws a new W (m blocks of D orthonormal rows, each row scaled by an independent chi(D)
  // norm, so every row is marginally N(0, I_D)).
  void redraw();
  // Counts a training forward pass and redraws when the policy says so.
  void before_forward() override;
  Tensor projection;  // (m, D)

 protected:
  std::string extra_repr() const override;

 private:
  Tensor rng_state_;  // (seed, offset) of the draws, i64 buffer
  Tensor calls_;      // training forward passes so far, i64 buffer
  int64_t redraw_interval_;
  bool redraw_in_eval_;
};

std::shared_ptr<FeatureMap> make_feature_map(const std::string& name, int64_t head_dim,
                                             int64_t num_features, int64_t redraw_interval,
                                             uint64_t seed);

// The AttentionKernel. Padded keys get phi(k) = 0, so they leave both sums. `fused` picks the
// hand-written op (spear::linear_attention, with the feature map inside when it is element-wise);
// otherwise the composition of ops below, which is its test oracle.
class LinearAttention : public AttentionKernel {
 public:
  explicit LinearAttention(std::shared_ptr<FeatureMap> feature_map, double eps = 1e-6,
                           bool fused = true);
  Tensor forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_padding_mask,
                 bool causal) const override;
  // The recurrent form: state {S: (B, H, F, M), z: (B, H, F)}, the sums of phi(k) v^T and phi(k)
  // so far; each step adds one position and reads y = phi(q) S / (phi(q) . z + eps). O(1) time
  // and memory per token. FAVOR+ never redraws here (a sequence keeps one W).
  Tensor forward_step(const Tensor& q, const Tensor& k, const Tensor& v,
                      DecodeState& state) const override;
  std::shared_ptr<FeatureMap> feature_map;

 protected:
  std::string extra_repr() const override;

 private:
  double eps_;
  bool fused_;
};

// The composed oracle of spear::linear_attention: matmuls for the non-causal form; for the causal
// form a cumsum of outer products, which keeps a (B, N, H, F, M) tensor: fine for tests, the
// reason the fused op exists.
Tensor linear_attention_composed(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v,
                                 bool causal, double eps);

}  // namespace spear::nn
