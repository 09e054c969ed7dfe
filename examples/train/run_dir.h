// A run directory: the files of one training run, and the protocol that keeps its checkpoint
// consistent whatever moment the process dies at.
//
//   config.json            the resolved config
//   metrics.jsonl          one JSON object per logged step and per evaluation (metrics.h)
//   model.safetensors      model.state_dict() at the checkpoint's step
//   optimizer.safetensors  the optimiser's state at that step
//   trainer_state.json     the step, the random generators' states, the counters
//
// A checkpoint is three files, and no rename replaces three files at once. So a checkpoint is
// committed in steps, each of which leaves something a reader can make sense of:
//
//   1. write model.safetensors.next and optimizer.safetensors.next (each atomically: a temporary
//      file renamed into place), their metadata saying which step they hold;
//   2. write trainer_state.json atomically: THE COMMIT POINT. From here on, step s is the
//      checkpoint;
//   3. rename the two .next files over model.safetensors and optimizer.safetensors.
//
// load() reads trainer_state.json's step s and, for each of the two files, finishes or discards
// what a crash interrupted: a .next file holding step s was committed (step 2 happened), so it
// is renamed into place; a .next file holding any other step was not, so it is deleted. After
// that both files must hold step s. A SIGKILL at any moment thus leaves either the old
// checkpoint or the new one, never a mix.
#pragma once
#include <cstdint>
#include <string>
#include <utility>

#include "examples/train/config.h"
#include "tensor/safetensors.h"

namespace spear::train {

// trainer_state.json's format; load() refuses any other.
inline constexpr int64_t kFormatVersion = 1;

struct Checkpoint {
  int64_t step = 0;
  NamedTensors model;      // model.state_dict()
  NamedTensors optimizer;  // the optimiser's state_dict()
  Json state;  // what the trainer needs besides tensors; trainer_state.json adds format_version
               // and step in front
};

class RunDir {
 public:
  explicit RunDir(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }

  // Makes the directory (and its parents) for a new run. Throws ConfigError if it already holds
  // a run (a config.json), IOError if it cannot be made.
  void create() const;
  // config.json, written atomically / read back.
  void write_config(const Json& config) const;
  Json read_config() const;

  // Commits `checkpoint` (the protocol above). model.safetensors' metadata records the format
  // ("pt"), the spear version, the step and `config`, so the file explains itself in PyTorch.
  void save(const Checkpoint& checkpoint, const Json& config) const;
  // The last committed checkpoint, after finishing or discarding an interrupted commit and
  // removing temporary files of interrupted writes. Throws IOError naming the file and the
  // problem (no checkpoint, bad JSON, wrong format_version, files at different steps, ...).
  Checkpoint load() const;

 private:
  std::string dir_;
};

}  // namespace spear::train
