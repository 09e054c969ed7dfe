// reverse: a causal language model reads x_1 .. x_L, a separator, and must continue with
// x_L .. x_1. Only the reversed half is predictable, so only it is scored:
//
//   sequence  3 1 4 | 4 1 3          (| is the separator, id vocab)
//   inputs    3 1 4 | 4 1            (the sequence without its last token)
//   targets   - - - 4 1 3            (the next token, from the separator on; - is kIgnore)
//
// Solving it takes attention to a position that moves with the query (2L + 1 - i), the kind of
// relative-position lookup positional encodings are compared on.
#include "examples/train/tasks.h"

namespace spear::train {

Example reverse_example(const std::vector<int64_t>& x, int64_t separator) {
  Example e;
  e.inputs = x;
  e.inputs.push_back(separator);
  e.inputs.insert(e.inputs.end(), x.rbegin(), x.rend() - 1);  // x_L .. x_2
  e.targets.assign(x.size(), kIgnore);
  e.targets.insert(e.targets.end(), x.rbegin(), x.rend());  // x_L .. x_1
  return e;
}

TaskSpec reverse_task(const TaskConfig& config) {
  TaskSpec spec;
  spec.name = "reverse";
  spec.head = Head::language_model;
  spec.vocab_size = config.vocab + 2;  // the symbols, the separator, padding
  spec.num_classes = spec.vocab_size;
  spec.pad_id = config.vocab + 1;
  spec.max_input_len = 2 * config.max_len;
  spec.sample = [config](Generator& gen) {
    return reverse_example(random_sequence(gen, config.vocab, config.min_len, config.max_len),
                           config.vocab);
  };
  return spec;
}

}  // namespace spear::train
