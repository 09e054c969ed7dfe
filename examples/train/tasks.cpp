#include "examples/train/tasks.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "examples/train/seeds.h"

namespace spear::train {

const char* split_name(Split split) {
  switch (split) {
    case Split::train:
      return "train";
    case Split::val:
      return "val";
    case Split::test:
      return "test";
  }
  return "?";
}

Task::Task(TaskSpec spec, const TaskConfig& config) : spec_(std::move(spec)) {
  const Split order[] = {Split::train, Split::val, Split::test};
  const int64_t sizes[] = {config.train_size, config.val_size, config.test_size};
  const Stream streams[] = {Stream::train_split, Stream::val_split, Stream::test_split};
  std::set<std::vector<int64_t>> earlier;  // the inputs of the splits drawn so far
  for (int s = 0; s < 3; ++s) {
    Generator gen(derive_seed(config.seed, streams[s]));
    std::vector<Example>& split = splits_[s];
    if (spec_.load) {
      split = spec_.load(order[s], sizes[s], gen);
      continue;
    }
    std::set<std::vector<int64_t>> drawn;
    // Rejections are rare when the task has many more distinct inputs than examples; when they
    // are not, give up with a message rather than loop for ever.
    const int64_t max_rejections = 10 * sizes[s] + 1000;
    int64_t rejections = 0;
    while (static_cast<int64_t>(split.size()) < sizes[s]) {
      Example e = spec_.sample(gen);
      if (earlier.count(e.inputs) || (spec_.unique && drawn.count(e.inputs))) {
        SPEAR_CHECK_T(ConfigError, ++rejections <= max_rejections, "task: cannot draw ", sizes[s],
                      " ", split_name(order[s]), " examples", spec_.unique ? ", all distinct," : "",
                      " unlike the earlier splits' after ", max_rejections, " tries: task ",
                      spec_.name,
                      " has too few distinct inputs (raise task.vocab or task.max_len, or "
                      "lower the split sizes)");
        continue;
      }
      drawn.insert(e.inputs);
      split.push_back(std::move(e));
    }
    earlier.merge(drawn);
  }
}

const std::vector<Example>& Task::examples(Split split) const {
  return splits_[static_cast<int>(split)];
}

Batch Task::train_batch(uint64_t seed, int64_t step, int64_t batch_size) const {
  const std::vector<Example>& train = examples(Split::train);
  Generator gen(derive_seed(seed, Stream::batches, static_cast<uint64_t>(step)));
  std::vector<const Example*> picked;
  for (int64_t i :
       randint(0, static_cast<int64_t>(train.size()), {batch_size}, &gen).to_vector<int64_t>())
    picked.push_back(&train[static_cast<size_t>(i)]);
  return collate(picked);
}

Batch Task::batch(Split split, int64_t begin, int64_t end) const {
  const std::vector<Example>& all = examples(split);
  std::vector<const Example*> picked;
  for (int64_t i = begin; i < end; ++i) picked.push_back(&all.at(static_cast<size_t>(i)));
  return collate(picked);
}

Batch Task::collate(const std::vector<const Example*>& examples) const {
  const auto B = static_cast<int64_t>(examples.size());
  int64_t N = 0;
  for (const Example* e : examples) N = std::max<int64_t>(N, e->inputs.size());
  const bool lm = spec_.head == Head::language_model;
  std::vector<int64_t> inputs(B * N, spec_.pad_id), mask(B * N, 1);
  std::vector<int64_t> targets(lm ? B * N : B, kIgnore);
  Batch batch;
  for (int64_t b = 0; b < B; ++b) {
    const Example& e = *examples[b];
    std::copy(e.inputs.begin(), e.inputs.end(), inputs.begin() + b * N);
    std::fill_n(mask.begin() + b * N, e.inputs.size(), 0);
    std::copy(e.targets.begin(), e.targets.end(), targets.begin() + (lm ? b * N : b));
    batch.tokens += static_cast<int64_t>(e.inputs.size());
  }
  batch.inputs = tensor(inputs, {B, N});
  batch.padding_mask = tensor(mask, {B, N});
  batch.targets = lm ? tensor(targets, {B, N}) : tensor(targets, {B});
  return batch;
}

double Task::chance_accuracy(Split split) const {
  std::map<int64_t, int64_t> counts;
  int64_t total = 0;
  for (const Example& e : examples(split))
    for (int64_t t : e.targets)
      if (t != kIgnore) ++counts[t], ++total;
  int64_t most = 0;
  for (const auto& [target, n] : counts) most = std::max(most, n);
  return total ? static_cast<double>(most) / static_cast<double>(total) : 0.0;
}

TaskSpec task_spec(const TaskConfig& config) {
  SPEAR_CHECK_T(ConfigError, config.min_len <= config.max_len, "config: task.min_len ",
                config.min_len, " exceeds task.max_len ", config.max_len);
  const std::pair<const char*, TaskSpec (*)(const TaskConfig&)> tasks[] = {
      {"reverse", reverse_task},
      {"majority", majority_task},
      {"listops", listops_task},
      {"listops_tsv", listops_tsv_task},
      {"fashion_mnist", fashion_mnist_task},
      {"extrapolation", extrapolation_task},
      {"chars", chars_task}};
  std::string names;
  for (const auto& [name, spec] : tasks) {
    if (config.name == name) return spec(config);
    names += (names.empty() ? "" : "|") + std::string(name);
  }
  throw ConfigError(
      str_cat("config: task.name must be one of ", names, ", got \"", config.name, "\""));
}

std::unique_ptr<Task> make_task(const TaskConfig& config) {
  return std::make_unique<Task>(task_spec(config), config);
}

std::vector<int64_t> random_sequence(Generator& gen, int64_t vocab, int64_t min_len,
                                     int64_t max_len) {
  const int64_t length = randint(min_len, max_len + 1, {1}, &gen).item<int64_t>();
  return randint(0, vocab, {length}, &gen).to_vector<int64_t>();
}

std::vector<int64_t> random_subset(Generator& gen, int64_t n, int64_t size) {
  SPEAR_CHECK(0 <= size && size <= n, "random_subset: cannot choose ", size, " of ", n);
  std::vector<int64_t> chosen = randperm(n, &gen).to_vector<int64_t>();
  chosen.resize(static_cast<size_t>(size));
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

}  // namespace spear::train
