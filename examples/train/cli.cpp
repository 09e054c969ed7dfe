#include "examples/train/cli.h"

#include <filesystem>
#include <sstream>

#include "examples/train/run_dir.h"

namespace spear::train {
namespace {

// The flags that stand for a config key.
const std::vector<std::pair<std::string, std::string>> kKeyFlags = {
    {"--steps", "train.steps"}, {"--threads", "train.threads"}, {"--seed", "train.seed"}};

std::string default_of(const std::string& path) {
  for (const ConfigKey& key : config_keys())
    if (key.path == path) return key.default_value.dump();
  return "";
}

}  // namespace

std::vector<Flag> parse_flags(const std::vector<std::string>& args, bool& help) {
  std::vector<Flag> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    if (flag == "--help" || flag == "-h") {
      help = true;
      continue;
    }
    SPEAR_CHECK_T(ConfigError, flag.compare(0, 2, "--") == 0, "unexpected argument '", flag,
                  "' (see --help)");
    // --flag=value is --flag value.
    const size_t eq = flag.find('=');
    if (eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else {
      SPEAR_CHECK_T(ConfigError, i + 1 < args.size(), flag, " needs a value (see --help)");
      value = args[++i];
    }
    flags.push_back({flag, value});
  }
  return flags;
}

CommandLine parse_command_line(const std::vector<std::string>& args) {
  CommandLine cli;
  for (const auto& [flag, value] : parse_flags(args, cli.help)) {
    if (flag == "--config") {
      cli.config_path = value;
    } else if (flag == "--out") {
      cli.out_dir = value;
    } else if (flag == "--resume") {
      cli.resume_dir = value;
    } else if (flag == "--set") {
      cli.overrides.push_back(parse_override(value));
    } else {
      bool known = false;
      for (const auto& [name, path] : kKeyFlags)
        if (flag == name) {
          cli.overrides.push_back(parse_override(path + "=" + value));
          known = true;
        }
      SPEAR_CHECK_T(ConfigError, known, "unknown flag ", flag, " (see --help)");
    }
  }
  return cli;
}

TrainOptions train_options(const CommandLine& cli) {
  TrainOptions options;
  options.resume = !cli.resume_dir.empty();
  SPEAR_CHECK_T(ConfigError, options.resume || !cli.config_path.empty(),
                "--config FILE is required (or --resume DIR; see --help)");
  SPEAR_CHECK_T(ConfigError,
                !options.resume || cli.out_dir.empty() || cli.out_dir == cli.resume_dir, "--out ",
                cli.out_dir, " and --resume ", cli.resume_dir,
                " name different directories; a resumed run continues in its own");
  if (options.resume)
    options.dir = cli.resume_dir;
  else if (!cli.out_dir.empty())
    options.dir = cli.out_dir;
  else
    options.dir = "runs/" + std::filesystem::path(cli.config_path).stem().string();
  const Json user = cli.config_path.empty() ? RunDir(options.dir).read_config()
                                            : load_config_file(cli.config_path);
  options.config = resolve_config(user, cli.overrides);
  return options;
}

std::string usage() {
  std::ostringstream os;
  os << "usage: spear-train --config FILE.json [--out DIR] [--steps N] [--threads N] [--seed S]\n"
        "                   [--resume DIR] [--set key.path=value ...]\n"
        "\n"
        "Trains a transformer on a synthetic task. The run directory receives config.json (the\n"
        "resolved config), metrics.jsonl, model.safetensors, optimizer.safetensors and\n"
        "trainer_state.json; progress goes to stderr, one JSON summary line to stdout.\n"
        "\n"
        "  --config FILE    the JSON config; keys left out take their defaults (below)\n"
        "  --out DIR        the run directory (default: runs/<FILE without .json>)\n"
        "  --steps N        = --set train.steps=N (default: "
     << default_of("train.steps")
     << ")\n"
        "  --threads N      = --set train.threads=N (default: "
     << default_of("train.threads")
     << ": SPEAR_NUM_THREADS, else every core)\n"
        "  --seed S         = --set train.seed=S (default: "
     << default_of("train.seed")
     << ")\n"
        "  --resume DIR     continue the run in DIR from its last checkpoint (default: a new\n"
        "                   run); its config.json is the config unless --config is given, and\n"
        "                   only train.steps and train.threads may differ from it\n"
        "  --set KEY=VALUE  set a config key; VALUE is read as JSON when it parses (64, 1e-3,\n"
        "                   true, \"64\") and as a string otherwise (rope); repeatable\n"
        "  --help           this text\n"
        "\n"
        "Later flags win. Exit status: 0 done, 1 runtime error (I/O, non-finite loss),\n"
        "2 bad command line or config.\n"
        "\n"
        "Config keys and their defaults (docs/config.md explains each):\n";
  for (const ConfigKey& key : config_keys()) {
    std::string line = "  " + key.path + " = " + key.default_value.dump();
    line.resize(std::max<size_t>(line.size() + 1, 38), ' ');
    os << line << key.help;
    for (size_t i = 0; i < key.choices.size(); ++i) os << (i ? "|" : ": ") << key.choices[i];
    os << "\n";
  }
  return os.str();
}

std::string one_line(const std::string& message) {
  std::string line;
  for (size_t i = 0; i < message.size(); ++i) {
    if (message[i] != '\n') {
      line += message[i];
      continue;
    }
    line += ' ';
    while (i + 1 < message.size() && message[i + 1] == ' ') ++i;
  }
  return line;
}

}  // namespace spear::train
