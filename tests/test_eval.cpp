// spear-eval on runs trained here: per-position losses beyond the trained length, a classifier's
// metrics, sampling, and its command-line errors.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include "task_helpers.h"

using namespace spear;
using namespace spear::train;
using namespace spear::train::testing;

namespace {

struct Process {
  int status;
  std::string out, err;
};

Process spear_eval(const std::string& args, const TempDir& tmp) {
  const std::string out = tmp / "stdout", err = tmp / "stderr";
  const int raw =
      std::system((std::string(SPEAR_EVAL_EXE) + " " + args + " >" + out + " 2>" + err).c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_file(out), read_file(err)};
}

std::vector<Json> json_lines(const std::string& text) {
  std::vector<Json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
  return lines;
}

Json tiny_run_config(const std::vector<std::string>& task) {
  std::vector<std::string> all = {"train.steps=30",     "train.batch_size=8", "train.warmup=5",
                                  "train.eval_every=0", "train.log_every=10", "train.threads=2",
                                  "model.dim=16",       "model.heads=2",      "model.layers=1"};
  all.insert(all.end(), task.begin(), task.end());
  return with_overrides(Json::object(), all);
}

}  // namespace

TEST_CASE("spear-eval: per-position losses of a language model beyond its trained length") {
  TempDir tmp;
  const std::string run_dir = tmp / "run";
  const Json trained =
      run(tiny_run_config({"task.name=extrapolation", "task.max_len=8", "task.period=2",
                           "task.train_size=100", "task.val_size=20", "task.test_size=20"}),
          run_dir);

  const Process p = spear_eval("--run " + run_dir + " --length 32 --batches 2", tmp);
  REQUIRE(p.status == 0);
  const Json summary = Json::parse(p.out);
  const std::string path = run_dir + "/positions_test_32.jsonl";
  CHECK(summary["out"] == path);
  CHECK(summary["step"] == 30);
  const std::vector<Json> lines = json_lines(read_file(path));
  REQUIRE(lines.size() == 33);  // 32 positions and the summary
  for (int64_t i = 0; i < 32; ++i) {
    CHECK(lines[i]["position"] == i);
    CHECK(lines[i]["count"] == 16);  // 2 batches of 8
    CHECK(lines[i]["loss"].get<double>() > 0);
  }
  CHECK(lines[32]["trained_positions"] == 8);
  CHECK(lines[32]["length"] == 32);
  CHECK(lines[32]["examples"] == 16);
  CHECK(lines[32]["loss_within"].is_number());
  CHECK(lines[32]["loss_beyond"].is_number());

  // At the trained length, over the whole split (the same examples as in training), the
  // positions average to the run's final validation loss.
  const Process same =
      spear_eval("--run " + run_dir + " --length 8 --split val --out " + tmp / "val.jsonl", tmp);
  REQUIRE(same.status == 0);
  const Json s = json_lines(read_file(tmp / "val.jsonl")).back();
  CHECK(s["examples"] == 20);
  CHECK(s["loss_beyond"].is_null());
  CHECK(s["loss"].get<double>() ==
        doctest::Approx(trained["val"]["loss"].get<double>()).epsilon(1e-5));

  const Process sample = spear_eval("--run " + run_dir + " --generate 12 --prompt '1 0 1'", tmp);
  REQUIRE(sample.status == 0);
  std::istringstream words(sample.out);
  std::vector<int64_t> tokens;
  for (int64_t t; words >> t;) tokens.push_back(t);
  CHECK(tokens.size() == 15);
  CHECK(std::vector<int64_t>(tokens.begin(), tokens.begin() + 3) == std::vector<int64_t>{1, 0, 1});
  CHECK(spear_eval("--run " + run_dir + " --generate 12 --prompt '1 0 1'", tmp).out == sample.out);

  const Process bad = spear_eval("--run " + run_dir + " --generate 3 --prompt 9", tmp);
  CHECK(bad.status == 2);
  CHECK(bad.err ==
        "spear-eval: --prompt: token 9 is outside the vocabulary of task "
        "extrapolation (0 .. 8)\n");
}

TEST_CASE("spear-eval: a classifier's accuracy equals the training run's, text is sampled") {
  TempDir tmp;
  const Json trained =
      run(tiny_run_config({"task.name=listops", "task.min_len=5", "task.max_len=20",
                           "task.max_depth=4", "task.train_size=100", "task.val_size=30",
                           "task.test_size=40", "model.pooling=cls"}),
          tmp / "listops");
  const Process p = spear_eval("--run " + tmp / "listops", tmp);
  REQUIRE(p.status == 0);
  const Json result = Json::parse(p.out);
  CHECK(result["accuracy"] == trained["test"]["accuracy"]);
  CHECK(result["loss"].get<double>() == doctest::Approx(trained["test"]["loss"].get<double>()));
  CHECK(result["chance"] == trained["chance"]);
  CHECK(result["examples"] == 40);
  int64_t labelled = 0;
  for (const Json& n : result["labels"]) labelled += n.get<int64_t>();
  CHECK(labelled == 40);

  const Process length = spear_eval("--run " + tmp / "listops" + " --length 40", tmp);
  CHECK(length.status == 2);
  CHECK(contains(length.err, "task listops is a classifier"));
  CHECK(spear_eval("--run " + tmp / "listops" + " --generate 5", tmp).status == 2);

  TempDir text;
  write_file(text / "text", std::string(300, 'a') + std::string(300, 'b'));
  run(tiny_run_config({"task.name=chars", "task.path=" + text / "text", "task.max_len=16",
                       "task.train_size=50", "task.val_size=5", "task.test_size=5"}),
      tmp / "chars");
  const Process chars =
      spear_eval("--run " + tmp / "chars" + " --generate 20 --prompt abc --temperature 0", tmp);
  REQUIRE(chars.status == 0);
  CHECK(chars.out.size() == 3 + 20 + 1);  // the prompt, the sample, a newline
  CHECK(starts_with(chars.out, "abc"));
}

TEST_CASE("spear-eval: command-line errors") {
  TempDir tmp;
  auto error = [&](const std::string& args) {
    const Process p = spear_eval(args, tmp);
    CHECK(p.status == 2);
    return p.err;
  };
  CHECK(error("") == "spear-eval: --run DIR is required (see --help)\n");
  CHECK(error("--run x --lenght 3") == "spear-eval: unknown flag --lenght (see --help)\n");
  CHECK(error("--run x --length 0") == "spear-eval: --length expects an integer >= 1, got '0'\n");
  CHECK(error("--run x --split train") == "spear-eval: --split must be val or test, got 'train'\n");
  CHECK(error("--run x --top-p 1.5 --generate 3") ==
        "spear-eval: --top-p expects a number in [1e-09, 1], got '1.5'\n");
  CHECK(error("--run x --prompt hi") == "spear-eval: --prompt needs --generate N (see --help)\n");
  CHECK(error("--run x --generate 3 --length 9") ==
        "spear-eval: --length does not go with --generate (see --help)\n");
  const Process missing = spear_eval("--run " + tmp / "nothing", tmp);
  CHECK(missing.status == 1);
  CHECK(missing.err ==
        "spear-eval: " + tmp / "nothing" + " is not a run directory (no config.json)\n");
  const Process help = spear_eval("--help", tmp);
  CHECK(help.status == 0);
  for (const char* flag : {"--run", "--split", "--length", "--batches", "--out", "--generate",
                           "--prompt", "--temperature", "--top-k", "--top-p", "--seed"})
    CHECK(contains(help.out, flag));
}
