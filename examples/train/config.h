// The training configuration: one table of keys with their types, defaults and documentation,
// and the path from a user's JSON file plus command-line overrides to a validated config.
//
//   {"task": {"name": "majority"}, "model": {"dim": 32}, "train": {"steps": 500}}
//
// Every key has a default (config_keys()), so a config file names only what differs. Unknown keys
// and wrong types are errors naming the key path; the resolved config (every key filled in) is
// what a run directory records, and with the seed it fixes the run.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spear::train {

// Keys keep the order of the table when written back (config.json reads like the docs).
using Json = nlohmann::ordered_json;

struct ConfigKey {
  std::string path;    // "model.attention.kind"
  Json default_value;  // its JSON type is the key's type: integer, number, boolean or string
  std::string help;    // one line, for --help and docs/config.md
  std::vector<std::string> choices = {};  // strings: the allowed values (empty: any)
  double min = -std::numeric_limits<double>::infinity();  // numbers: the allowed range
  double max = std::numeric_limits<double>::infinity();
  bool max_open = false;  // max itself excluded: [min, max)
};

// Every key, in the order of docs/config.md.
const std::vector<ConfigKey>& config_keys();
// The config with every key at its default.
Json default_config();

// A `--set key.path=value` (or a flag such as --steps) before validation.
struct Override {
  std::string path;
  Json value;
};
// "key.path=value": the value is JSON when it parses as JSON (64, 1e-3, true, "64", {...}) and
// a string otherwise (rope). Throws ConfigError on a missing '=' or an empty key.
Override parse_override(const std::string& assignment);

// Reads a JSON config file; throws ConfigError naming the file on a missing file or bad JSON.
Json load_config_file(const std::string& path);

// `user` (a possibly partial config) with the overrides applied in order, checked key by key
// against the table and completed with the defaults. Throws ConfigError naming the first bad key:
// "config: unknown key model.dimm", "config: model.dim must be an integer, got \"64\"".
Json resolve_config(Json user, const std::vector<Override>& overrides = {});

// The value at a dotted path ("model.attention.kind"); null when there is none.
Json config_at(const Json& config, const std::string& path);

// The first key, in table order, whose value differs between two resolved configs, skipping the
// keys in `ignore`; empty when they agree.
std::string first_difference(const Json& a, const Json& b, const std::vector<std::string>& ignore);

// ---- The resolved config as typed values ----

struct TaskConfig {
  std::string name, path;
  int64_t vocab, min_len, max_len, train_size, val_size, test_size;
  uint64_t seed;
  int64_t max_depth, max_args;  // listops
  int64_t levels, downsample;   // fashion_mnist
  int64_t period;               // extrapolation
  double noise;
};

struct SpeConfig {
  int64_t realizations, sines, kernel_size, ndim;
  bool gated, share_across_layers;
};

struct ModelConfig {
  int64_t dim, heads, layers, ffn_hidden;
  double dropout;
  std::string activation, positional;
  int64_t max_len;
  std::string attention;    // model.attention.kind
  std::string feature_map;  // model.attention.feature_map
  int64_t features, redraw;
  double attention_eps;
  SpeConfig spe;
  std::string pooling;
  bool tie_embeddings;
};

struct TrainConfig {
  int64_t steps, batch_size;
  std::string optimizer;
  double lr, min_lr;
  std::string schedule;
  int64_t warmup;
  double weight_decay, beta1, beta2, eps, momentum;
  bool nesterov;
  double grad_clip;
  int64_t eval_every, log_every, checkpoint_every;
  uint64_t seed;
  int threads;
  std::string on_nonfinite;
};

struct Config {
  TaskConfig task;
  ModelConfig model;
  TrainConfig train;
};

// `resolved` must come from resolve_config.
Config config_from_json(const Json& resolved);

}  // namespace spear::train
