// What a run shows while it trains, on stderr: a live bar redrawn in place when stderr is a
// terminal, otherwise (a log file, CI) one plain line every train.log_every steps.
//
//   step 120/1000 [###.......] loss 1.2345 | lr 1.00e-03 | 51.2k tok/s | ETA 0:42
#pragma once
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace spear::train {

bool stderr_is_terminal();

// x with `digits` digits after the point: format_fixed(0.12345, 3) == "0.123".
std::string format_fixed(double x, int digits);

class Progress {
 public:
  // Steps first_step + 1 .. total are to come.
  Progress(std::ostream& out, bool live, int64_t first_step, int64_t total, int64_t log_every);
  // After each step, with the mean loss since the last log line.
  void step(int64_t step, double loss, double lr, double tokens_per_s);
  // A line of its own (evaluation results, messages): clears a live bar first.
  void line(const std::string& text);
  // Ends a live bar's line.
  void finish();

 private:
  std::string eta(int64_t step) const;

  std::ostream& out_;
  bool live_;
  int64_t first_step_, total_, log_every_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool bar_shown_ = false;
};

}  // namespace spear::train
