// What every spear-bench subcommand shares: timing, and one output line per measurement (JSON
// with --json, readable text otherwise).
#pragma once
#include <chrono>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace spear::bench {

struct Options {
  bool json = false;
  std::string only;               // attention, spe: run only this kind (empty: all)
  std::vector<std::string> rest;  // train: its own flags, parsed by bench_train
};

// Best wall time in seconds of fn over repetitions totalling at least `min_total` s (and at least
// `min_reps`): the least disturbed run. `before`, when given, runs untimed ahead of each
// repetition.
inline double best_seconds(const std::function<void()>& fn, double min_total = 0.5,
                           int min_reps = 3, const std::function<void()>& before = nullptr) {
  using Clock = std::chrono::steady_clock;
  fn();  // warm up caches and thread pools
  double best = 1e30, total = 0;
  for (int rep = 0; rep < min_reps || total < min_total; ++rep) {
    if (before) before();
    auto t0 = Clock::now();
    fn();
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
  }
  return best;
}

// Empties the CPU caches of whatever was in them by reading a buffer far larger than the
// last-level cache (written once, so the lines it leaves are clean and cost no write-back in the
// timed run). Timing a kernel after it shows the kernel as it runs inside a model, where the
// layers before it have pushed its inputs out of cache; timed warm, run after run on the same
// inputs, small inputs stay in cache between runs.
inline volatile char flush_sink = 0;  // where the reads go, so they are not optimised away
inline void flush_caches() {
  static const std::vector<char> buffer(size_t(256) << 20, 1);
  char x = 0;
  for (size_t i = 0; i < buffer.size(); i += 64) x = static_cast<char>(x ^ buffer[i]);
  flush_sink = x;
}

// Microseconds per call of fn, best of several batches of `calls` calls.
inline double micros_per_call(int calls, const std::function<void()>& fn) {
  return best_seconds([&] {
           for (int i = 0; i < calls; ++i) fn();
         }) /
         calls * 1e6;
}

inline double round2(double v) {
  return std::round(v * 100) / 100;
}

// Prints `row` as one JSON object, or as "key value  key value ..." text.
inline void emit(const Options& opt, const nlohmann::ordered_json& row) {
  if (opt.json) {
    std::cout << row.dump() << std::endl;
    return;
  }
  std::string line;
  for (const auto& [key, value] : row.items())
    line += key + " " + (value.is_string() ? value.get<std::string>() : value.dump()) + "  ";
  std::cout << line << std::endl;
}

void bench_matmul(const Options& opt);
void bench_elementwise(const Options& opt);
void bench_ops(const Options& opt);
void bench_attention(const Options& opt);
void bench_spe(const Options& opt);
void bench_train(const Options& opt);

}  // namespace spear::bench
