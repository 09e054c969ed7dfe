// The training loop: a task, a model and an optimiser from a resolved config, trained step by
// step with logging, evaluation and checkpoints into a run directory (run_dir.h).
//
// Step s (1-based) trains on the batch Task::train_batch(train.seed, s) at the learning rate
// lr_at(schedule, s - 1), then, in this order: a metrics line every train.log_every steps, a
// validation every train.eval_every steps, the test split after the last step, a checkpoint
// every train.checkpoint_every steps (and at step 0 and after the last step). Everything a step
// depends on is either a function of (config, s) or saved in the checkpoint (weights, optimiser
// state, generator states, counters), so a run resumed from step s continues exactly as if it
// had never stopped: same batches, same dropout masks, bit-identical losses.
//
// On P ranks (options.comm, distributed.h) every rank draws the same batch and trains on its
// slice of the rows; the gradients are summed over the ranks, each weighted by its share of the
// batch's scored targets, so the loss is the mean over the whole batch and P ranks follow one
// process's loss curve up to float rounding. Only rank 0 writes the run directory; on --resume
// every rank loads it. Each rank draws its own dropout masks.
#pragma once
#include <ostream>
#include <string>

#include "examples/train/config.h"
#include "tensor/error.h"

namespace spear::train {

// A NaN or Inf loss or gradient with train.on_nonfinite = "stop".
struct NonFiniteError : Error {
  using Error::Error;
};

class Communicator;

struct TrainOptions {
  Json config;          // resolved (resolve_config)
  std::string dir;      // the run directory
  bool resume = false;  // continue the run in `dir` from its last checkpoint
  bool live = false;    // a live progress bar rather than plain lines
  // Stop after checkpointing this step, as an interrupted run would (-1: run to the end). A job
  // with a time limit, or a test of --resume, cuts a run in two this way without changing its
  // config.
  int64_t stop_after = -1;
  Communicator* comm = nullptr;  // the ranks of a data-parallel run; null: this process alone
};

// Trains and returns the summary: {"steps", "final_loss", "elapsed_s", "tokens_per_s", "params",
// "chance", "val": {...}, "test": {...}, ...}, plus "ranks" and "comm_share" (the fraction of the
// time rank 0 spent communicating) on several ranks. The header, progress and evaluation lines go
// to `log`. Throws ConfigError for a config that does not fit (a train.batch_size that is no
// multiple of the number of ranks; on resume, a config that differs from the run's in anything
// but train.steps and train.threads), IOError for unreadable checkpoints, DistributedError when
// the ranks fail to communicate, NonFiniteError as above; a failure never leaves a partial
// checkpoint behind.
Json train(const TrainOptions& options, std::ostream& log);

}  // namespace spear::train
