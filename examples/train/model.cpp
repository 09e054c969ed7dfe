#include "examples/train/model.h"

#include "nn/attention.h"
#include "nn/linear_attention.h"
#include "nn/positional.h"
#include "nn/transformer.h"
#include "spe/spe.h"

namespace spear::train {
namespace {

// One kernel per layer; FAVOR+ layers draw their features from their own seed.
std::shared_ptr<nn::AttentionKernel> make_attention(const ModelConfig& config, int64_t layer,
                                                    uint64_t seed) {
  const std::string& kind = config.attention;
  if (kind == "softmax") return std::make_shared<nn::SoftmaxAttention>();
  // With SPE the attention sees R-wide queries and keys.
  const bool spe = config.positional == "sine_spe" || config.positional == "conv_spe";
  const int64_t head_dim = spe ? config.spe.realizations : config.dim / config.heads;
  const std::string map = kind == "favor" ? "favor" : config.feature_map;
  SPEAR_CHECK_T(ConfigError, kind == "linear" || kind == "favor",
                "config: model.attention.kind must be one of softmax|linear|favor, got \"", kind,
                "\"");
  return std::make_shared<nn::LinearAttention>(
      nn::make_feature_map(map, head_dim, config.features, config.redraw,
                           seed + static_cast<uint64_t>(layer)),
      config.attention_eps);
}

// Stochastic positional encoding: an SPEFilter per layer on the queries and keys, over one code
// per layer or one shared by all (registered by layer 0, so it is trained and saved once).
void add_spe(nn::TransformerParts& parts, const ModelConfig& config, const TaskSpec& task,
             Generator* gen) {
  const SpeConfig& s = config.spe;
  const int64_t head_dim = config.dim / config.heads;
  const uint64_t seed = gen ? gen->seed() ^ 0x5be5eed5u : 0;
  std::vector<int64_t> kernel_size = {s.kernel_size}, grid;
  if (config.positional == "conv_spe" && s.ndim == 2) {
    SPEAR_CHECK_T(ConfigError, task.grid.size() == 2, "config: model.spe.ndim 2 needs a task ",
                  "whose positions form a grid; task ", task.name, " is a plain sequence");
    kernel_size = {s.kernel_size, s.kernel_size};
    grid = task.grid;
  }
  auto make_code = [=](int64_t layer) -> std::shared_ptr<spe::PositionalCode> {
    const uint64_t layer_seed = seed + static_cast<uint64_t>(layer);
    if (config.positional == "sine_spe")
      return std::make_shared<spe::SineSPE>(config.heads, head_dim, s.realizations, s.sines,
                                            layer_seed, gen);
    return std::make_shared<spe::ConvSPE>(config.heads, head_dim, s.realizations, kernel_size, grid,
                                          layer_seed, gen);
  };
  auto shared = std::make_shared<std::shared_ptr<spe::PositionalCode>>();
  parts.qk_encoding = [=](int64_t layer) -> std::shared_ptr<nn::QKEncoding> {
    std::shared_ptr<spe::PositionalCode> code;
    if (!s.share_across_layers) {
      code = make_code(layer);
    } else {
      if (!*shared) *shared = make_code(0);
      code = *shared;
    }
    const bool owns = !s.share_across_layers || layer == 0;
    return std::make_shared<spe::SPEFilter>(code, s.gated, static_cast<uint64_t>(layer), owns);
  };
}

// The positional encoding goes in one of two places: added to the embeddings (input_encoding),
// or applied to the queries and keys of every layer (qk_encoding).
void add_positional(nn::TransformerParts& parts, const ModelConfig& config, const TaskSpec& task,
                    Generator* gen) {
  const std::string& kind = config.positional;
  if (kind == "none") return;
  if (kind == "sinusoidal") {
    parts.input_encoding = std::make_shared<nn::SinusoidalEncoding>(config.dim);
  } else if (kind == "learned") {
    const int64_t max_len = config.max_len > 0 ? config.max_len : task.max_input_len;
    SPEAR_CHECK_T(ConfigError, max_len >= task.max_input_len, "config: model.max_len ", max_len,
                  " is shorter than the longest input of task ", task.name, " (",
                  task.max_input_len, ")");
    parts.input_encoding = std::make_shared<nn::LearnedEncoding>(max_len, config.dim, gen);
  } else if (kind == "rope") {
    SPEAR_CHECK_T(ConfigError, (config.dim / config.heads) % 2 == 0,
                  "config: model.positional rope needs an even head width, but model.dim / "
                  "model.heads = ",
                  config.dim, " / ", config.heads, " = ", config.dim / config.heads);
    parts.qk_encoding = [](int64_t) { return std::make_shared<nn::RotaryEncoding>(); };
  } else if (kind == "sine_spe" || kind == "conv_spe") {
    add_spe(parts, config, task, gen);
  } else {
    throw ConfigError(str_cat(
        "config: model.positional must be one of none|sinusoidal|learned|rope|sine_spe|conv_spe, "
        "got \"",
        kind, "\""));
  }
}

}  // namespace

Model build_model(const ModelConfig& config, const TaskSpec& task, Generator* gen) {
  SPEAR_CHECK_T(ConfigError, config.dim % config.heads == 0, "config: model.dim ", config.dim,
                " must be a multiple of model.heads ", config.heads);
  nn::TransformerConfig tc;
  tc.vocab_size = task.vocab_size;
  tc.dim = config.dim;
  tc.heads = config.heads;
  tc.layers = config.layers;
  tc.ffn_hidden = config.ffn_hidden;
  tc.dropout = config.dropout;
  tc.activation = nn::activation_from_name(config.activation);

  nn::TransformerParts parts;
  const uint64_t feature_seed = gen ? gen->seed() ^ 0x5eed0fea7u : 0;
  parts.attention = [config, feature_seed](int64_t layer) {
    return make_attention(config, layer, feature_seed);
  };
  add_positional(parts, config, task, gen);

  Model model;
  std::function<Tensor(const Batch&)> logits;
  if (task.head == Head::language_model) {
    auto lm = std::make_shared<nn::CausalLM>(tc, parts, config.tie_embeddings, gen);
    logits = [lm](const Batch& b) { return lm->forward(b.inputs); };
    model.module = lm;
  } else {
    auto classifier = std::make_shared<nn::EncoderClassifier>(
        tc, parts, task.num_classes, nn::pooling_from_name(config.pooling), gen);
    logits = [classifier](const Batch& b) { return classifier->forward(b.inputs, b.padding_mask); };
    model.module = classifier;
  }
  const std::vector<std::shared_ptr<spe::PositionalCode>> codes =
      spe::positional_codes(*model.module);
  model.select_draw = [codes](int64_t draw) {
    for (const auto& code : codes) code->set_draw(draw);
  };
  model.forward = [module = model.module, logits, select = model.select_draw](const Batch& b) {
    if (!module->is_training()) select(kEvalDraw);
    return logits(b);
  };
  return model;
}

}  // namespace spear::train
