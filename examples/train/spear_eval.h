// spear-eval: evaluates, or samples from, the model of a spear-train run (docs/tasks.md):
//
//   spear-eval --run DIR [--split val|test] [--length L] [--batches K] [--out FILE]
//   spear-eval --run DIR --generate N [--prompt TEXT] [--temperature T] [--top-k K] [--top-p P]
//              [--seed S]
//
// It reads DIR/config.json and DIR/model.safetensors (the last checkpoint; never the files a
// running spear-train may be writing). For a classifier it prints the loss and accuracy on the
// split. For a language model it writes the loss at every position, at task length L (default 4
// times the trained one), as JSON lines: the paper's "loss beyond the training length" curve.
#pragma once
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "examples/train/config.h"
#include "nn/sampling.h"

namespace spear::train {

struct EvalCommandLine {
  std::string run_dir;
  std::string split = "test";
  int64_t length = 0;    // task.max_len to evaluate at (0: 4 x the trained one)
  int64_t batches = 0;   // evaluate this many batches of the split (0: all)
  std::string out;       // the per-position JSONL (empty: DIR/positions_<split>_<length>.jsonl)
  int64_t generate = 0;  // > 0: sample this many tokens instead of evaluating
  std::optional<std::string> prompt;
  nn::SamplingOptions sampling;
  bool help = false;
};

// argv without the program name. Throws ConfigError on an unknown flag, a missing or bad value,
// or flags that do not go together.
EvalCommandLine parse_eval_command_line(const std::vector<std::string>& args);

std::string eval_usage();

// Does what `cli` asks. The result goes to `out`: one JSON line (a classifier's metrics, or the
// per-position summary, the positions themselves going to the JSONL file), or the generated text
// or tokens. Throws ConfigError for requests that do not fit the run (--length for a classifier,
// a prompt token outside the vocabulary), IOError for an unreadable run.
void run_eval(const EvalCommandLine& cli, std::ostream& out);

}  // namespace spear::train
