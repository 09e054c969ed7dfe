// metrics.jsonl: a run's machine-readable log, one JSON object per line (DESIGN §6).
//
//   {"step": 10, "loss": 2.07, "lr": 1e-4, "grad_norm": 0.9, "tokens_per_s": 51200, "elapsed_s":
//   0.4}
//   {"step": 200, "split": "val", "loss": 0.31, "accuracy": 0.91}
//
// Lines are appended and flushed one at a time, so a crash can only tear the last one.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>

#include "examples/train/config.h"

namespace spear::train {

class MetricsLog {
 public:
  // keep_through_step < 0: a new run, the file starts empty. Otherwise a resumed run: the lines
  // of steps <= keep_through_step are kept (rewritten atomically) and a torn or later line is
  // dropped, so the file reads as if the run had stopped right after that checkpoint.
  MetricsLog(const std::string& path, int64_t keep_through_step);
  void write(const Json& line);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace spear::train
