// Synthetic tasks: small data sets generated from a seed, split three ways, served in batches.
//
// A task is a TaskSpec: its vocabulary and where its examples come from. A synthetic task draws
// one random example at a time; Task draws the training, validation and test splits from it,
// each from its own random stream, and rejects any validation or test example whose input
// already occurs in an earlier split, so a model is never evaluated on an input it trained on. A
// data-set task builds each split whole from its files, whose splits are disjoint already.
// Everything is a function of task.seed; the batch of training step s is a function of
// (train.seed, s) alone, so a resumed run sees the same batches.
//
// Tasks (docs/tasks.md): "reverse", "extrapolation" and "chars" for the causal language model;
// "majority", "listops", "listops_tsv" and "fashion_mnist" for the classifier. A new task is one
// file and one branch in task_spec.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "examples/train/config.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace spear::train {

// cross_entropy skips this target (PyTorch's ignore_index).
inline constexpr int64_t kIgnore = -100;

enum class Head { language_model, classifier };

struct Example {
  std::vector<int64_t> inputs;   // the token ids the model reads
  std::vector<int64_t> targets;  // language model: one per input (kIgnore: no loss there);
                                 // classifier: {label}
};

// Examples padded to the longest one, on the right.
struct Batch {
  Tensor inputs;        // (B, N) i64, padded with the task's pad id
  Tensor padding_mask;  // (B, N) i64, 1 at padding
  Tensor targets;       // language model: (B, N) i64, kIgnore at padding; classifier: (B) i64
  int64_t tokens = 0;   // input tokens that are not padding
};

enum class Split { train, val, test };
const char* split_name(Split split);  // "train" | "val" | "test"

// What a task is: its vocabulary and where its examples come from. Exactly one of `sample` and
// `load` is set.
struct TaskSpec {
  std::string name;
  Head head;
  int64_t vocab_size;     // input ids (and, for a language model, targets) lie in [0, vocab_size)
  int64_t num_classes;    // classifier labels lie in [0, num_classes)
  int64_t pad_id;         // the id that fills a batch's short rows
  int64_t max_input_len;  // the longest input any example has
  // The positions of every input form this grid, row-major (Fashion-MNIST: {28, 28}), for
  // encodings that see 2-D structure; empty: a plain sequence.
  std::vector<int64_t> grid = {};
  bool text = false;  // the ids are bytes: prompts and samples read and print as text
  // A synthetic task: one random example.
  std::function<Example(Generator&)> sample = nullptr;
  bool unique = false;  // no input twice within a split either (not only across splits)
  // A data-set task: `size` examples of a split, any random choice drawn from `gen`.
  std::function<std::vector<Example>(Split, int64_t size, Generator& gen)> load = nullptr;
};

class Task {
 public:
  // Draws the three splits (sizes from `config`) from spec.sample, or loads them with spec.load.
  // Throws ConfigError when a synthetic task has too few distinct inputs to fill disjoint splits.
  Task(TaskSpec spec, const TaskConfig& config);

  const TaskSpec& spec() const { return spec_; }
  const std::vector<Example>& examples(Split split) const;

  // The batch of training step `step`: batch_size examples drawn uniformly (with replacement)
  // from the training split by a generator seeded from (seed, step) only.
  Batch train_batch(uint64_t seed, int64_t step, int64_t batch_size) const;
  // Examples [begin, end) of a split, in order (for evaluation).
  Batch batch(Split split, int64_t begin, int64_t end) const;
  // Any examples, padded into one batch.
  Batch collate(const std::vector<const Example*>& examples) const;

  // The accuracy of always predicting the split's most frequent target: the bar to beat.
  double chance_accuracy(Split split) const;

 private:
  TaskSpec spec_;
  std::vector<Example> splits_[3];
};

// The spec of the task named by config.name (nothing drawn or read yet), and the task with its
// splits drawn. Throw ConfigError on bad settings, IOError on unreadable data files.
TaskSpec task_spec(const TaskConfig& config);
std::unique_ptr<Task> make_task(const TaskConfig& config);

// The specs, one file each.
TaskSpec reverse_task(const TaskConfig& config);        // task_reverse.cpp
TaskSpec majority_task(const TaskConfig& config);       // task_majority.cpp
TaskSpec listops_task(const TaskConfig& config);        // task_listops.cpp
TaskSpec listops_tsv_task(const TaskConfig& config);    // lra_tsv.cpp
TaskSpec fashion_mnist_task(const TaskConfig& config);  // task_fashion_mnist.cpp
TaskSpec extrapolation_task(const TaskConfig& config);  // task_extrapolation.cpp
TaskSpec chars_task(const TaskConfig& config);          // task_chars.cpp

// The reverse example of the symbols x: inputs x, separator, x reversed without its last
// element; targets kIgnore up to x's end, then x reversed (task_reverse.cpp).
Example reverse_example(const std::vector<int64_t>& x, int64_t separator);
// The most frequent symbol of x (symbols in [0, vocab)), the smallest among ties
// (task_majority.cpp).
int64_t majority_label(const std::vector<int64_t>& x, int64_t vocab);

// Length uniform in [min_len, max_len], symbols uniform in [0, vocab): the raw material of
// reverse and majority.
std::vector<int64_t> random_sequence(Generator& gen, int64_t vocab, int64_t min_len,
                                     int64_t max_len);

// `size` of the indices 0 .. n-1 (size <= n), drawn without replacement, in increasing order: all
// of them when size == n.
std::vector<int64_t> random_subset(Generator& gen, int64_t n, int64_t size);

}  // namespace spear::train
