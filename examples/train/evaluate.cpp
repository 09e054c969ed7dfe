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

}  // namespace spear::train
