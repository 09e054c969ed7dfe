#include "nn/transformer.h"

#include "autograd/grad_mode.h"
#include "nn/init.h"

namespace spear::nn {

TransformerBlock::TransformerBlock(const TransformerConfig& config,
                                   std::shared_ptr<AttentionKernel> kernel,
                                   std::shared_ptr<QKEncoding> qk_encoding, Generator* gen)
    : Module("TransformerBlock") {
  const int64_t hidden = config.ffn_hidden > 0 ? config.ffn_hidden : 4 * config.dim;
  ln1 = register_module("ln1", std::make_shared<LayerNorm>(config.dim));
  attn = register_module(
      "attn", std::make_shared<MultiheadAttention>(config.dim, config.heads, std::move(kernel),
                                                   std::move(qk_encoding), gen));
  ln2 = register_module("ln2", std::make_shared<LayerNorm>(config.dim));
  ffn = register_module("ffn", std::make_shared<FeedForward>(config.dim, hidden, config.activation,
                                                             config.dropout, gen));
  drop = register_module("drop", std::make_shared<Dropout>(config.dropout, gen));
}

// x: (B,N,C) -> (B,N,C). Pre-LN: each sublayer sees a normalised input and adds to the
// untouched residual stream, which keeps deep stacks trainable without warm-up tricks.
Tensor TransformerBlock::forward(const Tensor& x, const Tensor& key_padding_mask, bool causal,
                                 int64_t offset) const {
  Tensor h = x + drop->forward(attn->forward(ln1->forward(x), key_padding_mask, causal, offset));
  return h + drop->forward(ffn->forward(ln2->forward(h)));
}

Tensor TransformerBlock::forward_step(const Tensor& x, DecodeState& state, int64_t offset) const {
  Tensor h = x + drop->forward(attn->forward_step(ln1->forward(x), state, offset));
  return h + drop->forward(ffn->forward(ln2->forward(h)));
}

TransformerTrunk::TransformerTrunk(const TransformerConfig& config, const TransformerParts& parts,
                                   Generator* gen)
    : Module("TransformerTrunk") {
  SPEAR_CHECK_T(ConfigError, config.vocab_size > 0,
                "TransformerTrunk: vocab_size must be positive, got ", config.vocab_size);
  SPEAR_CHECK_T(ConfigError, config.layers >= 0, "TransformerTrunk: layers must be >= 0, got ",
                config.layers);
  SPEAR_CHECK_T(ConfigError, static_cast<bool>(parts.attention),
                "TransformerTrunk: parts.attention is empty (no attention kernel factory)");
  embed = register_module("embed", std::make_shared<Embedding>(config.vocab_size, config.dim, gen));
  if (parts.input_encoding) pos = register_module("pos", parts.input_encoding);
  blocks = register_module("blocks", std::make_shared<ModuleList>());
  for (int64_t layer = 0; layer < config.layers; ++layer) {
    std::shared_ptr<QKEncoding> qk = parts.qk_encoding ? parts.qk_encoding(layer) : nullptr;
    blocks->push_back(
        std::make_shared<TransformerBlock>(config, parts.attention(layer), std::move(qk), gen));
  }
  ln_f = register_module("ln_f", std::make_shared<LayerNorm>(config.dim));
}

// ids: (B,N) i64, key_padding_mask: (B,N) or undefined -> (B,N,C)
Tensor TransformerTrunk::forward(const Tensor& ids, const Tensor& key_padding_mask, bool causal,
                                 int64_t offset) const {
  SPEAR_CHECK_SHAPE(ids.dim() == 2, "transformer: expected ids (B, N), got ", ids.shape());
  SPEAR_CHECK_SHAPE(!key_padding_mask.defined() || key_padding_mask.shape() == ids.shape(),
                    "transformer: key_padding_mask ",
                    key_padding_mask.defined() ? key_padding_mask.shape() : Shape(),
                    " does not match ids ", ids.shape());
  Tensor x = embed->forward(ids);  // (B,N,C)
  if (pos) x = pos->forward(x, offset);
  for (size_t i = 0; i < blocks->size(); ++i)
    x = blocks->at<TransformerBlock>(i).forward(x, key_padding_mask, causal, offset);
  return ln_f->forward(x);
}

// ids: (B,1) i64 -> (B,1,C)
Tensor TransformerTrunk::forward_step(const Tensor& ids, std::vector<DecodeState>& states,
                                      int64_t offset) const {
  SPEAR_CHECK_SHAPE(ids.dim() == 2 && ids.size(1) == 1,
                    "transformer step: expected ids (B, 1), got ", ids.shape());
  states.resize(blocks->size());
  Tensor x = embed->forward(ids);
  if (pos) x = pos->forward(x, offset);
  for (size_t i = 0; i < blocks->size(); ++i)
    x = blocks->at<TransformerBlock>(i).forward_step(x, states[i], offset);
  return ln_f->forward(x);
}

Pooling pooling_from_name(const std::string& name) {
  if (name == "mean") return Pooling::mean;
  if (name == "cls") return Pooling::cls;
  throw ConfigError(str_cat("unknown pooling '", name, "' (expected mean or cls)"));
}

EncoderClassifier::EncoderClassifier(const TransformerConfig& config, const TransformerParts& parts,
                                     int64_t num_classes, Pooling pooling, Generator* gen)
    : Module("EncoderClassifier"), pooling_(pooling) {
  trunk = register_module("trunk", std::make_shared<TransformerTrunk>(config, parts, gen));
  head = register_module("head", std::make_shared<Linear>(config.dim, num_classes, true, gen));
}

// ids: (B,N) i64, key_padding_mask: (B,N) or undefined -> logits: (B,classes)
Tensor EncoderClassifier::forward(const Tensor& ids, const Tensor& key_padding_mask) const {
  Tensor h = trunk->forward(ids, key_padding_mask, false);  // (B,N,C)
  Tensor pooled;                                            // (B,C)
  if (pooling_ == Pooling::cls) {
    pooled = h.narrow(1, 0, 1).squeeze(1);
  } else if (!key_padding_mask.defined()) {
    pooled = h.mean({1});
  } else {
    // The mean over kept positions: padded rows are replaced by zeros (not multiplied by 0, so
    // nothing at a padded position can leak in, not even a NaN), and an all-padding sequence
    // divides by 1 instead of 0, pooling to zeros.
    const int64_t B = ids.size(0), N = ids.size(1);
    Tensor padded = key_padding_mask.reshape({B, N, 1});
    Tensor kept = (padded == zeros_like(padded)).to(h.dtype());  // (B,N,1), 1 where kept
    Tensor count = maximum(kept.sum({1}), ones({B, 1}, h.dtype()));
    pooled = masked_fill(h, padded, 0.0).sum({1}) / count;
  }
  return head->forward(pooled);
}

CausalLM::CausalLM(const TransformerConfig& config, const TransformerParts& parts,
                   bool tie_embeddings, Generator* gen)
    : Module("CausalLM"), tied_(tie_embeddings) {
  trunk = register_module("trunk", std::make_shared<TransformerTrunk>(config, parts, gen));
  if (tied_) {
    // A tied table also produces the logits, so it starts small as in GPT-2: with Embedding's
    // N(0, 1) the first logits (unit-variance features times rows of norm sqrt(C)) would spread
    // by sqrt(C) and the initial loss would be far above log(vocab).
    init::normal_(trunk->embed->weight, 0.0, 0.02, gen);
  } else {
    head = register_module("head",
                           std::make_shared<Linear>(config.dim, config.vocab_size, false, gen));
  }
}

// ids: (B,N) i64 -> logits: (B,N,vocab)
Tensor CausalLM::forward(const Tensor& ids, int64_t offset) const {
  Tensor h = trunk->forward(ids, Tensor(), true, offset);  // (B,N,C)
  return tied_ ? matmul(h, trunk->embed->weight.transpose(0, 1)) : head->forward(h);
}

Tensor CausalLM::forward_step(const Tensor& ids, std::vector<DecodeState>& states,
                              int64_t offset) const {
  Tensor h = trunk->forward_step(ids, states, offset);  // (B,1,C)
  return tied_ ? matmul(h, trunk->embed->weight.transpose(0, 1)) : head->forward(h);
}

Tensor CausalLM::generate(const Tensor& prompt, int64_t n, const SamplingOptions& options) const {
  SPEAR_CHECK_SHAPE(prompt.dim() == 2 && prompt.size(1) >= 1 && prompt.dtype() == i64,
                    "generate: expected an i64 prompt (B, P) with P >= 1, got ", prompt.shape(),
                    " ", prompt.dtype());
  SPEAR_CHECK_T(ConfigError, n >= 0, "generate: n must be >= 0, got ", n);
  NoGradGuard no_grad;
  Generator gen(options.seed);
  std::vector<DecodeState> states;
  std::vector<Tensor> tokens;
  const int64_t P = prompt.size(1);
  for (int64_t t = 0; t < P; ++t) tokens.push_back(prompt.narrow(1, t, 1));
  Tensor logits;
  for (int64_t t = 0; t + 1 < P + n; ++t) {
    logits = forward_step(tokens[t], states, t);  // (B,1,vocab)
    if (t + 1 >= P) tokens.push_back(sample_tokens(logits.squeeze(1), options, gen).unsqueeze(1));
  }
  return cat(tokens, 1);
}

}  // namespace spear::nn
