// Training runs: the run directory's files, bit-identical resume, checkpoints that survive
// SIGKILL at any moment, malformed checkpoints, non-finite losses, and spear-train's exit codes.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <thread>

#include "examples/train/run_dir.h"
#include "tensor/safetensors.h"
#include "train_helpers.h"

using namespace spear;
using namespace spear::train;
using namespace spear::train::testing;
namespace fs = std::filesystem;

namespace {

std::vector<Json> metrics_lines(const std::string& dir) {
  std::vector<Json> lines;
  std::istringstream in(read_file(dir + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
  return lines;
}

// metrics.jsonl without the timing fields, one dumped object per line.
std::vector<std::string> deterministic_metrics(const std::string& dir) {
  std::vector<std::string> lines;
  for (Json j : metrics_lines(dir)) {
    j.erase("tokens_per_s");
    j.erase("elapsed_s");
    lines.push_back(j.dump());
  }
  return lines;
}

// Two runs that must be the same run, whatever interrupted either.
void check_same_run(const std::string& a, const std::string& b) {
  CHECK(deterministic_metrics(a) == deterministic_metrics(b));
  CHECK(read_file(a + "/model.safetensors") == read_file(b + "/model.safetensors"));
  CHECK(read_file(a + "/optimizer.safetensors") == read_file(b + "/optimizer.safetensors"));
}

// Files a crash or a failure could leave half-done.
bool has_leftovers(const std::string& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".tmp.") != std::string::npos || name.find(".next") != std::string::npos)
      return true;
  }
  return false;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

struct Process {
  int status;
  std::string out, err;
};

// Runs spear-train with `args` (shell words) and collects its exit status and output.
Process spear_train(const std::string& args, const TempDir& tmp) {
  const std::string out = tmp / "stdout", err = tmp / "stderr";
  const int raw =
      std::system((std::string(SPEAR_TRAIN_EXE) + " " + args + " >" + out + " 2>" + err).c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_file(out), read_file(err)};
}

// Starts spear-train with `args`, its output to /dev/null; returns its pid.
pid_t spawn(const std::vector<std::string>& args) {
  std::vector<std::string> words = {SPEAR_TRAIN_EXE};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {  // only async-signal-safe calls between fork and exec
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

TEST_CASE("run: every file of the run directory exists and parses, and the loss falls") {
  TempDir tmp;
  // Overfit a tiny training set: the loss must fall far.
  const Json config = tiny_config({"task.train_size=8", "train.steps=60", "train.lr=1e-2",
                                   "model.dropout=0.0", "train.warmup=0"});
  const Json summary = run(config, tmp / "run");
  const std::string dir = tmp / "run";

  CHECK(Json::parse(read_file(dir + "/config.json")) == config);

  const std::vector<Json> lines = metrics_lines(dir);
  std::vector<double> losses;
  int evals = 0;
  for (const Json& line : lines) {
    if (line.contains("split")) {
      ++evals;
      CHECK(line["accuracy"].get<double>() >= 0.0);
      CHECK(line.contains("loss"));
      continue;
    }
    for (const char* key : {"step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"})
      CHECK(line.contains(key));
    losses.push_back(line["loss"].get<double>());
  }
  CHECK(losses.size() == 12);  // every 5 of 60 steps
  CHECK(evals == 7);           // val at 10, 20, ..., 60, test at 60
  CHECK(losses.back() < 0.25 * losses.front());

  const SafetensorsFile model = load_safetensors(dir + "/model.safetensors");
  CHECK(model.metadata.at("format") == "pt");
  CHECK(model.metadata.at("step") == "60");
  CHECK(model.metadata.at("spear_version") == SPEAR_VERSION_STRING);
  CHECK(Json::parse(model.metadata.at("config")) == config);
  CHECK(model.tensors.front().first == "trunk.embed.weight");
  const SafetensorsFile optimizer = load_safetensors(dir + "/optimizer.safetensors");
  CHECK(optimizer.at("step").item<int64_t>() == 60);

  const Json state = Json::parse(read_file(dir + "/trainer_state.json"));
  CHECK(state["format_version"] == kFormatVersion);
  CHECK(state["step"] == 60);
  CHECK(state["rng"]["model"].contains("offset"));
  CHECK(state["rng"]["default"].contains("seed"));
  CHECK_FALSE(has_leftovers(dir));

  CHECK(summary["steps"] == 60);
  CHECK(summary["final_loss"] == lines[lines.size() - 3]["loss"]);
  CHECK(summary["test"] ==
        Json({{"loss", lines.back()["loss"]}, {"accuracy", lines.back()["accuracy"]}}));
  CHECK(summary["params"].get<int64_t>() > 0);
  for (const char* key : {"elapsed_s", "tokens_per_s", "val", "chance"})
    CHECK(summary.contains(key));
}

TEST_CASE("run: a run cut in two and resumed is bit-identical to one uninterrupted run") {
  for (const Json& config : {tiny_config(), tiny_lm_config({"train.optimizer=sgd"})}) {
    CAPTURE(config["task"]["name"]);
    TempDir tmp;
    run(config, tmp / "whole");
    // Cut between checkpoints too (23 is no multiple of checkpoint_every or log_every).
    for (int64_t cut : {20, 23}) {
      const std::string dir = tmp / ("cut" + std::to_string(cut));
      const Json first = run(config, dir, false, cut);
      CHECK(first["steps"] == cut);
      run(config, dir, true);
      check_same_run(tmp / "whole", dir);
    }
  }
}

TEST_CASE("run: resume drops metrics lines past the checkpoint and a torn last line") {
  TempDir tmp;
  const Json config = tiny_config();
  run(config, tmp / "whole");
  const std::string dir = tmp / "cut";
  run(config, dir, false, 20);
  // What a process killed after step 20's checkpoint might have left: a later line, a torn one.
  std::ofstream(dir + "/metrics.jsonl", std::ios::app)
      << "{\"step\": 21, \"loss\": 9.0}\n{\"step\": 22, \"lo";
  run(config, dir, true);
  check_same_run(tmp / "whole", dir);
}

TEST_CASE("run: resuming with another config names the key, but train.steps may grow") {
  TempDir tmp;
  const std::string dir = tmp / "run";
  run(tiny_config({"train.steps=10"}), dir);
  CHECK(error_of([&] {
          run(tiny_config({"train.steps=10", "model.dim=32"}), dir, true);
        }) ==
        "resume: the config differs from the run's at model.dim (the run has 16, now 32); only "
        "train.steps and train.threads may change");
  CHECK_THROWS_AS(run(tiny_config({"train.steps=10"}), dir), ConfigError);  // not without resume
  const Json summary = run(tiny_config({"train.steps=20", "train.threads=1"}), dir, true);
  CHECK(summary["steps"] == 20);
  CHECK(Json::parse(read_file(dir + "/config.json"))["train"]["steps"] == 20);
  // A finished run resumes to nothing and reports the same result.
  const Json again = run(tiny_config({"train.steps=20"}), dir, true);
  CHECK(again["test"] == summary["test"]);
  CHECK(error_of([&] { run(tiny_config({"train.steps=5"}), dir, true); }) ==
        "resume: the run is at step 20, past train.steps 5");
}

TEST_CASE("run: the commit protocol finishes or discards an interrupted checkpoint") {
  TempDir tmp;
  const std::string dir = tmp / "run";
  const Json config = tiny_config({"train.steps=20"});
  run(config, dir, false, 10);  // checkpoint at step 10
  const std::string model = dir + "/model.safetensors", opt = dir + "/optimizer.safetensors";
  const SafetensorsFile at10 = load_safetensors(model);
  auto with_step = [&](const std::string& path, const SafetensorsFile& f, int64_t step) {
    std::map<std::string, std::string> meta = f.metadata;
    meta["step"] = std::to_string(step);
    save_safetensors(path, f.tensors, meta);
  };

  SUBCASE("killed before the commit: the .next files are discarded") {
    with_step(model + ".next", at10, 11);
    write_file(dir + "/trainer_state.json.tmp.12345", "{\"half");
    CHECK(RunDir(dir).load().step == 10);
    CHECK_FALSE(has_leftovers(dir));
  }
  SUBCASE("killed after the commit: the .next files are renamed into place") {
    fs::rename(model, model + ".next");
    with_step(model, at10, 9);  // what the previous checkpoint had left
    const Checkpoint c = RunDir(dir).load();
    CHECK(c.step == 10);
    CHECK(load_safetensors(model).metadata.at("step") == "10");
    CHECK_FALSE(has_leftovers(dir));
  }
  // Either way the run goes on as if nothing had happened.
  run(config, dir, true);
  TempDir other;
  run(config, other / "whole");
  check_same_run(other / "whole", dir);
}

TEST_CASE("run: malformed checkpoints give clear errors") {
  TempDir tmp;
  const std::string dir = tmp / "run";
  const Json config = tiny_config({"train.steps=10"});
  run(config, dir);
  const std::string state_path = dir + "/trainer_state.json";
  const std::string state = read_file(state_path);
  auto resume_error = [&] { return error_of([&] { run(config, dir, true); }); };

  fs::remove(state_path);
  CHECK(resume_error() == dir + " holds no checkpoint (no trainer_state.json)");
  write_file(state_path, "{\"format_version\": 1, \"step\":");
  CHECK(resume_error() == state_path + ": not a JSON object (the file is damaged)");
  write_file(state_path, "{\"format_version\": 2, \"step\": 10}");
  CHECK(resume_error() == state_path + ": format_version is 2, this spear-train reads 1");
  write_file(state_path, "{\"format_version\": 1, \"step\": -3}");
  CHECK(resume_error() == state_path + ": \"step\" must be an integer >= 0, got -3");
  write_file(state_path, "{\"format_version\": 1, \"step\": 10}");
  CHECK(contains(resume_error(), state_path + ": missing or malformed entry"));
  write_file(state_path, state);

  const std::string model = dir + "/model.safetensors";
  const SafetensorsFile good = load_safetensors(model);
  fs::remove(model);
  CHECK(resume_error() == model + " is missing (trainer_state.json is at step 10)");
  std::map<std::string, std::string> meta = good.metadata;
  meta["step"] = "7";
  save_safetensors(model, good.tensors, meta);
  CHECK(resume_error() == model +
                              " holds step 7 but trainer_state.json is at step 10: the "
                              "checkpoint is inconsistent");
  NamedTensors wrong = good.tensors;
  wrong[0].second = zeros({3, 3});
  save_safetensors(model, wrong, good.metadata);
  const std::string e = resume_error();
  CHECK(contains(e, dir + ": the checkpoint does not fit the model"));
  CHECK(contains(e, "trunk.embed.weight (checkpoint [3, 3]"));
  write_file(model, "garbage");
  CHECK(contains(resume_error(), model));
}

TEST_CASE("run: a NaN loss stops the run naming the step and the tensor, or skips the step") {
  TempDir tmp;
  const std::string dir = tmp / "run";
  // lr 1e30 throws the weights to ~1e29 in step 1; step 2's logits overflow.
  const Json config =
      tiny_config({"train.lr=1e30", "train.optimizer=sgd", "train.checkpoint_every=1"});
  try {
    run(config, dir);
    FAIL("no error");
  } catch (const NonFiniteError& e) {
    CHECK(std::string(e.what()) ==
          "step 2: the loss is nan; first non-finite tensor: gradient of trunk.embed.weight "
          "(train.on_nonfinite = \"skip\" skips such steps)");
  }
  // Nothing half-written: the last checkpoint (step 1) loads, every metrics line parses.
  CHECK(RunDir(dir).load().step == 1);
  CHECK_FALSE(has_leftovers(dir));
  CHECK_NOTHROW(metrics_lines(dir));

  const Json summary =
      run(tiny_config({"train.lr=1e30", "train.optimizer=sgd", "train.on_nonfinite=skip"}),
          tmp / "skip");
  CHECK(summary["skipped"] == 39);  // every step after the first
  const std::vector<Json> lines = metrics_lines(tmp / "skip");
  CHECK(lines[0]["skipped"] == 4);  // steps 2..5
}

// SIGKILL lands at seeded random moments (mostly inside checkpoint writes, with a checkpoint
// every step); after each, the checkpoint must load, and the run resumed to the end must equal an
// uninterrupted one. The loop is bounded in kills and in time, and it passes whatever moments
// the kills hit.
TEST_CASE("run: SIGKILL at any moment leaves a consistent checkpoint") {
  TempDir tmp;
  const Json config = tiny_config({"train.steps=80", "train.checkpoint_every=1"});
  write_file(tmp / "config.json", config.dump());
  const std::string dir = tmp / "killed";
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> delay_us(0, 40000);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int kills = 0;
  while (kills < 8 && std::chrono::steady_clock::now() < deadline) {
    const bool fresh = kills == 0;
    const pid_t pid =
        spawn(fresh ? std::vector<std::string>{"--config", tmp / "config.json", "--out", dir}
                    : std::vector<std::string>{"--resume", dir});
    REQUIRE(pid > 0);
    // A first run is only resumable once its step-0 checkpoint is committed.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (fresh && !fs::exists(dir + "/trainer_state.json") &&
           std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    REQUIRE(fs::exists(dir + "/trainer_state.json"));
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {  // it finished first: the run is complete
      CHECK(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) == 0);
      break;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ++kills;
    const Checkpoint c = RunDir(dir).load();
    CHECK(c.step >= 0);
    CHECK(c.step <= 80);
  }
  CHECK(kills > 0);
  run(config, dir, true);  // to the end
  run(config, tmp / "whole");
  check_same_run(tmp / "whole", dir);
}

TEST_CASE("spear-train: exit codes, one-line errors, one summary line") {
  TempDir tmp;
  write_file(tmp / "tiny.json", tiny_config({"train.steps=6", "train.warmup=0"}).dump());
  write_file(tmp / "bad_type.json", R"({"model": {"dim": "64"}})");

  Process p = spear_train("--help", tmp);
  CHECK(p.status == 0);
  CHECK(contains(p.out, "docs/config.md"));

  p = spear_train("--config " + tmp / "tiny.json" + " --set model.dimm=3", tmp);
  CHECK(p.status == 2);
  CHECK(p.err == "spear-train: config: unknown key model.dimm\n");
  p = spear_train("--config " + tmp / "bad_type.json", tmp);
  CHECK(p.status == 2);
  CHECK(p.err == "spear-train: config: model.dim must be an integer, got \"64\"\n");
  p = spear_train("--config " + tmp / "tiny.json" + " --stepz 3", tmp);
  CHECK(p.status == 2);
  CHECK(p.err == "spear-train: unknown flag --stepz (see --help)\n");
  p = spear_train("--resume " + tmp / "nothing", tmp);
  CHECK(p.status == 1);
  CHECK(p.err == "spear-train: " + tmp / "nothing" + " is not a run directory (no config.json)\n");

  const std::string dir = tmp / "run";
  p = spear_train("--config " + tmp / "tiny.json" + " --out " + dir + " --steps 4 --seed 3", tmp);
  CHECK(p.status == 0);
  REQUIRE(std::count(p.out.begin(), p.out.end(), '\n') == 1);
  const Json summary = Json::parse(p.out);
  CHECK(summary["steps"] == 4);
  CHECK(Json::parse(read_file(dir + "/config.json"))["train"]["seed"] == 3);
  CHECK(p.err.rfind("spear " SPEAR_VERSION_STRING " | 2 threads | BLAS: ", 0) == 0);
  CHECK(contains(p.err, "step 4/4 | loss "));  // stderr is no terminal: plain lines

  p = spear_train("--config " + tmp / "tiny.json" + " --out " + dir, tmp);
  CHECK(p.status == 2);
  CHECK(p.err == "spear-train: " + dir + " already holds a run; continue it with --resume " + dir +
                     " or choose another --out\n");
  p = spear_train("--resume " + dir + " --steps 6", tmp);
  CHECK(p.status == 0);
  CHECK(Json::parse(p.out)["steps"] == 6);

  p = spear_train("--config " + tmp / "tiny.json" + " --out " + tmp / "nan" +
                      " --set train.lr=1e30 --set train.optimizer=\\\"sgd\\\"",
                  tmp);
  CHECK(p.status == 1);
  CHECK(p.out.empty());
  CHECK(contains(p.err, "\nspear-train: step 2: the loss is nan; first non-finite tensor: "));
}
