// extrapolation: a causal language model on a source whose structure is relative, like bars of
// music that echo the bar before. With P = task.period and V = task.vocab:
//
//   x_t uniform in [0, V)                                for t < P
//   x_t = x_{t-P} with probability 1 - noise, else a fresh uniform symbol, for t >= P
//
//   period 4:  3 1 4 1 | 3 1 4 1 | 3 5 4 1 | 3 5 4 1 ...     (a fresh 5 carries on)
//
// Each of the P interleaved chains x_r, x_{r+P}, ... starts uniform and stays uniform, so the
// source is stationary: every window has the same distribution wherever it starts. What a model
// learns at training length N = task.max_len therefore holds at any position, and the loss per
// position past N (spear-eval) measures how well its positional encoding extrapolates. The best
// possible loss is ln V for t < P and, for t >= P, the entropy of
// (1 - noise + noise / V, noise / V, ...): 0.467 nats for V = 8 and noise = 0.1.
#include "examples/train/tasks.h"

namespace spear::train {

TaskSpec extrapolation_task(const TaskConfig& config) {
  const int64_t V = config.vocab, P = config.period, N = config.max_len;
  const double noise = config.noise;
  TaskSpec spec;
  spec.name = "extrapolation";
  spec.head = Head::language_model;
  spec.vocab_size = V + 1;  // the symbols, padding
  spec.num_classes = spec.vocab_size;
  spec.pad_id = V;
  spec.max_input_len = N;
  spec.sample = [V, P, N, noise](Generator& gen) {
    // One sequence of N + 1 symbols: the inputs are its first N, the targets its last N.
    const std::vector<double> u = rand({N + 1}, f64, &gen).to_vector<double>();
    const std::vector<int64_t> fresh = randint(0, V, {N + 1}, &gen).to_vector<int64_t>();
    std::vector<int64_t> x(static_cast<size_t>(N + 1));
    for (int64_t t = 0; t <= N; ++t) x[t] = t < P || u[t] < noise ? fresh[t] : x[t - P];
    Example e;
    e.inputs.assign(x.begin(), x.end() - 1);
    e.targets.assign(x.begin() + 1, x.end());
    return e;
  };
  return spec;
}

}  // namespace spear::train
