// The training program's parts: config parsing, the command line, tasks, the model builder.
// (test_train_run.cpp trains: run directories, resume, crash safety, non-finite losses.)
#include <doctest/doctest.h>

#include <set>

#include "autograd/ops.h"
#include "examples/train/cli.h"
#include "examples/train/model.h"
#include "examples/train/tasks.h"
#include "train_helpers.h"

using namespace spear;
using namespace spear::train;
using namespace spear::train::testing;

namespace {

std::string config_error(const Json& user, const std::vector<std::string>& overrides = {}) {
  try {
    with_overrides(user, overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// ---- Config ----

TEST_CASE("config: defaults fill every key, overrides apply in order") {
  const Json d = resolve_config(Json::object());
  CHECK(d == default_config());
  CHECK(d["model"]["dim"] == 64);
  CHECK(d["model"]["attention"]["kind"] == "softmax");
  CHECK(d["train"]["on_nonfinite"] == "stop");

  const Json user = Json::parse(R"({"model": {"dim": 32}, "train": {"lr": 0.01}})");
  const Json c =
      resolve_config(user, {parse_override("model.dim=48"), parse_override("model.positional=rope"),
                            parse_override("train.lr=1e-4"), parse_override("model.dim=40")});
  CHECK(c["model"]["dim"] == 40);  // the later override wins
  CHECK(c["model"]["positional"] == "rope");
  CHECK(c["train"]["lr"] == 1e-4);
  CHECK(c["model"]["heads"] == 4);  // untouched keys keep their defaults

  const Config typed = config_from_json(c);
  CHECK(typed.model.dim == 40);
  CHECK(typed.model.attention == "softmax");
  CHECK(typed.train.lr == 1e-4);
}

TEST_CASE("config: --set values are JSON when they parse, strings otherwise") {
  CHECK(parse_override("a.b=64").value == Json(64));
  CHECK(parse_override("a.b=1e-3").value == Json(1e-3));
  CHECK(parse_override("a.b=true").value == Json(true));
  CHECK(parse_override("a.b=\"64\"").value == Json("64"));
  CHECK(parse_override("a.b=rope").value == Json("rope"));
  CHECK(parse_override("a.b=x=y").value == Json("x=y"));  // splits at the first '='
  CHECK(parse_override("a.b=x=y").path == "a.b");
}

TEST_CASE("config: errors name the key") {
  const Json none = Json::object();
  CHECK(config_error(Json::parse(R"({"model": {"dimm": 64}})")) ==
        "config: unknown key model.dimm");
  CHECK(config_error(none, {"model.dimm=64"}) == "config: unknown key model.dimm");
  CHECK(config_error(none, {"optim.lr=1"}) == "config: unknown key optim.lr");
  CHECK(config_error(Json::parse(R"({"model": {"dim": "64"}})")) ==
        "config: model.dim must be an integer, got \"64\"");
  CHECK(config_error(none, {"model.dim=\"64\""}) ==
        "config: model.dim must be an integer, got \"64\"");
  CHECK(config_error(none, {"model.dim=64.0"}) == "config: model.dim must be an integer, got 64.0");
  CHECK(config_error(none, {"train.lr=fast"}) == "config: train.lr must be a number, got \"fast\"");
  CHECK(config_error(none, {"model.tie_embeddings=1"}) ==
        "config: model.tie_embeddings must be a boolean, got 1");
  CHECK(config_error(none, {"model.attention.kind=cosine"}) ==
        "config: model.attention.kind must be one of softmax|linear|favor, got \"cosine\"");
  CHECK(config_error(none, {"model.positional=alibi"}) ==
        "config: model.positional must be one of "
        "none|sinusoidal|learned|rope|sine_spe|conv_spe, got \"alibi\"");
  CHECK(config_error(none, {"train.batch_size=0"}) ==
        "config: train.batch_size must be >= 1, got 0");
  CHECK(config_error(none, {"model.dropout=1.0"}) ==
        "config: model.dropout must be in [0.0, 1.0), got 1.0");
  CHECK(config_error(Json::parse(R"({"model": 5})")) == "config: model must be an object, got 5");
  CHECK(config_error(Json::parse("[1]")) == "config: the top level must be an object, got [1]");
  CHECK_THROWS_WITH_AS(parse_override("model.dim"), "--set expects key.path=value, got 'model.dim'",
                       ConfigError);
  CHECK_THROWS_WITH_AS(parse_override("=3"), "--set expects key.path=value, got '=3'", ConfigError);
}

TEST_CASE("config: a bad file names the file") {
  TempDir tmp;
  write_file(tmp / "bad.json", "{\"model\": {\"dim\": 64,}}");
  try {
    load_config_file(tmp / "bad.json");
    FAIL("no error");
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    CHECK(m.find("config: " + tmp / "bad.json" + ": parse error") == 0);
  }
  CHECK_THROWS_AS(load_config_file(tmp / "missing.json"), ConfigError);
}

TEST_CASE("config: every key is documented in docs/config.md and --help") {
  const std::string docs = read_file(std::string(SPEAR_SOURCE_DIR) + "/docs/config.md");
  const std::string help = usage();
  for (const ConfigKey& key : config_keys()) {
    CAPTURE(key.path);
    CHECK(docs.find("`" + key.path + "`") != std::string::npos);
    CHECK(help.find(key.path + " = " + key.default_value.dump()) != std::string::npos);
  }
  for (const char* flag : {"--config", "--out", "--steps", "--threads", "--seed", "--resume",
                           "--set", "--help", "docs/config.md"})
    CHECK(help.find(flag) != std::string::npos);
}

TEST_CASE("config: first_difference skips the ignored keys") {
  const Json a = tiny_config(), b = tiny_config({"train.steps=99", "model.dim=32"});
  CHECK(first_difference(a, a, {}) == "");
  CHECK(first_difference(a, b, {}) == "model.dim");
  CHECK(first_difference(a, tiny_config({"train.steps=99"}), {"train.steps"}) == "");
}

TEST_CASE("command line: flags, --set and errors") {
  const CommandLine cli = parse_command_line(
      {"--config", "c.json", "--steps", "7", "--set", "model.dim=8", "--seed=3", "--out", "o"});
  CHECK(cli.config_path == "c.json");
  CHECK(cli.out_dir == "o");
  REQUIRE(cli.overrides.size() == 3);
  CHECK(cli.overrides[0].path == "train.steps");
  CHECK(cli.overrides[0].value == 7);
  CHECK(cli.overrides[2].path == "train.seed");
  CHECK_THROWS_WITH_AS(parse_command_line({"--stepz", "3"}), "unknown flag --stepz (see --help)",
                       ConfigError);
  CHECK_THROWS_WITH_AS(parse_command_line({"--steps"}), "--steps needs a value (see --help)",
                       ConfigError);
  CHECK_THROWS_WITH_AS(parse_command_line({"config.json"}),
                       "unexpected argument 'config.json' (see --help)", ConfigError);
  CHECK_THROWS_WITH_AS(train_options(parse_command_line({"--steps", "3"})),
                       "--config FILE is required (or --resume DIR; see --help)", ConfigError);
  CHECK(parse_command_line({"--help"}).help);
}

// ---- Tasks ----

TEST_CASE("tasks: examples on hand-made sequences") {
  const Example e = reverse_example({3, 1, 4}, 8);
  CHECK(e.inputs == std::vector<int64_t>{3, 1, 4, 8, 4, 1});
  CHECK(e.targets == std::vector<int64_t>{kIgnore, kIgnore, kIgnore, 4, 1, 3});
  CHECK(majority_label({2, 0, 2, 1, 0, 2}, 3) == 2);
  CHECK(majority_label({1, 0, 1, 0}, 3) == 0);  // a tie goes to the smallest symbol
  CHECK(majority_label({2, 2, 1, 1, 3}, 4) == 1);
  CHECK(majority_label({5}, 6) == 5);
}

TEST_CASE("tasks: deterministic from the seed, disjoint splits, correct labels") {
  for (const char* name : {"reverse", "majority"}) {
    CAPTURE(name);
    TaskConfig c = config_from_json(tiny_config()).task;
    c.name = name;
    const auto a = make_task(c), b = make_task(c);
    c.seed += 1;
    const auto other = make_task(c);
    std::set<std::vector<int64_t>> seen[3];
    for (Split s : {Split::train, Split::val, Split::test}) {
      const std::vector<Example>& xs = a->examples(s);
      REQUIRE(xs.size() == b->examples(s).size());
      bool same_as_other = true;
      for (size_t i = 0; i < xs.size(); ++i) {
        CHECK(xs[i].inputs == b->examples(s)[i].inputs);
        same_as_other = same_as_other && xs[i].inputs == other->examples(s)[i].inputs;
        seen[static_cast<int>(s)].insert(xs[i].inputs);
        // Each example is what its symbols say it should be.
        const std::vector<int64_t>& in = xs[i].inputs;
        if (a->spec().head == Head::language_model) {
          const std::vector<int64_t> x(in.begin(), in.begin() + in.size() / 2);
          CHECK(reverse_example(x, c.vocab).inputs == in);
          CHECK(reverse_example(x, c.vocab).targets == xs[i].targets);
        } else {
          CHECK(in[0] == c.vocab + 1);  // CLS
          const std::vector<int64_t> x(in.begin() + 1, in.end());
          CHECK(xs[i].targets == std::vector<int64_t>{majority_label(x, c.vocab)});
          CHECK(static_cast<int64_t>(x.size()) >= c.min_len);
          CHECK(static_cast<int64_t>(x.size()) <= c.max_len);
        }
      }
      CHECK_FALSE(same_as_other);
    }
    for (const auto& x : seen[1]) CHECK(seen[0].count(x) == 0);
    for (const auto& x : seen[2]) CHECK((seen[0].count(x) + seen[1].count(x)) == 0);
  }
}

TEST_CASE("tasks: the batch of a step depends on (seed, step) only, and padding is masked") {
  const auto task = make_task(config_from_json(tiny_config()).task);
  const Batch a = task->train_batch(7, 3, 8), b = task->train_batch(7, 3, 8);
  CHECK(a.inputs.to_vector<int64_t>() == b.inputs.to_vector<int64_t>());
  CHECK(a.inputs.to_vector<int64_t>() != task->train_batch(7, 4, 8).inputs.to_vector<int64_t>());
  CHECK(a.inputs.to_vector<int64_t>() != task->train_batch(8, 3, 8).inputs.to_vector<int64_t>());

  const Batch v = task->batch(Split::val, 0, 5);
  const int64_t N = v.inputs.size(1);
  CHECK(v.targets.shape() == Shape{5});
  const std::vector<int64_t> ids = v.inputs.to_vector<int64_t>();
  const std::vector<int64_t> mask = v.padding_mask.to_vector<int64_t>();
  int64_t tokens = 0;
  for (int64_t r = 0; r < 5; ++r) {
    const auto len = static_cast<int64_t>(task->examples(Split::val)[r].inputs.size());
    tokens += len;
    for (int64_t j = 0; j < N; ++j) {
      CHECK(mask[r * N + j] == (j >= len));
      if (j >= len) CHECK(ids[r * N + j] == task->spec().pad_id);
    }
  }
  CHECK(v.tokens == tokens);
  const double chance = task->chance_accuracy(Split::test);
  CHECK(chance > 0.25);  // label 0 wins every tie, so it is the most frequent
  CHECK(chance < 0.6);
}

TEST_CASE("tasks: too few distinct inputs for disjoint splits is an error") {
  TaskConfig c = config_from_json(tiny_config()).task;
  c.vocab = 2;
  c.min_len = 1;
  c.max_len = 2;  // 6 distinct sequences
  CHECK_THROWS_AS(make_task(c), ConfigError);
  c.min_len = 3;
  CHECK_THROWS_WITH_AS(make_task(c), "config: task.min_len 3 exceeds task.max_len 2", ConfigError);
}

// ---- Model ----

TEST_CASE("model: PyTorch names, and errors naming the keys of settings that do not fit") {
  const Config c = config_from_json(tiny_lm_config());
  const auto task = make_task(c.task);
  Generator gen(0);
  const Model lm = build_model(c.model, task->spec(), &gen);
  const NamedTensors state = lm.module->state_dict();
  CHECK(state.front().first == "trunk.embed.weight");
  bool has_q = false;
  for (const auto& [name, t] : state) has_q = has_q || name == "trunk.blocks.0.attn.q_proj.weight";
  CHECK(has_q);
  const Batch batch = task->batch(Split::val, 0, 3);
  CHECK(lm.forward(batch).shape() == Shape{3, batch.inputs.size(1), task->spec().vocab_size});

  ModelConfig m = c.model;
  m.dim = 18;
  m.heads = 4;
  CHECK_THROWS_WITH_AS(build_model(m, task->spec(), &gen),
                       "config: model.dim 18 must be a multiple of model.heads 4", ConfigError);
  m.heads = 6;  // head width 3
  CHECK_THROWS_WITH_AS(build_model(m, task->spec(), &gen),
                       "config: model.positional rope needs an even head width, but model.dim / "
                       "model.heads = 18 / 6 = 3",
                       ConfigError);
  m = c.model;
  m.positional = "learned";
  m.max_len = 4;
  CHECK_THROWS_WITH_AS(build_model(m, task->spec(), &gen),
                       "config: model.max_len 4 is shorter than the longest input of task "
                       "reverse (12)",
                       ConfigError);
}

TEST_CASE("model: SPE filters every layer, with one code or a shared one, and new draws") {
  const Config c = config_from_json(tiny_lm_config());
  const auto task = make_task(c.task);
  const Batch batch = task->batch(Split::val, 0, 2);
  for (const char* positional : {"sine_spe", "conv_spe"})
    for (bool shared : {false, true}) {
      CAPTURE(positional);
      CAPTURE(shared);
      ModelConfig m = c.model;
      m.layers = 2;
      m.positional = positional;
      m.attention = "linear";
      m.spe.realizations = 6;
      m.spe.kernel_size = 3;
      m.spe.share_across_layers = shared;
      m.dropout = 0;  // so a training forward is random only through the draw
      Generator gen(0);
      const Model model = build_model(m, task->spec(), &gen);
      int64_t codes = 0, gates = 0;
      for (const auto& [name, t] : model.module->named_parameters()) {
        codes +=
            name.find(".code.") != std::string::npos &&
            (name.rfind("freqs") + 5 == name.size() || name.rfind("conv_q") + 6 == name.size());
        gates += name.rfind(".qk_encoding.gate") + 17 == name.size();
      }
      CHECK(codes == (shared ? 1 : 2));
      CHECK(gates == 2);
      model.module->train();
      model.select_draw(1);
      const Tensor first = model.forward(batch);
      model.select_draw(2);
      CHECK((model.forward(batch) - first).abs().max().item<float>() > 0);  // a new draw
      model.select_draw(1);
      CHECK((model.forward(batch) - first).abs().max().item<float>() == 0);  // the same draw
      model.module->eval();  // evaluation: the fixed evaluation draw, whatever was selected
      const Tensor eval_a = model.forward(batch);
      model.select_draw(7);
      CHECK((model.forward(batch) - eval_a).abs().max().item<float>() == 0);
    }
}

TEST_CASE("model: linear attention and FAVOR+ come from model.attention") {
  const Config c = config_from_json(tiny_lm_config());
  const auto task = make_task(c.task);
  const Batch batch = task->batch(Split::val, 0, 2);
  for (const char* kind : {"linear", "favor"}) {
    CAPTURE(kind);
    ModelConfig m = c.model;
    m.attention = kind;
    m.features = 16;
    Generator gen(0);
    const Model model = build_model(m, task->spec(), &gen);
    CHECK(model.forward(batch).shape() == Shape{2, batch.inputs.size(1), task->spec().vocab_size});
    // FAVOR+ keeps its random features in the checkpoint; plain linear attention has none.
    bool has_projection = false;
    for (const auto& [name, t] : model.module->state_dict())
      has_projection =
          has_projection || name == "trunk.blocks.0.attn.kernel.feature_map.projection";
    CHECK(has_projection == (std::string(kind) == "favor"));
  }
  ModelConfig m = c.model;
  m.attention = "favor";
  m.redraw = -1;
  Generator gen(0);
  CHECK_THROWS_AS(build_model(m, task->spec(), &gen), ConfigError);
}
