// The model a config describes, built for a task: the seam where configuration meets nn/.
//
// nn/ provides the generic pieces (blocks, heads, the attention-kernel and positional-encoding
// interfaces); this file picks them by name. A new attention kernel or positional encoding is one
// branch here (and one choice in the config table).
#pragma once
#include <functional>
#include <memory>

#include "examples/train/config.h"
#include "examples/train/tasks.h"
#include "nn/module.h"

namespace spear::train {

// The draw stochastic layers (SPE) use in evaluation and generation: one fixed draw, so results
// are deterministic; training uses the step number as its draw.
inline constexpr int64_t kEvalDraw = -1;

struct Model {
  std::shared_ptr<nn::Module> module;  // what the optimiser trains and a checkpoint holds
  // batch -> logits: (B, N, vocab) for a language model, (B, classes) for a classifier. In eval
  // mode it first selects kEvalDraw.
  std::function<Tensor(const Batch&)> forward;
  // Selects the draw of every stochastic positional code (a no-op without SPE). The trainer
  // calls it with the step number before each training step.
  std::function<void(int64_t draw)> select_draw;
};

// A CausalLM for a language-model task, an EncoderClassifier for a classifier; weights drawn from
// `gen`, which dropout also draws from (so it must outlive the model). Throws ConfigError naming
// the keys on settings that do not fit together.
Model build_model(const ModelConfig& config, const TaskSpec& task, Generator* gen);

}  // namespace spear::train
