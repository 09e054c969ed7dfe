// The synthetic and text tasks of spear-train (docs/tasks.md): ListOps, LRA's ListOps TSV files,
// and the extrapolation and chars language models.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>

#include "examples/train/listops.h"
#include "examples/train/lra_tsv.h"
#include "task_helpers.h"

using namespace spear;
using namespace spear::train;
using namespace spear::train::testing;

namespace {

// ListOps in brackets -> CLS + ids.
std::vector<int64_t> with_cls(const std::string& expression) {
  std::vector<int64_t> ids = listops_ids(expression);
  ids.insert(ids.begin(), kListOpsCls);
  return ids;
}

const std::string kLraDir = std::string(SPEAR_TEST_DATA_DIR) + "/lra";

}  // namespace

// ---- ListOps ----

TEST_CASE("listops: a fixed id for each symbol") {
  CHECK(listops_id("0") == 2);
  CHECK(listops_id("9") == 11);
  CHECK(listops_id("[MIN") == 12);
  CHECK(listops_id("[MAX") == 13);
  CHECK(listops_id("[MED") == 14);
  CHECK(listops_id("[SM") == 15);
  CHECK(listops_id("]") == 16);
  CHECK(listops_id("X") == -1);  // LRA's name for ], not ours
  CHECK(listops_id("(") == -1);
  CHECK(listops_id("<pad>") == -1);
  CHECK(listops_ids("[MAX 2 [MIN 4 7 ] 0 ]") == std::vector<int64_t>{13, 4, 12, 6, 9, 16, 2, 16});
  CHECK(listops_text({1, 13, 4, 16}) == "<cls> [MAX 2 ]");
  CHECK_THROWS_WITH_AS(listops_ids("[MAX 2 [FIRST 1 ] ]"), "listops: unknown symbol '[FIRST'",
                       Error);
}

TEST_CASE("listops: values of hand-made expressions") {
  auto value = [](const std::string& e) { return listops_value(listops_ids(e)); };
  CHECK(value("[MAX 2 [MIN 4 7 ] 0 ]") == 4);
  CHECK(value("7") == 7);
  CHECK(value("[MIN 3 ]") == 3);
  CHECK(value("[SM 9 8 [MAX 3 5 ] ]") == 2);  // 22 mod 10
  CHECK(value("[SM 0 0 ]") == 0);
  // MED is int(numpy.median): the middle value, or the mean of the middle two, truncated.
  CHECK(value("[MED 7 1 8 ]") == 7);
  CHECK(value("[MED 1 2 ]") == 1);          // 1.5
  CHECK(value("[MED 0 9 ]") == 4);          // 4.5
  CHECK(value("[MED 3 9 1 5 ]") == 4);      // (3 + 5) / 2, the middle two after sorting
  CHECK(value("[MED 9 9 8 8 7 7 ]") == 8);  // (8 + 8) / 2
  CHECK(value("[MIN [MED 3 9 1 5 ] 6 ]") == 4);
  CHECK(listops_value(with_cls("[MAX 1 5 ]")) == 5);  // a leading CLS is fine

  CHECK_THROWS_WITH_AS(value("[MAX 1 2"), "listops: '[MAX 1 2' lacks a closing ]", Error);
  CHECK_THROWS_WITH_AS(value("1 2"), "listops: more than one expression in '1 2'", Error);
  CHECK_THROWS_WITH_AS(value("] 1"), "listops: ] without an operator at token 0", Error);
  CHECK_THROWS_WITH_AS(value("[SM ]"), "listops: [SM without arguments", Error);
  CHECK_THROWS_WITH_AS(listops_value({}), "listops: '' holds no expression", Error);
  CHECK_THROWS_WITH_AS(listops_value({2, 1}), "listops: unexpected <cls> at token 1", Error);
  CHECK_THROWS_WITH_AS(listops_value({0}), "listops: unexpected <pad> at token 0", Error);
}

TEST_CASE("listops: the longest expression the limits allow") {
  CHECK(listops_longest({1, 100, 1, 10}) == 1);             // the root is a digit
  CHECK(listops_longest({1, 100, 2, 10}) == 12);            // [OP d d d d d d d d d d ]
  CHECK(listops_longest({1, 100, 3, 2}) == 10);             // 2 + 2 * (2 + 2 * 1)
  CHECK(listops_longest({1, 100, 10, 10}) == 1222222222);   // 1, 12, 122, ...
  CHECK(listops_longest({1, 100, 1000, 10}) == INT64_MAX);  // saturates
  Generator gen(0);
  CHECK_THROWS_WITH_AS(sample_listops(gen, {11, 20, 3, 2}),
                       "config: task.min_len 11 exceeds the longest ListOps expression "
                       "task.max_depth 3 and task.max_args 2 allow (10 tokens)",
                       ConfigError);
}

TEST_CASE("listops: the generator respects depth, arguments and length, brackets included") {
  const ListOpsLimits limits{20, 60, 5, 4};
  Generator gen(7);
  std::map<int64_t, int64_t> lengths;
  for (int i = 0; i < 300; ++i) {
    const std::vector<int64_t> e = sample_listops(gen, limits);
    CAPTURE(listops_text(e));
    const auto n = static_cast<int64_t>(e.size());
    CHECK(n >= limits.min_len);
    CHECK(n <= limits.max_len);
    ++lengths[n];
    // Operators open, `]` closes: track the nesting and each operator's argument count.
    std::vector<int64_t> args;  // per open operator
    int64_t deepest = 0, operators = 0, ends = 0;
    for (int64_t id : e) {
      CHECK(id >= kListOpsDigit0);
      CHECK(id < kListOpsVocab);
      if (id >= kListOpsMin && id < kListOpsEnd) {
        if (!args.empty()) ++args.back();
        args.push_back(0);
        ++operators;
        deepest = std::max<int64_t>(deepest, args.size());
      } else if (id == kListOpsEnd) {
        REQUIRE(!args.empty());
        CHECK(args.back() >= 2);
        CHECK(args.back() <= limits.max_args);
        args.pop_back();
        ++ends;
      } else if (!args.empty()) {
        ++args.back();
      }
    }
    CHECK(args.empty());
    CHECK(ends == operators);
    CHECK(operators >= 1);                   // 20 tokens need brackets
    CHECK(deepest <= limits.max_depth - 1);  // depth max_depth holds digits only
    CHECK(listops_value(e) >= 0);            // well formed
  }
  CHECK(lengths.size() > 20);  // lengths spread over the range
  CHECK(lengths.begin()->first <= limits.min_len + 2);
  CHECK(lengths.rbegin()->first >= limits.max_len - 5);
}

TEST_CASE("listops task: CLS first, labels are the values, unique and disjoint splits") {
  const TaskConfig c =
      task_config({"task.name=listops", "task.min_len=10", "task.max_len=40", "task.max_depth=6",
                   "task.train_size=300", "task.val_size=100", "task.test_size=200"});
  const auto task = make_task(c);
  const TaskSpec& spec = task->spec();
  CHECK(spec.vocab_size == 17);
  CHECK(spec.num_classes == 10);
  CHECK(spec.pad_id == 0);
  CHECK(spec.max_input_len == 41);
  std::set<std::vector<int64_t>> all;
  size_t total = 0;
  for (Split s : {Split::train, Split::val, Split::test}) {
    for (const Example& e : task->examples(s)) {
      REQUIRE(e.inputs.size() >= 11);
      CHECK(e.inputs[0] == kListOpsCls);
      CHECK(e.inputs.size() <= 41);
      CHECK(std::count(e.inputs.begin(), e.inputs.end(), kListOpsEnd) >= 1);
      CHECK(e.targets == std::vector<int64_t>{listops_value(e.inputs)});
      all.insert(e.inputs);
      ++total;
    }
  }
  CHECK(all.size() == total);  // no input twice, within or across splits
  check_deterministic(c);
  TaskConfig other = c;
  other.seed += 1;
  CHECK(make_task(other)->examples(Split::test)[0].inputs != task->examples(Split::test)[0].inputs);

  // Batches pad with id 0 and mask the padding.
  const Batch b = task->batch(Split::val, 0, 4);
  const std::vector<int64_t> ids = b.inputs.to_vector<int64_t>();
  const std::vector<int64_t> mask = b.padding_mask.to_vector<int64_t>();
  for (size_t i = 0; i < ids.size(); ++i) CHECK((ids[i] == 0) == (mask[i] == 1));
}

TEST_CASE("listops task: MIN and MAX push the labels to 0 and 9, as in LRA") {
  const auto task =
      make_task(task_config({"task.name=listops", "task.min_len=50", "task.max_len=150",
                             "task.train_size=1", "task.val_size=1", "task.test_size=1000"}));
  std::vector<int64_t> counts(10, 0);
  for (const Example& e : task->examples(Split::test)) ++counts[e.targets[0]];
  for (int64_t d = 1; d <= 8; ++d) {
    CHECK(counts[0] > counts[d]);
    CHECK(counts[9] > counts[d]);
  }
  const double chance = task->chance_accuracy(Split::test);
  CHECK(chance == doctest::Approx(std::max(counts[0], counts[9]) / 1000.0));
  CHECK(chance > 0.12);
  CHECK(chance < 0.25);
}

TEST_CASE("listops task: limits no expression can meet are an error, not a hang") {
  CHECK_THROWS_AS(make_task(task_config({"task.name=listops", "task.min_len=20", "task.max_len=30",
                                         "task.max_depth=2"})),
                  ConfigError);
}

// ---- LRA's TSV files ----

TEST_CASE("listops_tsv: LRA's files, with \\r\\n or \\n line ends") {
  const std::vector<Example> train = read_listops_tsv(kLraDir + "/basic_train.tsv");  // \r\n
  REQUIRE(train.size() == 5);
  CHECK(train[0].inputs == with_cls("[MAX 2 [MIN 4 7 ] 0 ]"));
  CHECK(train[0].targets == std::vector<int64_t>{4});
  CHECK(train[1].inputs == with_cls("[MED 1 2 ]"));
  CHECK(train[1].targets == std::vector<int64_t>{1});
  CHECK(train[4].inputs == with_cls("[MED 0 9 ]"));
  const std::vector<Example> test = read_listops_tsv(kLraDir + "/basic_test.tsv");  // \n
  REQUIRE(test.size() == 2);
  CHECK(test[0].inputs == with_cls("[MIN [MAX 1 [SM 4 4 4 ] ] [MED 2 [MIN 9 8 ] 5 6 ] ]"));
  CHECK(test[0].targets == std::vector<int64_t>{2});
  // The labels LRA's generator wrote agree with the evaluator.
  for (const char* split : {"train", "val", "test"})
    for (const Example& e : read_listops_tsv(kLraDir + "/basic_" + split + ".tsv"))
      CHECK(e.targets[0] == listops_value(e.inputs));

  const TaskConfig c =
      task_config({"task.name=listops_tsv", "task.path=" + kLraDir, "task.max_len=30",
                   "task.train_size=3", "task.val_size=2", "task.test_size=2"});
  const auto task = make_task(c);
  CHECK(task->examples(Split::train).size() == 3);  // drawn from the file's 5, in file order
  CHECK(task->examples(Split::val).size() == 2);
  CHECK(task->examples(Split::test)[1].inputs == with_cls("[MED [MAX 6 2 ] [MIN 3 1 ] ]"));
  check_deterministic(c);

  TaskConfig big = c;
  big.train_size = 6;
  CHECK(error_message([&] { make_task(big); }) ==
        "config: task.train_size 6 exceeds the 5 examples of " + kLraDir + "/basic_train.tsv");
  TaskConfig shorter = c;
  shorter.max_len = 15;
  CHECK(starts_with(error_message([&] { make_task(shorter); }),
                    "config: " + kLraDir +
                        "/basic_test.tsv holds an expression of 19 tokens, "
                        "longer than task.max_len 15"));
  TaskConfig no_path = c;
  no_path.path = "";
  CHECK_THROWS_AS(make_task(no_path), ConfigError);
}

TEST_CASE("listops_tsv: malformed lines name the file and the line") {
  TempDir tmp;
  const std::string header = "Source\tTarget\n", good = "( ( ( [SM 1 ) 2 ) ] )\t3\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {good, ":1: expected the header Source<TAB>Target, got '( ( ( [SM 1 ) 2 ) ] )\t3'"},
      {"Source Target\n" + good, ":1: expected the header Source<TAB>Target"},
      {header + good + "( ( ( [SM 1 ) 2 ) ] ) 3\n", ":3: no tab between Source and Target"},
      {header + good + "( ( ( [SM 1 ) 2 ) ] )\t3\t4\n", ":3: more than two tab-separated fields"},
      {header + good + "\n" + "( ( ( [SM 1 ) 2 ) ] )\t10\n", ":4: Target '10' is not a label 0-9"},
      {header + "( ( ( [SM 1 ) 2 ) ] )\tx\n", ":2: Target 'x' is not a label 0-9"},
      {header + "( ( ( [SM 1 ) 2 ) ] )\t\n", ":2: Target '' is not a label 0-9"},
      {header + "( ( ( [SM 1 ) 2 ) X )\t3\n", ":2: unknown token 'X' in Source"},
      {header + "( ( ( SM 1 ) 2 ) ] )\t3\n", ":2: unknown token 'SM' in Source"},
      {header + good + "( )\t3\n", ":3: empty Source"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = tmp / ("case" + std::to_string(i) + ".tsv");
    write_file(path, cases[i].first);
    CAPTURE(cases[i].first);
    try {
      read_listops_tsv(path);
      FAIL("no error");
    } catch (const IOError& e) {
      CHECK(starts_with(e.what(), path + cases[i].second));
    }
  }
  write_file(tmp / "empty.tsv", "");
  CHECK(error_message([&] { read_listops_tsv(tmp / "empty.tsv"); }) ==
        tmp / "empty.tsv" + ": empty file (expected the header Source<TAB>Target)");
  write_file(tmp / "header.tsv", header + "\n");
  CHECK(error_message([&] { read_listops_tsv(tmp / "header.tsv"); }) ==
        tmp / "header.tsv" + ": no examples after the header");
  CHECK(starts_with(error_message([&] { read_listops_tsv(tmp / "missing.tsv"); }),
                    "listops_tsv: cannot open " + tmp / "missing.tsv" + ": No such file"));
}

// ---- Language models: extrapolation and chars ----

TEST_CASE("extrapolation: next-token targets, the period's echo, determinism") {
  const TaskConfig c = task_config({"task.name=extrapolation", "task.vocab=5", "task.max_len=24",
                                    "task.period=4", "task.noise=0.0", "task.train_size=50",
                                    "task.val_size=10", "task.test_size=10"});
  const auto task = make_task(c);
  CHECK(task->spec().vocab_size == 6);
  CHECK(task->spec().pad_id == 5);
  CHECK(task->spec().max_input_len == 24);
  for (const Example& e : task->examples(Split::train)) {
    REQUIRE(e.inputs.size() == 24);
    REQUIRE(e.targets.size() == 24);
    for (size_t t = 0; t + 1 < 24; ++t) CHECK(e.targets[t] == e.inputs[t + 1]);
    for (size_t t = 4; t < 24; ++t) CHECK(e.inputs[t] == e.inputs[t - 4]);  // no noise: exact
    for (int64_t x : e.inputs) CHECK((x >= 0 && x < 5));
  }
  check_deterministic(c);

  // With noise 0.5, a symbol repeats the one a period back with probability 0.5 + 0.5 / 5.
  TaskConfig noisy = c;
  noisy.noise = 0.5;
  int64_t same = 0, total = 0;
  const auto noisy_task = make_task(noisy);  // alive for the whole loop
  for (const Example& e : noisy_task->examples(Split::train))
    for (size_t t = 4; t < 24; ++t) same += e.inputs[t] == e.inputs[t - 4], ++total;
  CHECK(static_cast<double>(same) / total == doctest::Approx(0.6).epsilon(0.08));
}

TEST_CASE("chars: windows of bytes inside each split's region") {
  TempDir tmp;
  std::string text;  // pseudo-random bytes, so a window of 9 occurs once at most
  uint32_t state = 12345;
  for (int i = 0; i < 2000; ++i) {
    state = state * 1664525u + 1013904223u;
    text += static_cast<char>(state >> 24);
  }
  write_file(tmp / "text", text);
  const TaskConfig c =
      task_config({"task.name=chars", "task.path=" + tmp / "text", "task.max_len=8",
                   "task.train_size=40", "task.val_size=20", "task.test_size=20"});
  const auto task = make_task(c);
  CHECK(task->spec().vocab_size == 257);
  CHECK(task->spec().text);
  const size_t regions[] = {0, 1600, 1800, 2000};
  for (Split s : {Split::train, Split::val, Split::test}) {
    const auto i = static_cast<size_t>(s);
    const std::string region = text.substr(regions[i], regions[i + 1] - regions[i]);
    for (const Example& e : task->examples(s)) {
      REQUIRE(e.inputs.size() == 8);
      std::string window;
      for (int64_t b : e.inputs) window += static_cast<char>(b);
      window += static_cast<char>(e.targets.back());
      for (size_t t = 0; t + 1 < 8; ++t) CHECK(e.targets[t] == e.inputs[t + 1]);
      CHECK(region.find(window) != std::string::npos);
    }
  }
  check_deterministic(c);

  TaskConfig big = c;
  big.max_len = 200;  // 201 bytes do not fit the 200 of validation
  CHECK(error_message([&] { make_task(big); }) ==
        "config: task.max_len 200 needs windows of 201 bytes, but the val region of " +
            tmp / "text" + " holds 200 (the file has 2000 bytes: 80% train, 10% val, 10% test)");
  TaskConfig missing = c;
  missing.path = tmp / "nothing";
  CHECK(starts_with(error_message([&] { make_task(missing); }),
                    "chars: cannot open " + tmp / "nothing" + ": No such file"));
}
