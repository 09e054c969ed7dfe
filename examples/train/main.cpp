// spear-train: trains a transformer from a JSON config (see `spear-train --help`,
// docs/training.md and docs/config.md).
//
//   build/bin/spear-train --config examples/configs/majority_classifier.json --out runs/maj
//
// Exit status: 0 done, 1 runtime error, 2 bad command line or config. Every error is one line on
// stderr.
#include <iostream>
#include <string>
#include <vector>

#include "examples/train/cli.h"
#include "examples/train/progress.h"

namespace {

int fail(const std::exception& e, int status) {
  std::cerr << "spear-train: " << spear::train::one_line(e.what()) << "\n";
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace spear::train;
  try {
    const CommandLine cli = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
    if (cli.help) {
      std::cout << usage();
      return 0;
    }
    TrainOptions options = train_options(cli);
    options.live = stderr_is_terminal();
    std::cout << train(options, std::cerr).dump() << std::endl;
    return 0;
  } catch (const spear::ConfigError& e) {
    return fail(e, 2);
  } catch (const std::exception& e) {
    return fail(e, 1);
  }
}
