#include "examples/train/config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "tensor/error.h"

namespace spear::train {
namespace {

// Table rows by type. The JSON type of the default decides what a value must be.
ConfigKey integer(std::string path, int64_t value, int64_t min, std::string help) {
  return {std::move(path), value, std::move(help), {}, static_cast<double>(min)};
}
ConfigKey number(std::string path, double value, double min, double max, std::string help,
                 bool max_open = false) {
  return {std::move(path), value, std::move(help), {}, min, max, max_open};
}
ConfigKey boolean(std::string path, bool value, std::string help) {
  return {std::move(path), value, std::move(help)};
}
ConfigKey choice(std::string path, std::string value, std::vector<std::string> choices,
                 std::string help) {
  return {std::move(path), std::move(value), std::move(help), std::move(choices)};
}

constexpr double kInf = std::numeric_limits<double>::infinity();

// "a.b.c" -> {"a", "b", "c"}
std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t dot; (dot = path.find('.', start)) != std::string::npos; start = dot + 1)
    parts.push_back(path.substr(start, dot - start));
  parts.push_back(path.substr(start));
  return parts;
}

// The value at `path`, or null when some part of it is missing.
const Json* find_path(const Json& root, const std::string& path) {
  const Json* node = &root;
  for (const std::string& part : split_path(path)) {
    if (!node->is_object() || !node->contains(part)) return nullptr;
    node = &(*node)[part];
  }
  return node;
}

// The value at `path`, created (with objects on the way) when missing.
Json& make_path(Json& root, const std::string& path) {
  Json* node = &root;
  for (const std::string& part : split_path(path)) {
    if (!node->is_object()) *node = Json::object();
    node = &(*node)[part];
  }
  return *node;
}

const ConfigKey* find_key(const std::string& path) {
  for (const ConfigKey& key : config_keys())
    if (key.path == path) return &key;
  return nullptr;
}

// A section is an object holding keys: "task", "model.attention".
bool is_section(const std::string& path) {
  for (const ConfigKey& key : config_keys())
    if (key.path.compare(0, path.size() + 1, path + ".") == 0) return true;
  return false;
}

std::string format_bound(const ConfigKey& key, double bound) {
  if (key.default_value.is_number_integer()) return std::to_string(static_cast<int64_t>(bound));
  return Json(bound).dump();
}

void check_value(const ConfigKey& key, const Json& value) {
  auto fail = [&](const std::string& what) {
    throw ConfigError(str_cat("config: ", key.path, " must be ", what, ", got ", value.dump()));
  };
  const Json& d = key.default_value;
  if (d.is_boolean() && !value.is_boolean()) fail("a boolean");
  if (d.is_string()) {
    if (!value.is_string()) fail("a string");
    if (key.choices.empty()) return;
    for (const std::string& c : key.choices)
      if (value.get<std::string>() == c) return;
    std::string list;
    for (const std::string& c : key.choices) list += (list.empty() ? "" : "|") + c;
    fail("one of " + list);
  }
  if (d.is_number_integer() && !value.is_number_integer()) fail("an integer");
  if (d.is_number_float() && !value.is_number()) fail("a number");
  if (!d.is_number()) return;
  // Integers beyond int64 arrive as unsigned; they would wrap on the way to int64_t.
  if (value.is_number_unsigned() && value.get<uint64_t>() > INT64_MAX) fail("a 64-bit integer");
  const double x = value.get<double>();
  const bool above = key.max_open ? x >= key.max : x > key.max;
  if (!(x >= key.min) || above) {
    if (key.max == kInf) fail(">= " + format_bound(key, key.min));
    fail(str_cat("in [", format_bound(key, key.min), ", ", format_bound(key, key.max),
                 key.max_open ? ")" : "]"));
  }
}

// Checks every entry of the object `node` found at `prefix`.
void check_tree(const Json& node, const std::string& prefix) {
  for (const auto& [name, value] : node.items()) {
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    if (const ConfigKey* key = find_key(path)) {
      check_value(*key, value);
    } else if (is_section(path)) {
      SPEAR_CHECK_T(ConfigError, value.is_object(), "config: ", path, " must be an object, got ",
                    value.dump());
      check_tree(value, path);
    } else {
      throw ConfigError("config: unknown key " + path);
    }
  }
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; the rest is the useful part.
std::string json_message(const std::exception& e) {
  std::string m = e.what();
  const size_t close = m.find("] ");
  return m[0] == '[' && close != std::string::npos ? m.substr(close + 2) : m;
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = {
      choice("task.name", "reverse",
             {"reverse", "majority", "listops", "listops_tsv", "fashion_mnist", "extrapolation",
              "chars"},
             "the task (docs/tasks.md)"),
      {"task.path", "",
       "data file or directory of listops_tsv, fashion_mnist, chars (\"\": default)"},
      integer("task.vocab", 8, 2, "distinct symbols in a sequence (special tokens come on top)"),
      integer("task.min_len", 4, 1, "shortest sequence (symbols, before any special token)"),
      integer("task.max_len", 8, 1, "longest sequence (language models: the training length)"),
      integer("task.train_size", 10000, 1, "training examples"),
      integer("task.val_size", 500, 1, "validation examples (disjoint from training)"),
      integer("task.test_size", 1000, 1, "test examples (disjoint from training and validation)"),
      integer("task.seed", 1234, 0, "fixes the data set, independently of train.seed"),
      integer("task.max_depth", 10, 1, "listops: deepest node of an expression tree (root: 1)"),
      integer("task.max_args", 10, 2, "listops: most arguments of one operator"),
      {"task.levels",
       int64_t{256},
       "fashion_mnist: grey levels pixels are quantised to",
       {},
       2,
       256},
      {"task.downsample",
       int64_t{1},
       "fashion_mnist: side of the square blocks of pixels averaged into one token",
       {},
       1,
       28},
      integer("task.period", 16, 1, "extrapolation: the lag at which the source repeats itself"),
      number("task.noise", 0.1, 0.0, 1.0, "extrapolation: probability of a fresh symbol"),

      integer("model.dim", 64, 1, "width of the residual stream"),
      integer("model.heads", 4, 1, "attention heads (must divide model.dim)"),
      integer("model.layers", 2, 0, "transformer blocks"),
      integer("model.ffn_hidden", 0, 0, "hidden width of the feed-forward layers (0: 4 * dim)"),
      number("model.dropout", 0.0, 0.0, 1.0, "dropout probability", true),
      choice("model.activation", "gelu", {"gelu", "relu"}, "feed-forward activation"),
      choice("model.positional", "sinusoidal",
             {"none", "sinusoidal", "learned", "rope", "sine_spe", "conv_spe"},
             "positional encoding (sine_spe, conv_spe: stochastic positional encoding)"),
      integer("model.spe.realizations", 64, 1,
              "SPE: realizations R (the width the attention then sees)"),
      integer("model.spe.sines", 10, 1, "sine_spe: sinusoids K per feature"),
      integer("model.spe.kernel_size", 128, 1, "conv_spe: filter taps P (per axis)"),
      {"model.spe.ndim",
       int64_t{1},
       "conv_spe: 1, or 2 for a task whose positions form a grid",
       {},
       1,
       2},
      boolean("model.spe.gated", true,
              "SPE: a learned gate per feature mixes in content-only attention"),
      boolean("model.spe.share_across_layers", false,
              "SPE: one code (parameters and draw) for every layer, a gate per layer"),
      integer("model.max_len", 0, 0,
              "positions of the learned encoding (0: the task's longest input)"),
      choice("model.attention.kind", "softmax", {"softmax", "linear", "favor"},
             "attention kernel: softmax (O(N^2)), linear, or FAVOR+ (Performer)"),
      choice("model.attention.feature_map", "elu", {"elu", "relu"},
             "linear only: phi(x) = elu(x) + 1 or relu(x) + 1e-3"),
      integer("model.attention.features", 0, 0,
              "favor only: random features per head (0: the head width)"),
      integer("model.attention.redraw", 1000, 0,
              "favor only: draw new random features every K training steps (0: never)"),
      number("model.attention.eps", 1e-6, 0.0, kInf,
             "linear and favor: added to the attention denominator"),
      choice("model.pooling", "mean", {"mean", "cls"},
             "classifier only: average the positions, or take the first (CLS) token"),
      boolean("model.tie_embeddings", false, "language model only: share the embedding and output"),

      integer("train.steps", 1000, 0, "optimiser steps"),
      integer("train.batch_size", 32, 1, "examples per step (and per evaluation batch)"),
      choice("train.optimizer", "adamw", {"adamw", "adam", "sgd"}, "optimiser"),
      number("train.lr", 1e-3, 0.0, kInf, "peak learning rate"),
      number("train.min_lr", 0.0, 0.0, kInf, "final learning rate of cosine and linear decay"),
      choice("train.schedule", "cosine", {"constant", "cosine", "linear", "inverse_sqrt"},
             "learning-rate schedule after the warmup"),
      integer("train.warmup", 100, 0, "steps of linear warmup from 0 to train.lr"),
      number("train.weight_decay", 0.01, 0.0, kInf,
             "weight decay of 2-d weights (biases and norms get none)"),
      number("train.beta1", 0.9, 0.0, 1.0, "Adam: decay of the gradient average", true),
      number("train.beta2", 0.999, 0.0, 1.0, "Adam: decay of the squared-gradient average", true),
      number("train.eps", 1e-8, 0.0, kInf, "Adam: added to the denominator"),
      number("train.momentum", 0.9, 0.0, kInf, "SGD: momentum (0: plain SGD)"),
      boolean("train.nesterov", false, "SGD: Nesterov momentum"),
      number("train.grad_clip", 1.0, 0.0, kInf, "clip the gradient norm to this (0: no clipping)"),
      integer("train.eval_every", 200, 0, "evaluate on validation every K steps (0: at the end)"),
      integer("train.log_every", 10, 1, "a metrics line (and a plain progress line) every K steps"),
      integer("train.checkpoint_every", 200, 0, "checkpoint every K steps (0: at the end)"),
      integer("train.seed", 0, 0, "drives initialisation, batch sampling and dropout"),
      {"train.threads", int64_t{0}, "threads (0: SPEAR_NUM_THREADS, else every core)", {}, 0, 1024},
      choice("train.on_nonfinite", "stop", {"stop", "skip"},
             "a NaN or Inf loss or gradient stops the run, or skips the step"),
  };
  return keys;
}

Json default_config() {
  Json config = Json::object();
  for (const ConfigKey& key : config_keys()) make_path(config, key.path) = key.default_value;
  return config;
}

Override parse_override(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  SPEAR_CHECK_T(ConfigError, eq != std::string::npos && eq > 0,
                "--set expects key.path=value, got '", assignment, "'");
  const std::string text = assignment.substr(eq + 1);
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;
  return {assignment.substr(0, eq), std::move(value)};
}

Json load_config_file(const std::string& path) {
  std::ifstream in(path);
  SPEAR_CHECK_T(ConfigError, in.is_open(), "config: cannot open ", path, ": ",
                std::strerror(errno));
  try {
    return Json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw ConfigError(str_cat("config: ", path, ": ", json_message(e)));
  }
}

Json resolve_config(Json user, const std::vector<Override>& overrides) {
  SPEAR_CHECK_T(ConfigError, user.is_object(), "config: the top level must be an object, got ",
                user.dump());
  for (const Override& o : overrides) {
    SPEAR_CHECK_T(ConfigError, find_key(o.path) || is_section(o.path), "config: unknown key ",
                  o.path);
    make_path(user, o.path) = o.value;
  }
  check_tree(user, "");
  Json resolved = default_config();
  for (const ConfigKey& key : config_keys())
    if (const Json* value = find_path(user, key.path)) make_path(resolved, key.path) = *value;
  return resolved;
}

Json config_at(const Json& config, const std::string& path) {
  const Json* value = find_path(config, path);
  return value ? *value : Json();
}

std::string first_difference(const Json& a, const Json& b, const std::vector<std::string>& ignore) {
  for (const ConfigKey& key : config_keys()) {
    bool skip = false;
    for (const std::string& i : ignore) skip = skip || i == key.path;
    const Json* x = find_path(a, key.path);
    const Json* y = find_path(b, key.path);
    if (!skip && (!x || !y || *x != *y)) return key.path;
  }
  return "";
}

Config config_from_json(const Json& j) {
  auto str = [&](const char* path) { return j.at(Json::json_pointer(path)).get<std::string>(); };
  auto i64 = [&](const char* path) { return j.at(Json::json_pointer(path)).get<int64_t>(); };
  auto f64 = [&](const char* path) { return j.at(Json::json_pointer(path)).get<double>(); };
  auto flag = [&](const char* path) { return j.at(Json::json_pointer(path)).get<bool>(); };
  Config c;
  TaskConfig& t = c.task;
  t.name = str("/task/name");
  t.path = str("/task/path");
  t.vocab = i64("/task/vocab");
  t.min_len = i64("/task/min_len");
  t.max_len = i64("/task/max_len");
  t.train_size = i64("/task/train_size");
  t.val_size = i64("/task/val_size");
  t.test_size = i64("/task/test_size");
  t.seed = static_cast<uint64_t>(i64("/task/seed"));
  t.max_depth = i64("/task/max_depth");
  t.max_args = i64("/task/max_args");
  t.levels = i64("/task/levels");
  t.downsample = i64("/task/downsample");
  t.period = i64("/task/period");
  t.noise = f64("/task/noise");

  ModelConfig& m = c.model;
  m.dim = i64("/model/dim");
  m.heads = i64("/model/heads");
  m.layers = i64("/model/layers");
  m.ffn_hidden = i64("/model/ffn_hidden");
  m.dropout = f64("/model/dropout");
  m.activation = str("/model/activation");
  m.positional = str("/model/positional");
  m.max_len = i64("/model/max_len");
  m.attention = str("/model/attention/kind");
  m.feature_map = str("/model/attention/feature_map");
  m.features = i64("/model/attention/features");
  m.redraw = i64("/model/attention/redraw");
  m.attention_eps = f64("/model/attention/eps");
  m.spe.realizations = i64("/model/spe/realizations");
  m.spe.sines = i64("/model/spe/sines");
  m.spe.kernel_size = i64("/model/spe/kernel_size");
  m.spe.ndim = i64("/model/spe/ndim");
  m.spe.gated = flag("/model/spe/gated");
  m.spe.share_across_layers = flag("/model/spe/share_across_layers");
  m.pooling = str("/model/pooling");
  m.tie_embeddings = flag("/model/tie_embeddings");

  TrainConfig& r = c.train;
  r.steps = i64("/train/steps");
  r.batch_size = i64("/train/batch_size");
  r.optimizer = str("/train/optimizer");
  r.lr = f64("/train/lr");
  r.min_lr = f64("/train/min_lr");
  r.schedule = str("/train/schedule");
  r.warmup = i64("/train/warmup");
  r.weight_decay = f64("/train/weight_decay");
  r.beta1 = f64("/train/beta1");
  r.beta2 = f64("/train/beta2");
  r.eps = f64("/train/eps");
  r.momentum = f64("/train/momentum");
  r.nesterov = flag("/train/nesterov");
  r.grad_clip = f64("/train/grad_clip");
  r.eval_every = i64("/train/eval_every");
  r.log_every = i64("/train/log_every");
  r.checkpoint_every = i64("/train/checkpoint_every");
  r.seed = static_cast<uint64_t>(i64("/train/seed"));
  r.threads = static_cast<int>(i64("/train/threads"));
  r.on_nonfinite = str("/train/on_nonfinite");
  return c;
}

}  // namespace spear::train
