// spear-train: trains a transformer from a JSON config (see `spear-train --help`,
// docs/training.md and docs/config.md), in one process or, under mpirun, on several
// (docs/distributed.md).
//
//   build/bin/spear-train --config examples/configs/majority_classifier.json --out runs/maj
//   mpirun -np 2 build/bin/spear-train --config examples/configs/listops.json --threads 1
//
// Exit status: 0 done, 1 runtime error, 2 bad command line or config. Every error is one line on
// stderr; on several ranks it names the rank, and the failing rank stops the others.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "examples/train/cli.h"
#include "examples/train/distributed.h"
#include "examples/train/progress.h"

namespace {

using spear::train::Communicator;

int fail(const std::exception& e, int status, Communicator* comm) {
  const bool ranks = comm && comm->size() > 1;
  // One write, so that the lines of several ranks do not interleave.
  std::cerr << "spear-train: " + (ranks ? "rank " + std::to_string(comm->rank()) + ": " : "") +
                   spear::train::one_line(e.what()) + "\n";
  if (ranks) comm->abort(status);  // the others would wait for this rank until they time out
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace spear::train;
  std::unique_ptr<Communicator> comm;
  try {
    comm = std::make_unique<Communicator>(/*join_job=*/true);
    const CommandLine cli = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
    if (cli.help) {
      if (comm->is_root()) std::cout << usage();
      return 0;
    }
    TrainOptions options = train_options(cli);
    options.comm = comm.get();
    options.live = comm->is_root() && stderr_is_terminal();
    std::ostream quiet(nullptr);  // the other ranks' progress: rank 0 shows the same
    const Json summary = train(options, comm->is_root() ? std::cerr : quiet);
    if (comm->is_root()) std::cout << summary.dump() << std::endl;
    return 0;
  } catch (const spear::ConfigError& e) {
    return fail(e, 2, comm.get());
  } catch (const std::exception& e) {
    return fail(e, 1, comm.get());
  }
}
