#include "examples/train/run_dir.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "tensor/atomic_file.h"

namespace spear::train {
namespace fs = std::filesystem;
namespace {

const char* const kModel = "model.safetensors";
const char* const kOptimizer = "optimizer.safetensors";
const char* const kState = "trainer_state.json";
const char* const kConfig = "config.json";

Json read_json(const std::string& path) {
  std::ifstream in(path);
  SPEAR_CHECK_T(IOError, in.is_open(), path, ": cannot open: ", std::strerror(errno));
  Json j = Json::parse(in, nullptr, /*allow_exceptions=*/false);
  SPEAR_CHECK_T(IOError, !j.is_discarded() && j.is_object(), path,
                ": not a JSON object (the file is damaged)");
  return j;
}

void write_json(const std::string& path, const Json& j) {
  write_file_atomically("run dir", path, [&](std::ostream& out) { out << j.dump(2) << "\n"; });
}

void rename_file(const std::string& from, const std::string& to) {
  SPEAR_CHECK_T(IOError, std::rename(from.c_str(), to.c_str()) == 0, "checkpoint: cannot rename ",
                from, " to ", to, ": ", std::strerror(errno));
}

// The step a checkpoint file holds, from its metadata.
int64_t step_of(const SafetensorsFile& file, const std::string& path) {
  auto it = file.metadata.find("step");
  SPEAR_CHECK_T(IOError, it != file.metadata.end(), path, ": no \"step\" in its metadata");
  try {
    size_t used = 0;
    const int64_t step = std::stoll(it->second, &used);
    if (used == it->second.size() && step >= 0) return step;
  } catch (const std::exception&) {
  }
  throw IOError(str_cat(path, ": metadata step \"", it->second, "\" is not a step number"));
}

// Step 3 of the protocol for one file, redone or undone: see run_dir.h.
void finish_commit(const std::string& path, int64_t committed) {
  const std::string next = path + ".next";
  if (!fs::exists(next)) return;
  if (step_of(load_safetensors(next), next) == committed)
    rename_file(next, path);
  else
    fs::remove(next);
}

// write_file_atomically writes "<file>.tmp.<pid>"; a process killed mid-write leaves one behind.
void remove_temporary_files(const std::string& dir) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp.") != std::string::npos)
      fs::remove(entry.path());
}

}  // namespace

void RunDir::create() const {
  SPEAR_CHECK_T(ConfigError, !fs::exists(file(kConfig)), dir_,
                " already holds a run; continue it with --resume ", dir_,
                " or choose another --out");
  std::error_code error;
  fs::create_directories(dir_, error);
  SPEAR_CHECK_T(IOError, !error, "cannot create the run directory ", dir_, ": ", error.message());
}

void RunDir::write_config(const Json& config) const {
  write_json(file(kConfig), config);
}

Json RunDir::read_config() const {
  SPEAR_CHECK_T(IOError, fs::exists(file(kConfig)), dir_, " is not a run directory (no ", kConfig,
                ")");
  return read_json(file(kConfig));
}

void RunDir::save(const Checkpoint& checkpoint, const Json& config) const {
  const std::string step = std::to_string(checkpoint.step);
  save_safetensors(file(kModel) + ".next", checkpoint.model,
                   {{"format", "pt"},
                    {"spear_version", SPEAR_VERSION_STRING},
                    {"step", step},
                    {"config", config.dump()}});
  save_safetensors(file(kOptimizer) + ".next", checkpoint.optimizer, {{"step", step}});
  Json record = {{"format_version", kFormatVersion}, {"step", checkpoint.step}};
  record.update(checkpoint.state);
  write_json(file(kState), record);  // the commit point
  rename_file(file(kModel) + ".next", file(kModel));
  rename_file(file(kOptimizer) + ".next", file(kOptimizer));
}

Checkpoint RunDir::load() const {
  const std::string state_path = file(kState);
  SPEAR_CHECK_T(IOError, fs::exists(state_path), dir_, " holds no checkpoint (no ", kState, ")");
  Checkpoint checkpoint;
  checkpoint.state = read_json(state_path);
  const Json version = checkpoint.state.value("format_version", Json());
  SPEAR_CHECK_T(IOError, version == kFormatVersion, state_path, ": format_version is ",
                version.dump(), ", this spear-train reads ", kFormatVersion);
  const Json step = checkpoint.state.value("step", Json());
  SPEAR_CHECK_T(IOError, step.is_number_integer() && step.get<int64_t>() >= 0, state_path,
                ": \"step\" must be an integer >= 0, got ", step.dump());
  checkpoint.step = step.get<int64_t>();

  remove_temporary_files(dir_);
  const std::pair<const char*, NamedTensors*> files[] = {{kModel, &checkpoint.model},
                                                         {kOptimizer, &checkpoint.optimizer}};
  for (const auto& [name, tensors] : files) {
    const std::string path = file(name);
    finish_commit(path, checkpoint.step);
    SPEAR_CHECK_T(IOError, fs::exists(path), path, " is missing (", kState, " is at step ",
                  checkpoint.step, ")");
    SafetensorsFile loaded = load_safetensors(path);
    const int64_t held = step_of(loaded, path);
    SPEAR_CHECK_T(IOError, held == checkpoint.step, path, " holds step ", held, " but ", kState,
                  " is at step ", checkpoint.step, ": the checkpoint is inconsistent");
    *tensors = std::move(loaded.tensors);
  }
  return checkpoint;
}

}  // namespace spear::train
