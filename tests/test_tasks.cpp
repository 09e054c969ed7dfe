// The data tasks of spear-train (docs/tasks.md): ListOps and LRA's TSV files, IDX files and
// Fashion-MNIST, the extrapolation and chars language models, and spear-eval on trained runs.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <zlib.h>

#include <algorithm>
#include <map>
#include <set>

#include "examples/train/evaluate.h"
#include "examples/train/idx.h"
#include "examples/train/listops.h"
#include "examples/train/lra_tsv.h"
#include "examples/train/tasks.h"
#include "train_helpers.h"

using namespace spear;
using namespace spear::train;
using namespace spear::train::testing;

namespace {

TaskConfig task_config(const std::vector<std::string>& overrides) {
  return config_from_json(with_overrides(Json::object(), overrides)).task;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Every split's inputs, checked to be the same for two tasks built from one config.
void check_deterministic(const TaskConfig& config) {
  const auto a = make_task(config), b = make_task(config);
  for (Split s : {Split::train, Split::val, Split::test}) {
    REQUIRE(a->examples(s).size() == b->examples(s).size());
    for (size_t i = 0; i < a->examples(s).size(); ++i) {
      CHECK(a->examples(s)[i].inputs == b->examples(s)[i].inputs);
      CHECK(a->examples(s)[i].targets == b->examples(s)[i].targets);
    }
  }
}

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
  CHECK(error_of([&] { make_task(big); }) ==
        "config: task.train_size 6 exceeds the 5 examples of " + kLraDir + "/basic_train.tsv");
  TaskConfig shorter = c;
  shorter.max_len = 15;
  CHECK(starts_with(error_of([&] { make_task(shorter); }),
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
  CHECK(error_of([&] { read_listops_tsv(tmp / "empty.tsv"); }) ==
        tmp / "empty.tsv" + ": empty file (expected the header Source<TAB>Target)");
  write_file(tmp / "header.tsv", header + "\n");
  CHECK(error_of([&] { read_listops_tsv(tmp / "header.tsv"); }) ==
        tmp / "header.tsv" + ": no examples after the header");
  CHECK(starts_with(error_of([&] { read_listops_tsv(tmp / "missing.tsv"); }),
                    "listops_tsv: cannot open " + tmp / "missing.tsv" + ": No such file"));
}

// ---- IDX files and Fashion-MNIST ----

namespace {

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

// An IDX file of unsigned bytes: the header for `shape`, then `data`.
std::string idx_bytes(const std::vector<uint32_t>& shape, const std::string& data) {
  std::string b = {0, 0, 8, static_cast<char>(shape.size())};
  for (uint32_t s : shape)
    for (int shift : {24, 16, 8, 0}) b += static_cast<char>((s >> shift) & 0xff);
  return b + data;
}

// Image i has every pixel equal to 10 * i + 3 except pixel (row 1, column 2) = 255; label i % 10.
void write_fashion(const std::string& dir, const std::string& prefix, uint32_t n,
                   int64_t label_offset = 0) {
  std::string pixels, labels;
  for (uint32_t i = 0; i < n; ++i) {
    std::string image(28 * 28, static_cast<char>(10 * i + 3));
    image[28 + 2] = static_cast<char>(255);
    pixels += image;
    labels += static_cast<char>((i + label_offset) % 10);
  }
  write_gz(dir + "/" + prefix + "-images-idx3-ubyte.gz", idx_bytes({n, 28, 28}, pixels));
  write_gz(dir + "/" + prefix + "-labels-idx1-ubyte.gz", idx_bytes({n}, labels));
}

}  // namespace

TEST_CASE("idx: gzip or plain files read back, corrupt ones name the path and the problem") {
  TempDir tmp;
  const std::string data = "\x01\x02\x03\x04\x05\x06";
  write_gz(tmp / "a.gz", idx_bytes({2, 3}, data));
  const IdxArray a = read_idx(tmp / "a.gz");
  CHECK(a.shape == std::vector<int64_t>{2, 3});
  CHECK(a.data == std::vector<uint8_t>{1, 2, 3, 4, 5, 6});
  write_file(tmp / "plain", idx_bytes({6}, data));
  CHECK(read_idx(tmp / "plain").shape == std::vector<int64_t>{6});

  const std::vector<std::pair<std::string, std::string>> corrupt = {
      {std::string("\x01\x00\x08\x01\x00\x00\x00\x01x", 9),
       ": not an IDX file (it does not start with the magic bytes 00 00)"},
      {"hello, world", ": not an IDX file"},
      {"", ": not an IDX file"},
      {std::string("\x00\x00\x0d\x01\x00\x00\x00\x01x", 9),
       ": IDX element type 13, expected 8 (unsigned bytes)"},
      {std::string("\x00\x00\x08\x02\x00\x00\x00\x01\x00\x00", 10),
       ": truncated: the header ends inside the size of dimension 1"},
      {idx_bytes({2, 3}, "\x01\x02\x03"),
       ": truncated: the header announces 6 bytes of data for shape [2, 3], the file holds 3"},
      {idx_bytes({2, 2}, "\x01\x02\x03\x04\x05"),
       ": more bytes than the header announces (4 for shape [2, 2])"},
  };
  for (size_t i = 0; i < corrupt.size(); ++i) {
    CAPTURE(i);
    const std::string path = tmp / ("c" + std::to_string(i) + ".gz");
    write_gz(path, corrupt[i].first);
    CHECK(starts_with(error_of([&] { read_idx(path); }), path + corrupt[i].second));
  }
  // A damaged gzip stream: zlib's own complaint.
  std::string gz = read_file(tmp / "a.gz");
  gz.resize(gz.size() - 12);  // cut into the compressed data and the trailer
  write_file(tmp / "cut.gz", gz);
  const std::string cut = error_of([&] { read_idx(tmp / "cut.gz"); });
  CHECK(starts_with(cut, tmp / "cut.gz" + ": "));
  CHECK(cut != "(no error)");
  CHECK(error_of([&] { read_idx(tmp / "missing.gz"); }) ==
        "cannot open " + tmp / "missing.gz" + ": No such file or directory");
}

TEST_CASE("fashion_mnist: pixels as tokens, the validation split carved from training") {
  TempDir tmp;
  write_fashion(tmp.path.string(), "train", 8);
  write_fashion(tmp.path.string(), "t10k", 5, 3);
  const TaskConfig c = task_config({"task.name=fashion_mnist", "task.path=" + tmp.path.string(),
                                    "task.train_size=4", "task.val_size=2", "task.test_size=5"});
  const auto task = make_task(c);
  const TaskSpec& spec = task->spec();
  CHECK(spec.grid == std::vector<int64_t>{28, 28});
  CHECK(spec.max_input_len == 784);
  CHECK(spec.vocab_size == 257);
  CHECK(spec.pad_id == 0);
  CHECK(spec.num_classes == 10);
  // Validation: the last 2 training images, 6 and 7, in order.
  const std::vector<Example>& val = task->examples(Split::val);
  REQUIRE(val.size() == 2);
  CHECK(val[0].targets == std::vector<int64_t>{6});
  CHECK(val[1].inputs[0] == 1 + 73);
  CHECK(val[1].inputs[28 + 2] == 1 + 255);
  CHECK(val[1].inputs.size() == 784);
  // Training: 4 of the first 6, in increasing order, each image matching its label.
  std::vector<int64_t> labels;
  for (const Example& e : task->examples(Split::train)) {
    labels.push_back(e.targets[0]);
    CHECK(e.inputs[0] == 1 + 10 * e.targets[0] + 3);
  }
  CHECK(labels.size() == 4);
  CHECK(std::is_sorted(labels.begin(), labels.end()));
  CHECK(labels.back() <= 5);
  // Test: the whole test file; label (i + 3) % 10 for image i.
  const std::vector<Example>& test = task->examples(Split::test);
  REQUIRE(test.size() == 5);
  CHECK(test[2].targets == std::vector<int64_t>{5});
  CHECK(test[2].inputs[5] == 1 + 23);
  check_deterministic(c);

  TaskConfig q = c;
  q.levels = 4;  // token = 1 + pixel * 4 / 256
  const auto quantised = make_task(q);
  CHECK(quantised->spec().vocab_size == 5);
  CHECK(quantised->examples(Split::val)[1].inputs[0] == 1 + 73 * 4 / 256);
  CHECK(quantised->examples(Split::val)[1].inputs[28 + 2] == 4);

  TaskConfig big = c;
  big.train_size = 7;
  CHECK(error_of([&] { make_task(big); }) ==
        "config: task.train_size 7 exceeds the 6 train images of " + tmp.path.string());
  big = c;
  big.val_size = 8;
  CHECK(starts_with(error_of([&] { make_task(big); }),
                    "config: task.val_size 8 leaves no training images"));
}

TEST_CASE("fashion_mnist: absent or inconsistent files are named") {
  TempDir tmp;
  const std::string dir = tmp.path.string();
  const TaskConfig c = task_config({"task.name=fashion_mnist", "task.path=" + dir,
                                    "task.train_size=2", "task.val_size=1", "task.test_size=1"});
  const std::string absent = error_of([&] { make_task(c); });
  CHECK(absent == "fashion_mnist: " + dir +
                      "/train-images-idx3-ubyte.gz is missing (install Debian's package "
                      "dataset-fashion-mnist, or point task.path at a directory holding its four "
                      "files)");

  write_fashion(dir, "t10k", 2);
  write_fashion(dir, "train", 4);
  write_gz(dir + "/train-labels-idx1-ubyte.gz", idx_bytes({3}, "\x01\x02\x03"));
  CHECK(error_of([&] { make_task(c); }) ==
        "fashion_mnist: " + dir +
            "/train-labels-idx1-ubyte.gz holds shape [3], expected (4) to "
            "match " +
            dir + "/train-images-idx3-ubyte.gz");
  write_gz(dir + "/train-labels-idx1-ubyte.gz", idx_bytes({4}, "\x01\x02\x0c\x03"));
  CHECK(error_of([&] { make_task(c); }) == "fashion_mnist: " + dir +
                                               "/train-labels-idx1-ubyte.gz: label 12 of image 2 "
                                               "is not a class 0-9");
  write_gz(dir + "/train-images-idx3-ubyte.gz", idx_bytes({4, 14, 14}, std::string(784, 'a')));
  CHECK(starts_with(error_of([&] { make_task(c); }),
                    "fashion_mnist: " + dir +
                        "/train-images-idx3-ubyte.gz holds an array of shape "
                        "[4, 14, 14], expected (n, 28, 28)"));
}

TEST_CASE("fashion_mnist: Debian's files, when installed") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz")) {
    MESSAGE("dataset-fashion-mnist is not installed; skipped");
    return;
  }
  const IdxArray images = read_idx(dir + "/t10k-images-idx3-ubyte.gz");
  CHECK(images.shape == std::vector<int64_t>{10000, 28, 28});
  const IdxArray labels = read_idx(dir + "/t10k-labels-idx1-ubyte.gz");
  std::vector<int64_t> counts(10, 0);
  for (uint8_t l : labels.data) ++counts.at(l);
  CHECK(counts == std::vector<int64_t>(10, 1000));  // the test set is balanced
  const auto task = make_task(task_config({"task.name=fashion_mnist", "task.train_size=100",
                                           "task.val_size=100", "task.test_size=100"}));
  CHECK(task->examples(Split::val).size() == 100);
  CHECK(task->examples(Split::test)[0].inputs.size() == 784);
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
  for (const Example& e : make_task(noisy)->examples(Split::train))
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
  CHECK(error_of([&] { make_task(big); }) ==
        "config: task.max_len 200 needs windows of 201 bytes, but the val region of " +
            tmp / "text" + " holds 200 (the file has 2000 bytes: 80% train, 10% val, 10% test)");
  TaskConfig missing = c;
  missing.path = tmp / "nothing";
  CHECK(starts_with(error_of([&] { make_task(missing); }),
                    "chars: cannot open " + tmp / "nothing" + ": No such file"));
}

// ---- spear-eval ----

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
