// Transformer blocks and the two model heads spear trains.
//
//   TransformerBlock   pre-LN: x + attn(ln1(x)), then x + ffn(ln2(x))
//   EncoderClassifier  ids (B, N) -> embedding (+ absolute encoding) -> blocks -> final LN ->
//                      mean or CLS pooling -> linear -> logits (B, classes)
//   CausalLM           ids (B, N) -> embedding (+ absolute encoding) -> causal blocks -> final LN
//                      -> head (optionally tied to the embedding) -> logits (B, N, vocab)
//
// What differs between experiments (the attention kernel, the positional encoding) comes in
// through TransformerParts, so nn never depends on the modules that implement them (spe/).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/attention.h"
#include "nn/layers.h"
#include "nn/positional.h"
#include "nn/sampling.h"

namespace spear::nn {

struct TransformerConfig {
  int64_t vocab_size = 0;
  int64_t dim = 64;
  int64_t heads = 4;
  int64_t layers = 2;
  int64_t ffn_hidden = 0;  // 0: 4 * dim
  double dropout = 0.0;
  Activation activation = Activation::gelu;
};

// The pluggable pieces. `attention` and `qk_encoding` are called once per layer (0-based);
// `qk_encoding` may be empty or return null (no per-layer encoding); `input_encoding` may be null.
struct TransformerParts {
  std::function<std::shared_ptr<AttentionKernel>(int64_t layer)> attention;
  std::function<std::shared_ptr<QKEncoding>(int64_t layer)> qk_encoding;
  std::shared_ptr<PositionalEncoding> input_encoding;
};

class TransformerBlock : public Module {
 public:
  TransformerBlock(const TransformerConfig& config, std::shared_ptr<AttentionKernel> kernel,
                   std::shared_ptr<QKEncoding> qk_encoding, Generator* gen = nullptr);
  // x: (B, N, C) -> (B, N, C)
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask = Tensor(), bool causal = false,
                 int64_t offset = 0) const;
  // x: (B, 1, C) at position `offset` of a causal sequence -> (B, 1, C).
  Tensor forward_step(const Tensor& x, DecodeState& state, int64_t offset) const;
  std::shared_ptr<LayerNorm> ln1, ln2;
  std::shared_ptr<MultiheadAttention> attn;
  std::shared_ptr<FeedForward> ffn;
  std::shared_ptr<Dropout> drop;
};

// The embedding and the stack of blocks shared by both heads.
class TransformerTrunk : public Module {
 public:
  TransformerTrunk(const TransformerConfig& config, const TransformerParts& parts,
                   Generator* gen = nullptr);
  // ids: (B, N) i64 -> (B, N, C), after the final layer norm.
  Tensor forward(const Tensor& ids, const Tensor& key_padding_mask, bool causal,
                 int64_t offset = 0) const;
  // ids: (B, 1) at position `offset` -> (B, 1, C); `states` holds one DecodeState per block.
  Tensor forward_step(const Tensor& ids, std::vector<DecodeState>& states, int64_t offset) const;
  std::shared_ptr<Embedding> embed;
  std::shared_ptr<PositionalEncoding> pos;  // null: none
  std::shared_ptr<ModuleList> blocks;
  std::shared_ptr<LayerNorm> ln_f;
};

enum class Pooling { mean, cls };
Pooling pooling_from_name(const std::string& name);  // "mean" | "cls"

class EncoderClassifier : public Module {
 public:
  EncoderClassifier(const TransformerConfig& config, const TransformerParts& parts,
                    int64_t num_classes, Pooling pooling = Pooling::mean, Generator* gen = nullptr);
  // ids: (B, N) i64, key_padding_mask: (B, N) non-zero at padding, or undefined -> (B, classes).
  // Mean pooling averages the non-padded positions; CLS pooling takes position 0.
  Tensor forward(const Tensor& ids, const Tensor& key_padding_mask = Tensor()) const;
  std::shared_ptr<TransformerTrunk> trunk;
  std::shared_ptr<Linear> head;

 private:
  Pooling pooling_;
};

class CausalLM : public Module {
 public:
  CausalLM(const TransformerConfig& config, const TransformerParts& parts,
           bool tie_embeddings = false, Generator* gen = nullptr);
  // ids: (B, N) i64 -> logits (B, N, vocab); position i depends on ids[:, :i+1] only.
  Tensor forward(const Tensor& ids, int64_t offset = 0) const;
  // One position at a time: ids (B, 1) at position `offset` -> logits (B, 1, vocab). `states`
  // starts empty and carries the earlier positions; steps 0..N-1 give forward() of the whole
  // sequence. With linear attention each step costs O(1) in the sequence length.
  Tensor forward_step(const Tensor& ids, std::vector<DecodeState>& states, int64_t offset) const;
  // prompt: (B, P) i64, P >= 1 -> (B, P + n): the prompt then n sampled tokens. Runs without
  // recording gradients; call eval() first so dropout is off.
  Tensor generate(const Tensor& prompt, int64_t n, const SamplingOptions& options = {}) const;
  std::shared_ptr<TransformerTrunk> trunk;
  std::shared_ptr<Linear> head;  // null when tied: the logits use trunk->embed->weight

 private:
  bool tied_;
};

}  // namespace spear::nn
