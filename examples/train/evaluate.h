// Loss and accuracy of a model on a whole split, overall or per position.
#pragma once
#include <vector>

#include "examples/train/config.h"
#include "examples/train/model.h"
#include "examples/train/tasks.h"

namespace spear::train {

// {"loss", "accuracy"} over every scored target of the split (mean cross-entropy, fraction of
// argmax predictions equal to the target), plus for a language model "seq_accuracy": the
// fraction of examples whose every scored token is right. Runs in eval mode (no dropout) without
// recording gradients, `batch_size` examples at a time; restores the module's mode.
Json evaluate(const Model& model, const Task& task, Split split, int64_t batch_size);

// A language model's loss at each input position p: the cross-entropy of its prediction of the
// token after input p, from inputs 0..p. Entry p sums over the examples scored there.
struct PositionLosses {
  std::vector<double> loss;      // summed cross-entropy
  std::vector<int64_t> correct;  // argmax predictions equal to the target
  std::vector<int64_t> count;    // scored targets
  int64_t examples = 0;
};

// Over the first `max_batches` batches of the split (0: all of it), as evaluate() runs.
PositionLosses evaluate_positions(const Model& model, const Task& task, Split split,
                                  int64_t batch_size, int64_t max_batches = 0);

}  // namespace spear::train
