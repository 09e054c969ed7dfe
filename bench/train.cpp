// spear-bench train: the whole training step of a model spear-train builds: forward, cross-entropy,
// backward, gradient clipping and AdamW (whatever train.optimizer says), on one fixed batch of
// random tokens.
//
//   spear-bench train [--config FILE] [--kind K] [--positional P] [--n N] [--batch B] [--dim C]
//                     [--layers L] [--set key.path=value ...] [--warmup W] [--steps S]
//
// Without --config the model is an encoder classifier with the config table's defaults (2 layers,
// dim 64, 4 heads, FFN 4 dim, R 64, K 10, P 128) on a synthetic task (32 symbols, 10 classes,
// mean pooling), N 1024, batch 8. With --config, the file's model and batch size on its task's
// longest input. Flags override either (they are config keys, checked as spear-train checks
// them). Reports the ms of the fastest timed step (the least disturbed, as bench/harness.h's
// best_seconds; the median and mean too), tokens/s, FLOPs per step and the GFLOP/s they make,
// the peak of live tensor bytes, and the peak RSS (VmHWM) with its growth over the RSS before the
// first step. The JSON row carries the resolved model config, so bench/compare_torch.py can
// build the same model in PyTorch.
//
// FLOPs (multiply-adds count 2), T = B N tokens, C dim, F FFN width, H heads, Dh = C / H, W the
// query/key width the attention sees (R with SPE, else Dh), per layer, forward:
//   projections      8 T C^2              q, k, v, out
//   feed-forward     4 T C F
//   softmax          2 B H N^2 (W + Dh)   scores and weights times values; half when causal
//   linear, FAVOR+   2 T H m (2 Dh + 1)   phi(k)^T v, phi(q) (phi(k)^T v), the denominator;
//                                         m = W features (elu, relu), or the FAVOR+ features
//   FAVOR+ features  4 T H W m            W x for queries and keys
//   SPE codes        2 . 2 N H Dh W 2K    sine: Qbar, Kbar = Omega Z, shared over the batch
//                    2 . 2 N H Dh W P     conv: one depthwise filter of P taps (P^2 in 2-D) each
//   SPE filter       2 . 2 T H Dh W       qhat = sum_d q Qbar, khat likewise
// plus the head (2 B C classes, or 2 T C vocab for a language model). Codes shared by all layers
// count once. Backward costs twice the forward, so a training step is 3x the forward.
// Elementwise work (norms, activations, softmax's exp, the optimiser) is not counted: these are
// the model's FLOPs, the same for any implementation, so GFLOP/s compare like tokens/s do.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include <spear.h>

#include "bench/harness.h"
#include "examples/train/cli.h"
#include "examples/train/config.h"
#include "examples/train/model.h"
#include "examples/train/tasks.h"

namespace spear::bench {
namespace {

using train::Json;

struct TrainArgs {
  std::string config_path;  // empty: the synthetic classifier
  std::vector<train::Override> overrides;
  int64_t n = 0;  // 0: the task's longest input
  int64_t warmup = 2, steps = 5;
};

// The value of `flag` as an integer >= min.
int64_t integer(const train::Flag& flag, int64_t min) {
  size_t used = 0;
  int64_t v = min - 1;
  try {
    v = std::stoll(flag.value, &used);
  } catch (const std::exception&) {
  }
  SPEAR_CHECK_T(ConfigError, used == flag.value.size() && v >= min, "train: ", flag.name,
                " needs an integer >= ", min, ", got '", flag.value, "'");
  return v;
}

TrainArgs parse_args(const std::vector<std::string>& args) {
  bool help = false;  // main() answers --help before the flags get here
  TrainArgs a;
  const std::pair<const char*, const char*> keys[] = {{"--kind", "model.attention.kind"},
                                                      {"--positional", "model.positional"},
                                                      {"--batch", "train.batch_size"},
                                                      {"--dim", "model.dim"},
                                                      {"--layers", "model.layers"}};
  for (const train::Flag& flag : train::parse_flags(args, help)) {
    const char* key = nullptr;
    for (const auto& [name, path] : keys)
      if (flag.name == name) key = path;
    if (key) {
      a.overrides.push_back(train::parse_override(std::string(key) + "=" + flag.value));
    } else if (flag.name == "--set") {
      a.overrides.push_back(train::parse_override(flag.value));
    } else if (flag.name == "--config") {
      a.config_path = flag.value;
    } else if (flag.name == "--n") {
      a.n = integer(flag, 1);
    } else if (flag.name == "--warmup") {
      a.warmup = integer(flag, 0);
    } else if (flag.name == "--steps") {
      a.steps = integer(flag, 1);
    } else {
      throw ConfigError(str_cat("train: unknown flag ", flag.name, " (see spear-bench --help)"));
    }
  }
  return a;
}

// What the model is trained on when no config names a task: random symbols and labels.
train::TaskSpec synthetic_task(int64_t n) {
  train::TaskSpec spec;
  spec.name = "synthetic";
  spec.head = train::Head::classifier;
  spec.vocab_size = 32;
  spec.num_classes = 10;
  spec.pad_id = 0;
  spec.max_input_len = n;
  return spec;
}

// The forward FLOPs of one layer's attention (projections excluded), as the header says.
double attention_flops(const train::ModelConfig& m, int64_t B, int64_t N, bool causal) {
  const double T = static_cast<double>(B * N), H = static_cast<double>(m.heads);
  const double Dh = static_cast<double>(m.dim / m.heads);
  const bool spe = m.positional == "sine_spe" || m.positional == "conv_spe";
  const double W = spe ? static_cast<double>(m.spe.realizations) : Dh;
  if (m.attention == "softmax")
    return 2.0 * B * H * static_cast<double>(N) * N * (W + Dh) * (causal ? 0.5 : 1.0);
  const double features =
      m.attention == "favor" && m.features > 0 ? static_cast<double>(m.features) : W;
  double flops = 2.0 * T * H * features * (2.0 * Dh + 1.0);
  if (m.attention == "favor") flops += 4.0 * T * H * W * features;
  return flops;
}

// The forward FLOPs of one draw of SPE's codes Qbar and Kbar for N positions.
double spe_code_flops(const train::ModelConfig& m, int64_t N) {
  const double H = static_cast<double>(m.heads), Dh = static_cast<double>(m.dim / m.heads);
  const double R = static_cast<double>(m.spe.realizations);
  double taps = static_cast<double>(m.spe.kernel_size);
  if (m.spe.ndim == 2) taps *= taps;
  const double per_value = m.positional == "sine_spe" ? 2.0 * m.spe.sines : taps;
  return 2.0 * 2.0 * static_cast<double>(N) * H * Dh * R * per_value;
}

// The FLOPs of one training step, as the header counts them.
double train_step_flops(const train::ModelConfig& m, const train::TaskSpec& task, int64_t B,
                        int64_t N) {
  const double T = static_cast<double>(B * N), C = static_cast<double>(m.dim);
  const double F = static_cast<double>(m.ffn_hidden > 0 ? m.ffn_hidden : 4 * m.dim);
  const bool causal = task.head == train::Head::language_model;
  const bool spe = m.positional == "sine_spe" || m.positional == "conv_spe";
  double layer = 8.0 * T * C * C + 4.0 * T * C * F + attention_flops(m, B, N, causal);
  double codes = 0;
  if (spe) {
    layer += 2.0 * 2.0 * T * static_cast<double>(m.dim) * static_cast<double>(m.spe.realizations);
    codes = spe_code_flops(m, N) * (m.spe.share_across_layers ? 1 : static_cast<double>(m.layers));
  }
  const double head = causal ? 2.0 * T * C * static_cast<double>(task.vocab_size)
                             : 2.0 * B * C * static_cast<double>(task.num_classes);
  return 3.0 * (static_cast<double>(m.layers) * layer + codes + head);
}

// A "VmRSS" (now) or "VmHWM" (peak) line of /proc/self/status, in MiB. Not getrusage's ru_maxrss:
// Linux carries it across exec, so a process started from a large one (a Python that imported
// PyTorch) would report its parent's peak.
double status_mib(const std::string& key) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.compare(0, key.size() + 1, key + ":") == 0)
      return std::stod(line.substr(key.size() + 1)) / 1024;  // the line reads "VmHWM:  1234 kB"
  throw IOError(str_cat("/proc/self/status has no ", key, " line"));
}

// The row's name: the config file's name without .json, or "kind+positional".
std::string row_name(const std::string& config_path, const train::ModelConfig& m) {
  if (config_path.empty()) return m.attention + "+" + m.positional;
  const std::string file = config_path.substr(config_path.find_last_of('/') + 1);
  return file.substr(0, file.find_last_of('.'));
}

Json task_json(const train::TaskSpec& task, int64_t n) {
  return {{"name", task.name},
          {"head", task.head == train::Head::language_model ? "lm" : "classifier"},
          {"vocab", task.vocab_size},
          {"classes", task.num_classes},
          {"n", n},
          {"grid", task.grid}};
}

// What the PyTorch side needs to build the same AdamW and clipping.
Json optimizer_json(const train::TrainConfig& t) {
  return {{"lr", t.lr},   {"weight_decay", t.weight_decay}, {"beta1", t.beta1}, {"beta2", t.beta2},
          {"eps", t.eps}, {"grad_clip", t.grad_clip}};
}

}  // namespace

void bench_train(const Options& opt) {
  TrainArgs args = parse_args(opt.rest);
  Json user = args.config_path.empty()
                  ? Json{{"model", {{"pooling", "mean"}}}, {"train", {{"batch_size", 8}}}}
                  : train::load_config_file(args.config_path);
  const Json resolved = train::resolve_config(user, args.overrides);
  const train::Config config = train::config_from_json(resolved);
  const train::ModelConfig& m = config.model;
  train::TaskSpec task = args.config_path.empty() ? synthetic_task(args.n ? args.n : 1024)
                                                  : train::task_spec(config.task);
  if (args.n) task.max_input_len = args.n;
  const int64_t B = config.train.batch_size, N = task.max_input_len;

  Generator gen(config.train.seed);
  train::Model model = train::build_model(m, task, &gen);
  model.module->train();
  nn::AdamOptions adam;
  adam.lr = config.train.lr;
  adam.beta1 = config.train.beta1;
  adam.beta2 = config.train.beta2;
  adam.eps = config.train.eps;
  nn::AdamW optimizer(nn::param_groups(*model.module, config.train.weight_decay), adam);
  const double clip =
      config.train.grad_clip > 0 ? config.train.grad_clip : std::numeric_limits<double>::infinity();

  // One batch for every step: making batches is not what is measured.
  train::Batch batch;
  batch.inputs = randint(0, task.vocab_size, {B, N}, &gen);
  batch.targets = task.head == train::Head::language_model
                      ? randint(0, task.vocab_size, {B, N}, &gen)
                      : randint(0, task.num_classes, {B}, &gen);
  batch.tokens = B * N;

  double loss_value = 0;
  auto step = [&](int64_t s) {
    model.select_draw(s);
    optimizer.zero_grad();
    Tensor loss = cross_entropy(model.forward(batch), batch.targets, train::kIgnore);
    loss.backward();
    nn::clip_grad_norm_(model.module->parameters(), clip);
    optimizer.step();
    loss_value = loss.item<double>();
  };

  const double rss_before = status_mib("VmRSS");
  const int64_t tensors_before = memory_stats().current_bytes;
  reset_peak_memory();
  std::vector<double> ms;
  for (int64_t s = 1; s <= args.warmup + args.steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    step(s);
    const double elapsed =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (s > args.warmup) ms.push_back(elapsed);
  }
  const double tensor_peak_mib =
      static_cast<double>(memory_stats().peak_bytes - tensors_before) / (1 << 20);
  const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
  std::sort(ms.begin(), ms.end());
  const double best = ms.front(), median = ms[ms.size() / 2];
  const double flops = train_step_flops(m, task, B, N);

  Json model_json = resolved["model"];
  model_json["ffn_hidden"] = m.ffn_hidden > 0 ? m.ffn_hidden : 4 * m.dim;
  emit(opt, {{"bench", "train"},
             {"name", row_name(args.config_path, m)},
             {"kind", m.attention},
             {"positional", m.positional},
             {"n", N},
             {"batch", B},
             {"dim", m.dim},
             {"layers", m.layers},
             {"threads", get_num_threads()},
             {"params", model.module->num_parameters()},
             {"steps", args.steps},
             {"ms", round2(best)},
             {"ms_median", round2(median)},
             {"ms_mean", round2(mean)},
             {"tokens_per_s", round2(static_cast<double>(B * N) / (best * 1e-3))},
             {"gflop_per_step", round2(flops * 1e-9)},
             {"gflops", round2(flops * 1e-9 / (best * 1e-3))},
             {"tensor_peak_mib", round2(tensor_peak_mib)},
             {"step_rss_mib", round2(status_mib("VmHWM") - rss_before)},
             {"peak_rss_mib", round2(status_mib("VmHWM"))},
             {"loss", loss_value},
             {"task", task_json(task, N)},
             {"model", model_json},
             {"optimizer", optimizer_json(config.train)}});
}

}  // namespace spear::bench
