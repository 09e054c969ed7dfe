// The command line of spear-train (DESIGN §6):
//
//   spear-train --config FILE.json [--out DIR] [--steps N] [--threads N] [--seed S]
//               [--resume DIR] [--set key.path=value ...]
//
// --steps, --threads and --seed are shorthands for --set train.steps=N etc.; overrides apply in
// command-line order, after the config file.
#pragma once
#include <string>
#include <vector>

#include "examples/train/config.h"
#include "examples/train/trainer.h"

namespace spear::train {

struct CommandLine {
  std::string config_path;  // --config (empty: none)
  std::string out_dir;      // --out (empty: none)
  std::string resume_dir;   // --resume (empty: a new run)
  std::vector<Override> overrides;
  bool help = false;
};

// argv without the program name. Throws ConfigError on an unknown flag, a missing value, or a
// malformed --set.
CommandLine parse_command_line(const std::vector<std::string>& args);

// The command line as (flag, value) pairs, "--flag value" and "--flag=value" alike; "--help" and
// "-h" set `help` instead. Throws ConfigError for a stray argument or a flag without a value.
struct Flag {
  std::string name, value;
};
std::vector<Flag> parse_flags(const std::vector<std::string>& args, bool& help);

// What to train: the config file (or, when resuming without one, the run's config.json) with the
// overrides, resolved; the run directory (--resume DIR, else --out, else runs/<config name>).
TrainOptions train_options(const CommandLine& cli);

// The --help text: every flag with its default, then every config key with its default.
std::string usage();

// An error message on one line, as spear-train and spear-eval print them: some messages list
// several problems on indented lines.
std::string one_line(const std::string& message);

}  // namespace spear::train
