// Loss and accuracy of a model on a whole split.
#pragma once
#include "examples/train/config.h"
#include "examples/train/model.h"
#include "examples/train/tasks.h"

namespace spear::train {

// {"loss", "accuracy"} over every scored target of the split (mean cross-entropy, fraction of
// argmax predictions equal to the target), plus for a language model "seq_accuracy": the
// fraction of examples whose every scored token is right. Runs in eval mode (no dropout) without
// recording gradients, `batch_size` examples at a time; restores the module's mode.
Json evaluate(const Model& model, const Task& task, Split split, int64_t batch_size);

}  // namespace spear::train
