// spear-eval: evaluates, or samples from, a trained run (see `spear-eval --help` and
// docs/tasks.md).
//
//   build/bin/spear-eval --run runs/extrapolation --length 256
//   build/bin/spear-eval --run runs/chars --generate 300 --prompt "The " --temperature 0.8
//
// Exit status: 0 done, 1 runtime error, 2 bad command line or a request that does not fit the
// run. Every error is one line on stderr.
#include <iostream>
#include <string>
#include <vector>

#include "examples/train/cli.h"
#include "examples/train/spear_eval.h"

namespace {

int fail(const std::exception& e, int status) {
  std::cerr << "spear-eval: " << spear::train::one_line(e.what()) << "\n";
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace spear::train;
  try {
    const EvalCommandLine cli =
        parse_eval_command_line(std::vector<std::string>(argv + 1, argv + argc));
    if (cli.help) {
      std::cout << eval_usage();
      return 0;
    }
    run_eval(cli, std::cout);
    return 0;
  } catch (const spear::ConfigError& e) {
    return fail(e, 2);
  } catch (const std::exception& e) {
    return fail(e, 1);
  }
}
