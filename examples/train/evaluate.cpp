#include "examples/train/evaluate.h"

#include <algorithm>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"

namespace spear::train {

Json evaluate(const Model& model, const Task& task, Split split, int64_t batch_size) {
  NoGradGuard no_grad;
  const bool was_training = model.module->is_training();
  model.module->eval();
  double loss_sum = 0;  // the loss of each batch times its number of scored targets
  int64_t scored = 0, correct = 0, rows = 0, rows_correct = 0;
  const auto size = static_cast<int64_t>(task.examples(split).size());
  for (int64_t begin = 0; begin < size; begin += batch_size) {
    const Batch batch = task.batch(split, begin, std::min(size, begin + batch_size));
    const Tensor logits = model.forward(batch);
    const std::vector<int64_t> predicted = argmax(logits, -1).to_vector<int64_t>();
    const std::vector<int64_t> targets = batch.targets.to_vector<int64_t>();
    const int64_t B = batch.inputs.size(0);
    const auto per_row = static_cast<int64_t>(targets.size()) / B;
    int64_t batch_scored = 0;
    for (int64_t b = 0; b < B; ++b) {
      bool all_right = true;
      for (int64_t i = b * per_row; i < (b + 1) * per_row; ++i) {
        if (targets[i] == kIgnore) continue;
        ++batch_scored;
        const bool right = predicted[i] == targets[i];
        correct += right;
        all_right = all_right && right;
      }
      rows_correct += all_right;
    }
    rows += B;
    scored += batch_scored;
    loss_sum += cross_entropy(logits, batch.targets, kIgnore).item<double>() *
                static_cast<double>(batch_scored);
  }
  model.module->train(was_training);
  auto ratio = [](double a, int64_t b) { return b ? a / static_cast<double>(b) : 0.0; };
  Json metrics = {{"loss", ratio(loss_sum, scored)},
                  {"accuracy", ratio(static_cast<double>(correct), scored)}};
  if (task.spec().head == Head::language_model)
    metrics["seq_accuracy"] = ratio(static_cast<double>(rows_correct), rows);
  return metrics;
}

PositionLosses evaluate_positions(const Model& model, const Task& task, Split split,
                                  int64_t batch_size, int64_t max_batches) {
  SPEAR_CHECK_T(ConfigError, task.spec().head == Head::language_model,
                "per-position losses need a language model; task ", task.spec().name,
                " is a classifier");
  NoGradGuard no_grad;
  const bool was_training = model.module->is_training();
  model.module->eval();
  PositionLosses r;
  auto size = static_cast<int64_t>(task.examples(split).size());
  if (max_batches > 0) size = std::min(size, max_batches * batch_size);
  for (int64_t begin = 0; begin < size; begin += batch_size) {
    const Batch batch = task.batch(split, begin, std::min(size, begin + batch_size));
    // logits: (B, N, V) -> log-probabilities, read on the CPU side per scored target.
    const Tensor log_probs = log_softmax(model.forward(batch), -1).to(f64);
    const std::vector<double> lp = log_probs.to_vector<double>();
    const std::vector<int64_t> predicted = argmax(log_probs, -1).to_vector<int64_t>();
    const std::vector<int64_t> targets = batch.targets.to_vector<int64_t>();
    const int64_t B = batch.inputs.size(0), N = batch.inputs.size(1), V = log_probs.size(2);
    if (static_cast<int64_t>(r.count.size()) < N) {
      r.loss.resize(N, 0.0);
      r.correct.resize(N, 0);
      r.count.resize(N, 0);
    }
    for (int64_t b = 0; b < B; ++b)
      for (int64_t p = 0; p < N; ++p) {
        const int64_t t = targets[b * N + p];
        if (t == kIgnore) continue;
        r.loss[p] -= lp[(b * N + p) * V + t];
        r.correct[p] += predicted[b * N + p] == t;
        ++r.count[p];
      }
    r.examples += B;
  }
  model.module->train(was_training);
  return r;
}

}  // namespace spear::train
