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

#include "nn/attention.h"
#include "nn/layers.h"
#include "nn/positional.h"

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
  std::shared_ptr<TransformerTrunk> trunk;
  std::shared_ptr<Linear> head;  // null when tied: the logits use trunk->embed->weight

 private:
  bool tied_;
};

}  // namespace spear::nn
