// Multi-head attention with two seams, so new attention mechanisms and positional encodings plug
// in without touching the block:
//
//   AttentionKernel  how the heads attend: (q, k, v) -> output. Softmax attention here; linear
//                    attention and FAVOR+ are further kernels.
//   QKEncoding       a positional encoding that acts on the projected queries and keys of every
//                    layer (RoPE here; stochastic positional encoding in spe/), and may change
//                    their width from D to R.
//
// Shapes: B batch, N positions, H heads, D query/key width per head, M value width per head.
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "nn/layers.h"
#include "nn/module.h"

namespace spear::nn {

// What one attention layer carries from one decoded token to the next: empty at the start of a
// sequence, then whatever its kernel keeps (softmax attention: the keys and values so far, O(N);
// linear attention: its running sums, O(1) in the sequence length).
struct DecodeState {
  std::vector<Tensor> tensors;
};

class AttentionKernel : public Module {
 public:
  using Module::Module;
  // q, k: (B, N, H, D), v: (B, N, H, M) -> (B, N, H, M). key_padding_mask: (B, N), non-zero at
  // padded keys (which then get no weight), or undefined. `causal`: position i sees j <= i only.
  virtual Tensor forward(const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& key_padding_mask, bool causal) const = 0;
  // One more position of a causal sequence: q, k: (B, 1, H, D), v: (B, 1, H, M) ->
  // (B, 1, H, M), attending to every earlier position through `state`, which it updates.
  // Decoding a sequence step by step gives forward(..., causal = true) position by position.
  virtual Tensor forward_step(const Tensor& q, const Tensor& k, const Tensor& v,
                              DecodeState& state) const = 0;
};

// softmax(q k^T / sqrt(D)) v: O(N^2) time. Fused (the default): spear::softmax_attention, tiled
// with a streaming softmax, O(N) memory. Otherwise composed from differentiable ops, which keeps
// the N x N weights for backward: the fused op's test oracle.
class SoftmaxAttention : public AttentionKernel {
 public:
  explicit SoftmaxAttention(bool fused = true)
      : AttentionKernel("SoftmaxAttention"), fused_(fused) {}
  Tensor forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_padding_mask,
                 bool causal) const override;
  // Keeps the keys and values so far in state: {K: (B, T, H, D), V: (B, T, H, M)}.
  Tensor forward_step(const Tensor& q, const Tensor& k, const Tensor& v,
                      DecodeState& state) const override;

 protected:
  std::string extra_repr() const override { return fused_ ? "fused" : "composed"; }

 private:
  bool fused_;
};

class QKEncoding : public Module {
 public:
  using Module::Module;
  // q, k: (B, N, H, D) at absolute positions offset .. offset + N - 1 -> (q', k'): (B, N, H, R).
  virtual std::pair<Tensor, Tensor> forward(const Tensor& q, const Tensor& k,
                                            int64_t offset) const = 0;
  // R for a given D (the width of what forward returns).
  virtual int64_t output_width(int64_t head_dim) const { return head_dim; }
};

// Rotary position embedding (Su et al. 2021): rotates each pair (x[2i], x[2i+1]) of q and k by
// the angle pos * base^(-2i/D), so q'.k' depends on positions only through their difference.
// D must be even. No parameters.
class RotaryEncoding : public QKEncoding {
 public:
  explicit RotaryEncoding(double base = 10000.0);
  std::pair<Tensor, Tensor> forward(const Tensor& q, const Tensor& k,
                                    int64_t offset) const override;

 protected:
  std::string extra_repr() const override;

 private:
  double base_;
};

// x: (B, N, C) -> (B, N, C): q, k, v projections, `heads` heads of width C / heads, the kernel,
// then the output projection. Submodules q_proj, k_proj, v_proj, out_proj (as PyTorch names
// them), kernel, and qk_encoding when one is given.
class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t dim, int64_t heads, std::shared_ptr<AttentionKernel> kernel,
                     std::shared_ptr<QKEncoding> qk_encoding = nullptr, Generator* gen = nullptr);
  // offset: the absolute position of x's first token (for encodings during generation).
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask = Tensor(), bool causal = false,
                 int64_t offset = 0) const;
  // x: (B, 1, C), the token at position `offset` of a causal sequence -> (B, 1, C).
  Tensor forward_step(const Tensor& x, DecodeState& state, int64_t offset) const;
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, out_proj;
  std::shared_ptr<AttentionKernel> kernel;
  std::shared_ptr<QKEncoding> qk_encoding;  // null: no positional information added here

 protected:
  std::string extra_repr() const override;

 private:
  int64_t dim_, heads_;
};

}  // namespace spear::nn
