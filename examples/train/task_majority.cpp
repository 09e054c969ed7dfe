// majority: a classifier reads a sequence of symbols and names the most frequent one (the
// smallest of those tied for most frequent):
//
//   sequence  2 0 2 1 0 2            label 2 (three 2s)
//   inputs    C 2 0 2 1 0 2          (C: a CLS token, id vocab + 1, for model.pooling = cls)
//
// Sequences vary in length, so batches carry a padding mask; the answer depends on every
// position, so a model must aggregate over the whole (unpadded) sequence.
#include <algorithm>

#include "examples/train/tasks.h"

namespace spear::train {

int64_t majority_label(const std::vector<int64_t>& x, int64_t vocab) {
  std::vector<int64_t> counts(static_cast<size_t>(vocab), 0);
  for (int64_t s : x) ++counts.at(static_cast<size_t>(s));
  // max_element returns the first maximum: the smallest symbol among the tied.
  return std::max_element(counts.begin(), counts.end()) - counts.begin();
}

TaskSpec majority_task(const TaskConfig& config) {
  const int64_t cls = config.vocab + 1;
  TaskSpec spec;
  spec.name = "majority";
  spec.head = Head::classifier;
  spec.vocab_size = config.vocab + 2;  // the symbols, padding, CLS
  spec.num_classes = config.vocab;
  spec.pad_id = config.vocab;
  spec.max_input_len = config.max_len + 1;
  spec.sample = [config, cls](Generator& gen) {
    Example e;
    e.inputs = random_sequence(gen, config.vocab, config.min_len, config.max_len);
    e.targets = {majority_label(e.inputs, config.vocab)};
    e.inputs.insert(e.inputs.begin(), cls);
    return e;
  };
  return spec;
}

}  // namespace spear::train
