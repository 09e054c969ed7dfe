#include "examples/train/spear_eval.h"

#include <filesystem>
#include <memory>
#include <sstream>

#include "examples/train/cli.h"
#include "examples/train/evaluate.h"
#include "examples/train/model.h"
#include "examples/train/run_dir.h"
#include "examples/train/tasks.h"
#include "nn/transformer.h"
#include "tensor/atomic_file.h"
#include "tensor/parallel.h"

namespace spear::train {
namespace {

// ---- The command line ----

// The whole of `text` as an integer >= min; else a ConfigError naming the flag.
int64_t parse_integer(const std::string& flag, const std::string& text, int64_t min) {
  try {
    size_t used = 0;
    const int64_t value = std::stoll(text, &used);
    if (used == text.size() && value >= min) return value;
  } catch (const std::exception&) {
  }
  throw ConfigError(str_cat(flag, " expects an integer >= ", min, ", got '", text, "'"));
}

// The whole of `text` as a number in [min, max]; else a ConfigError naming the flag.
double parse_number(const std::string& flag, const std::string& text, double min, double max) {
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size() && value >= min && value <= max) return value;
  } catch (const std::exception&) {
  }
  throw ConfigError(str_cat(flag, " expects a number in [", min, ", ", max, "], got '", text, "'"));
}

// ---- The run ----

struct LoadedRun {
  Config config;
  TaskSpec trained;                // the task as trained (nothing drawn)
  std::unique_ptr<Generator> gen;  // the model's generator, which must outlive it
  Model model;
  Json step;  // the checkpoint's step (null if its metadata lacks one)
};

LoadedRun load_run(const std::string& dir) {
  const RunDir run(dir);
  LoadedRun r;
  // Resolving again fills in keys added since the run was trained.
  r.config = config_from_json(resolve_config(run.read_config()));
  if (r.config.train.threads > 0) set_num_threads(r.config.train.threads);
  r.trained = task_spec(r.config.task);
  r.gen = std::make_unique<Generator>(0);
  r.model = build_model(r.config.model, r.trained, r.gen.get());
  const std::string path = run.file("model.safetensors");
  SPEAR_CHECK_T(IOError, std::filesystem::exists(path), dir,
                " holds no model.safetensors (the run has not checkpointed yet)");
  SafetensorsFile file = load_safetensors(path);
  try {
    r.model.module->load_state_dict(file.tensors);
  } catch (const Error& e) {
    throw IOError(
        str_cat(path, " does not fit the model of ", run.file("config.json"), ": ", e.what()));
  }
  const auto step = file.metadata.find("step");
  if (step != file.metadata.end()) {
    const Json value = Json::parse(step->second, nullptr, /*allow_exceptions=*/false);
    if (value.is_number_integer()) r.step = value;
  }
  r.model.module->eval();
  return r;
}

Split split_of(const std::string& name) {
  if (name == "val") return Split::val;
  if (name == "test") return Split::test;
  throw ConfigError("--split must be val or test, got '" + name + "'");
}

double ratio(double a, int64_t b) {
  return b ? a / static_cast<double>(b) : 0.0;
}

// A classifier's loss and accuracy on the split, with the label counts behind the chance level.
void evaluate_classifier(const LoadedRun& run, const EvalCommandLine& cli, std::ostream& out) {
  const auto task = make_task(run.config.task);
  const Split split = split_of(cli.split);
  Json result = {{"run", cli.run_dir},
                 {"step", run.step},
                 {"task", run.trained.name},
                 {"split", cli.split},
                 {"examples", task->examples(split).size()}};
  result.update(evaluate(run.model, *task, split, run.config.train.batch_size));
  std::vector<int64_t> labels(static_cast<size_t>(run.trained.num_classes), 0);
  for (const Example& e : task->examples(split)) ++labels.at(static_cast<size_t>(e.targets[0]));
  result["chance"] = task->chance_accuracy(split);
  result["labels"] = labels;
  out << result.dump() << std::endl;
}

// A language model's loss per position at task length cli.length, to a JSONL file.
void evaluate_lm_positions(const LoadedRun& run, const EvalCommandLine& cli, std::ostream& out) {
  TaskConfig tc = run.config.task;
  tc.max_len = cli.length > 0 ? cli.length : 4 * run.config.task.max_len;
  const TaskSpec spec = task_spec(tc);
  const ModelConfig& m = run.config.model;
  if (m.positional == "learned") {
    const int64_t table = m.max_len > 0 ? m.max_len : run.trained.max_input_len;
    SPEAR_CHECK_T(ConfigError, spec.max_input_len <= table, "--length ", tc.max_len, " needs ",
                  spec.max_input_len, " positions, but the model's learned positional table has ",
                  table);
  }
  const Task task(spec, tc);
  const Split split = split_of(cli.split);
  const PositionLosses losses =
      evaluate_positions(run.model, task, split, run.config.train.batch_size, cli.batches);

  const int64_t trained = run.trained.max_input_len;
  double sums[2] = {0, 0};  // within and beyond the trained positions
  int64_t counts[2] = {0, 0}, correct = 0;
  const std::string path =
      !cli.out.empty() ? cli.out
                       : str_cat(cli.run_dir, "/positions_", cli.split, "_", tc.max_len, ".jsonl");
  Json summary = {{"run", cli.run_dir},
                  {"step", run.step},
                  {"task", spec.name},
                  {"split", cli.split},
                  {"length", tc.max_len},
                  {"trained_length", run.config.task.max_len},
                  {"trained_positions", trained},
                  {"examples", losses.examples}};
  write_file_atomically("spear-eval", path, [&](std::ostream& file) {
    for (size_t p = 0; p < losses.count.size(); ++p) {
      if (losses.count[p] == 0) continue;
      const int beyond = static_cast<int64_t>(p) >= trained;
      sums[beyond] += losses.loss[p];
      counts[beyond] += losses.count[p];
      correct += losses.correct[p];
      file << Json{{"position", p},
                   {"loss", ratio(losses.loss[p], losses.count[p])},
                   {"accuracy", ratio(static_cast<double>(losses.correct[p]), losses.count[p])},
                   {"count", losses.count[p]}}
                  .dump()
           << "\n";
    }
    summary["loss"] = ratio(sums[0] + sums[1], counts[0] + counts[1]);
    summary["accuracy"] = ratio(static_cast<double>(correct), counts[0] + counts[1]);
    summary["loss_within"] = counts[0] ? Json(ratio(sums[0], counts[0])) : Json();
    summary["loss_beyond"] = counts[1] ? Json(ratio(sums[1], counts[1])) : Json();
    summary["chance"] = task.chance_accuracy(split);
    file << summary.dump() << "\n";
  });
  summary["out"] = path;
  out << summary.dump() << std::endl;
}

// The prompt as token ids: bytes for a text task, else integers separated by spaces.
std::vector<int64_t> prompt_ids(const TaskSpec& spec, const std::optional<std::string>& prompt) {
  std::vector<int64_t> ids;
  if (spec.text) {
    for (unsigned char c : prompt.value_or("\n")) ids.push_back(c);
  } else {
    std::istringstream in(prompt.value_or("0"));
    for (std::string word; in >> word;) {
      const int64_t id = parse_integer("--prompt", word, 0);
      SPEAR_CHECK_T(ConfigError, id < spec.vocab_size, "--prompt: token ", id,
                    " is outside the vocabulary of task ", spec.name, " (0 .. ",
                    spec.vocab_size - 1, ")");
      ids.push_back(id);
    }
  }
  SPEAR_CHECK_T(ConfigError, !ids.empty(), "--prompt is empty");
  return ids;
}

void generate(const LoadedRun& run, const EvalCommandLine& cli, std::ostream& out) {
  const TaskSpec& spec = run.trained;
  const auto lm = std::dynamic_pointer_cast<nn::CausalLM>(run.model.module);
  SPEAR_CHECK_T(ConfigError, lm != nullptr, "--generate needs a language model; task ", spec.name,
                " is a classifier");
  const std::vector<int64_t> prompt = prompt_ids(spec, cli.prompt);
  const auto P = static_cast<int64_t>(prompt.size());
  run.model.select_draw(kEvalDraw);  // SPE: one fixed draw for the whole generation
  const std::vector<int64_t> ids =
      lm->generate(tensor(prompt, {1, P}), cli.generate, cli.sampling).to_vector<int64_t>();
  if (spec.text) {
    std::string text;
    for (int64_t id : ids)
      if (id < 256) text += static_cast<char>(id);  // padding, should it be drawn, prints nothing
    out << text << std::endl;
  } else {
    for (size_t i = 0; i < ids.size(); ++i) out << (i ? " " : "") << ids[i];
    out << std::endl;
  }
}

}  // namespace

EvalCommandLine parse_eval_command_line(const std::vector<std::string>& args) {
  EvalCommandLine cli;
  std::vector<std::string> evaluating, sampling;  // the flags of each mode given
  for (const auto& [flag, value] : parse_flags(args, cli.help)) {
    if (flag == "--run") {
      cli.run_dir = value;
    } else if (flag == "--split") {
      split_of(value);
      cli.split = value;
      evaluating.push_back(flag);
    } else if (flag == "--length") {
      cli.length = parse_integer(flag, value, 1);
      evaluating.push_back(flag);
    } else if (flag == "--batches") {
      cli.batches = parse_integer(flag, value, 1);
      evaluating.push_back(flag);
    } else if (flag == "--out") {
      cli.out = value;
      evaluating.push_back(flag);
    } else if (flag == "--generate") {
      cli.generate = parse_integer(flag, value, 1);
    } else if (flag == "--prompt") {
      cli.prompt = value;
      sampling.push_back(flag);
    } else if (flag == "--temperature") {
      cli.sampling.temperature = parse_number(flag, value, 0, 1e6);
      sampling.push_back(flag);
    } else if (flag == "--top-k") {
      cli.sampling.top_k = parse_integer(flag, value, 0);
      sampling.push_back(flag);
    } else if (flag == "--top-p") {
      cli.sampling.top_p = parse_number(flag, value, 1e-9, 1);
      sampling.push_back(flag);
    } else if (flag == "--seed") {
      cli.sampling.seed = static_cast<uint64_t>(parse_integer(flag, value, 0));
      sampling.push_back(flag);
    } else {
      throw ConfigError(str_cat("unknown flag ", flag, " (see --help)"));
    }
  }
  if (cli.help) return cli;
  SPEAR_CHECK_T(ConfigError, !cli.run_dir.empty(), "--run DIR is required (see --help)");
  if (cli.generate > 0 && !evaluating.empty())
    throw ConfigError(evaluating[0] + " does not go with --generate (see --help)");
  if (cli.generate == 0 && !sampling.empty())
    throw ConfigError(sampling[0] + " needs --generate N (see --help)");
  return cli;
}

std::string eval_usage() {
  return "usage: spear-eval --run DIR [--split val|test] [--length L] [--batches K] [--out FILE]\n"
         "       spear-eval --run DIR --generate N [--prompt TEXT] [--temperature T] [--top-k K]\n"
         "                  [--top-p P] [--seed S]\n"
         "\n"
         "Evaluates, or samples from, the model of a spear-train run: DIR/config.json and\n"
         "DIR/model.safetensors (its last checkpoint).\n"
         "\n"
         "Evaluation. A classifier: one JSON line on stdout with the split's loss, accuracy,\n"
         "chance accuracy and label counts. A language model: the loss at every input position\n"
         "of the split, drawn at task length L, as JSON lines {\"position\", \"loss\",\n"
         "\"accuracy\", \"count\"} and a last summary line (mean loss within and beyond the\n"
         "trained positions) to FILE; the summary also goes to stdout.\n"
         "  --run DIR        the run directory (required)\n"
         "  --split S        val or test (default: test)\n"
         "  --length L       language models: the task.max_len to evaluate at (default: 4 x the\n"
         "                   trained one); for extrapolation and chars, L input positions\n"
         "  --batches K      language models: at most K batches of train.batch_size examples\n"
         "                   (default: the whole split)\n"
         "  --out FILE       the JSONL file (default: DIR/positions_<split>_<L>.jsonl)\n"
         "\n"
         "Sampling from a language model: the prompt and N sampled tokens on stdout, as text for\n"
         "the chars task, as token ids separated by spaces otherwise.\n"
         "  --generate N     sample N tokens\n"
         "  --prompt TEXT    chars: the text to continue (default: a newline); other tasks: token\n"
         "                   ids separated by spaces (default: \"0\")\n"
         "  --temperature T  divides the logits; 0 always takes the most likely token (default: "
         "1)\n"
         "  --top-k K        sample among the K most likely tokens (default: 0, all)\n"
         "  --top-p P        sample among the most likely tokens whose probability reaches P\n"
         "                   (default: 1, all)\n"
         "  --seed S         the sampling seed (default: 0)\n"
         "\n"
         "  --help           this text\n"
         "\n"
         "Exit status: 0 done, 1 runtime error (an unreadable run), 2 bad command line or a\n"
         "request that does not fit the run.\n";
}

void run_eval(const EvalCommandLine& cli, std::ostream& out) {
  const LoadedRun run = load_run(cli.run_dir);
  if (cli.generate > 0) {
    generate(run, cli, out);
    return;
  }
  if (run.trained.head == Head::language_model) {
    evaluate_lm_positions(run, cli, out);
    return;
  }
  SPEAR_CHECK_T(ConfigError, cli.length == 0 && cli.batches == 0 && cli.out.empty(),
                "--length, --batches and --out are for language models; task ", run.trained.name,
                " is a classifier");
  evaluate_classifier(run, cli, out);
}

}  // namespace spear::train
