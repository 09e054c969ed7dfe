// spear-train on two ranks under mpirun (docs/distributed.md): the same loss curve as one
// process, bit-identical resume, and failures that end the job with a message instead of a hang,
// leaving a checkpoint that loads.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "examples/train/run_dir.h"
#include "train_helpers.h"

using namespace spear;
using namespace spear::train;
using namespace spear::train::testing;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// `mpirun -n N spear-train`. Open MPI refuses to run as root (CI does) and to start more ranks
// than there are cores unless told to; other MPIs ignore these variables.
std::string mpirun(int ranks) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
  return str_cat(SPEAR_MPIEXEC, " ", SPEAR_MPIEXEC_NUMPROC_FLAG, " ", ranks, " ", SPEAR_TRAIN_EXE);
}

struct Process {
  int status;
  std::string out, err;
};

// Runs a shell command and collects its exit status and output.
Process run(const std::string& command, const TempDir& tmp) {
  const std::string out = tmp / "stdout", err = tmp / "stderr";
  const int raw = std::system((command + " >" + out + " 2>" + err).c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_file(out), read_file(err)};
}

// Starts a shell command in the background; returns its pid (the command's own, thanks to exec).
pid_t spawn(const std::string& command) {
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// The exit status of `pid` (128 + signal if a signal ended it), or -1 if it is still running
// after `seconds`: then it is stopped (mpirun stops its ranks on SIGTERM).
int wait_for(pid_t pid, int seconds) {
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(seconds);
  int raw = 0;
  while (waitpid(pid, &raw, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      kill(pid, SIGTERM);
      std::this_thread::sleep_for(std::chrono::seconds(5));
      kill(pid, SIGKILL);
      waitpid(pid, &raw, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

// The step of the run's last checkpoint, or -1 if there is none yet.
int64_t checkpoint_step(const std::string& dir) {
  try {
    return Json::parse(read_file(dir + "/trainer_state.json"))["step"].get<int64_t>();
  } catch (const std::exception&) {
    return -1;
  }
}

// Waits until the run in `dir` has checkpointed step `step` or later (at most a minute).
bool wait_for_checkpoint(const std::string& dir, int64_t step) {
  const Clock::time_point deadline = Clock::now() + std::chrono::minutes(1);
  while (checkpoint_step(dir) < step) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::string read_proc(const fs::path& file) {
  try {
    std::string text = read_file(file.string());
    for (char& ch : text)
      if (ch == '\0') ch = ' ';
    return text + " ";
  } catch (const std::exception&) {
    return "";  // the process is gone, or not ours
  }
}

// The pid of rank `rank` of the spear-train job training into `dir`, found in /proc by its
// command line and the rank its launcher gave it; 0 if there is none.
pid_t rank_pid(const std::string& dir, int rank) {
  const std::string ompi = str_cat(" OMPI_COMM_WORLD_RANK=", rank, " "),
                    pmi = str_cat(" PMI_RANK=", rank, " ");
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string command = read_proc(entry.path() / "cmdline");
    if (command.find(SPEAR_TRAIN_EXE) != 0 || command.find(" " + dir + " ") == std::string::npos)
      continue;
    const std::string environment = " " + read_proc(entry.path() / "environ");
    if (environment.find(ompi) != std::string::npos || environment.find(pmi) != std::string::npos)
      return static_cast<pid_t>(std::stol(name));
  }
  return 0;
}

std::vector<Json> metrics_lines(const std::string& dir) {
  std::vector<Json> lines;
  std::istringstream in(read_file(dir + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
  return lines;
}

std::string write_config(const Json& config, const TempDir& tmp) {
  const std::string path = tmp / "config.json";
  write_file(path, config.dump());
  return path;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("distributed run: 2 ranks follow the loss curve of 1 process on the same batches") {
  // A classifier with SPE and FAVOR+ redrawn every step (the draws must be the same on every
  // rank and in one process), and a language model, whose examples score different numbers of
  // targets (so the ranks' gradients weigh differently). No dropout: its masks differ per rank.
  const std::vector<std::string> common = {"model.dropout=0.0", "train.steps=30",
                                           "train.log_every=1", "train.threads=1"};
  std::vector<std::string> spe = common;
  for (const char* o :
       {"model.positional=sine_spe", "model.spe.realizations=8", "model.attention.kind=favor",
        "model.attention.features=8", "model.attention.redraw=1"})
    spe.push_back(o);
  for (const Json& config : {tiny_config(spe), tiny_lm_config(common)}) {
    CAPTURE(config["task"]["name"]);
    TempDir tmp;
    const std::string file = write_config(config, tmp);
    const Process one =
        run(str_cat(SPEAR_TRAIN_EXE, " --config ", file, " --out ", tmp / "one"), tmp);
    REQUIRE(one.status == 0);
    const Process two = run(str_cat(mpirun(2), " --config ", file, " --out ", tmp / "two"), tmp);
    REQUIRE_MESSAGE(two.status == 0, two.err);
    CHECK(Json::parse(two.out)["ranks"] == 2);

    // f32 gradients summed in another order differ in their last bits (~1e-7 relative), and Adam
    // carries that along without growing it much: 6e-8 after 30 steps, 3e-7 after 200 in both
    // configs. 1e-5 leaves a wide margin, yet weighting the ranks' gradients by 1/P instead of
    // by their shares of the scored targets fails it.
    auto close = [](const Json& a, const Json& b) {
      const double x = a.get<double>(), y = b.get<double>();
      return std::abs(x - y) <= 1e-5 * std::max(std::abs(x), std::abs(y));
    };
    const std::vector<Json> a = metrics_lines(tmp / "one"), b = metrics_lines(tmp / "two");
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      CAPTURE(a[i]);
      CAPTURE(b[i]);
      CHECK(a[i]["step"] == b[i]["step"]);
      CHECK(close(a[i]["loss"], b[i]["loss"]));
      if (a[i].contains("split")) {
        CHECK(a[i]["accuracy"] == b[i]["accuracy"]);
        continue;
      }
      CHECK(a[i]["lr"] == b[i]["lr"]);
      CHECK(close(a[i]["grad_norm"], b[i]["grad_norm"]));
      const double share = b[i]["comm_share"].get<double>();
      CHECK((share >= 0 && share <= 1));
    }
  }
}

TEST_CASE("distributed run: resumed on 2 ranks, bit-identical to an uninterrupted run") {
  // With dropout: every rank must get its own dropout generator back.
  TempDir tmp;
  const std::string file = write_config(
      tiny_config({"train.steps=20", "train.schedule=constant", "train.threads=1"}), tmp);
  const std::string whole = tmp / "whole", cut = tmp / "cut";
  REQUIRE(run(str_cat(mpirun(2), " --config ", file, " --out ", whole), tmp).status == 0);
  REQUIRE(run(str_cat(mpirun(2), " --config ", file, " --out ", cut, " --steps 10"), tmp).status ==
          0);
  REQUIRE(run(str_cat(mpirun(2), " --resume ", cut, " --steps 20"), tmp).status == 0);

  // The training lines, without timings (the cut run adds a test evaluation at step 10).
  auto training = [](const std::string& dir) {
    std::vector<std::string> lines;
    for (Json j : metrics_lines(dir)) {
      if (j.contains("split")) continue;
      for (const char* timing : {"tokens_per_s", "elapsed_s", "comm_share"}) j.erase(timing);
      lines.push_back(j.dump());
    }
    return lines;
  };
  CHECK(training(whole) == training(cut));
  CHECK(read_file(whole + "/model.safetensors") == read_file(cut + "/model.safetensors"));
  CHECK(read_file(whole + "/optimizer.safetensors") == read_file(cut + "/optimizer.safetensors"));
}

TEST_CASE("distributed run: a batch that does not split evenly over the ranks is a config error") {
  TempDir tmp;
  const std::string file = write_config(tiny_config({"train.batch_size=7"}), tmp);
  const Process p = run(str_cat(mpirun(2), " --config ", file, " --out ", tmp / "run"), tmp);
  CHECK(p.status == 2);
  CHECK(contains(p.err, "rank 0: config: train.batch_size 7 is no multiple of the 2 ranks"));
}

TEST_CASE("distributed run: a rank that dies or hangs ends the job with a message") {
  // A run far too long to finish; a checkpoint every 5 steps.
  const Json config = tiny_config({"train.steps=1000000", "train.checkpoint_every=5",
                                   "train.eval_every=0", "train.log_every=100", "train.threads=1"});
  struct Failure {
    const char* what;
    int signal;            // sent to rank 1
    const char* timeout;   // SPEAR_MPI_TIMEOUT
    const char* expected;  // in the job's stderr
  };
  for (const Failure& f :
       {Failure{"dies", SIGKILL, "300", "spear-train: rank 0: stopped by SIGTERM"},
        Failure{"hangs", SIGSTOP, "5",
                "spear-train: rank 0: no answer from the other ranks for 5 s"}}) {
    CAPTURE(f.what);
    TempDir tmp;
    const std::string dir = tmp / "run";
    const pid_t job =
        spawn(str_cat("env SPEAR_MPI_TIMEOUT=", f.timeout, " ", mpirun(2), " --config ",
                      write_config(config, tmp), " --out ", dir, " >/dev/null 2>", tmp / "stderr"));
    REQUIRE(wait_for_checkpoint(dir, 10));
    const pid_t rank1 = rank_pid(dir, 1);
    REQUIRE(rank1 > 0);
    const Clock::time_point start = Clock::now();
    kill(rank1, f.signal);
    const int status = wait_for(job, 60);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (status == -1) kill(rank1, SIGKILL);  // mpirun did not get to it
    CHECK(status != 0);
    CHECK(status != -1);  // -1: still running after a minute
    CHECK(seconds < 30);
    const std::string err = read_file(tmp / "stderr");
    CAPTURE(err);
    CHECK(contains(err, f.expected));

    // The last checkpoint loads, and the run goes on from it.
    const Checkpoint last = RunDir(dir).load();
    CHECK(last.step >= 10);
    const Process resumed =
        run(str_cat(mpirun(2), " --resume ", dir, " --steps ", last.step + 5), tmp);
    CHECK_MESSAGE(resumed.status == 0, resumed.err);
    CHECK(checkpoint_step(dir) == last.step + 5);
  }
}
