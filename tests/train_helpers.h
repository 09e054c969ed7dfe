// Shared by test_train.cpp and test_train_run.cpp: temporary run directories, tiny configs, and
// in-process training.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "examples/train/config.h"
#include "examples/train/trainer.h"

namespace spear::train::testing {

// A fresh directory, removed with everything in it at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("spear_test_train_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline Json with_overrides(const Json& user, const std::vector<std::string>& overrides) {
  std::vector<Override> parsed;
  for (const std::string& o : overrides) parsed.push_back(parse_override(o));
  return resolve_config(user, parsed);
}

// A classifier small enough to train 40 steps in a blink; dropout on, so resuming must restore
// the dropout generator too.
inline Json tiny_config(const std::vector<std::string>& overrides = {}) {
  return with_overrides(Json::parse(R"({
    "task": {"name": "majority", "vocab": 4, "min_len": 3, "max_len": 10,
             "train_size": 200, "val_size": 50, "test_size": 50},
    "model": {"dim": 16, "heads": 2, "layers": 1, "dropout": 0.1},
    "train": {"steps": 40, "batch_size": 8, "eval_every": 10, "warmup": 5, "log_every": 5,
              "checkpoint_every": 10, "threads": 2}})"),
                        overrides);
}

// The language-model counterpart: tied embeddings and RoPE.
inline Json tiny_lm_config(const std::vector<std::string>& overrides = {}) {
  std::vector<std::string> all = {"task.name=reverse", "task.max_len=6", "model.positional=rope",
                                  "model.tie_embeddings=true"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  return tiny_config(all);
}

// Trains in this process; the progress text is discarded.
inline Json run(const Json& config, const std::string& dir, bool resume = false,
                int64_t stop_after = -1) {
  TrainOptions options;
  options.config = config;
  options.dir = dir;
  options.resume = resume;
  options.stop_after = stop_after;
  std::ostringstream log;
  return train(options, log);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace spear::train::testing
