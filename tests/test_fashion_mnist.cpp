// IDX files and the fashion_mnist task (docs/tasks.md), on small gzip files written here and, when
// Debian's dataset-fashion-mnist is installed, on the real ones.
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>

#include "examples/train/idx.h"
#include "task_helpers.h"

using namespace spear;
using namespace spear::train;
using namespace spear::train::testing;

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
    CHECK(starts_with(error_message([&] { read_idx(path); }), path + corrupt[i].second));
  }
  // A damaged gzip stream: zlib's own complaint.
  std::string gz = read_file(tmp / "a.gz");
  gz.resize(gz.size() - 12);  // cut into the compressed data and the trailer
  write_file(tmp / "cut.gz", gz);
  const std::string cut = error_message([&] { read_idx(tmp / "cut.gz"); });
  CHECK(starts_with(cut, tmp / "cut.gz" + ": "));
  CHECK(cut != "(no error)");
  CHECK(error_message([&] { read_idx(tmp / "missing.gz"); }) ==
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

  // 2 x 2 blocks: 196 tokens on a 14 x 14 grid. Block (0, 1) holds pixel (1, 2) = 255 and three
  // pixels 73 of validation image 7: their mean 118.5 rounds down.
  TaskConfig d = c;
  d.downsample = 2;
  const auto pooled = make_task(d);
  CHECK(pooled->spec().grid == std::vector<int64_t>{14, 14});
  CHECK(pooled->spec().max_input_len == 196);
  const std::vector<int64_t>& tokens = pooled->examples(Split::val)[1].inputs;
  REQUIRE(tokens.size() == 196);
  CHECK(tokens[0] == 1 + 73);
  CHECK(tokens[1] == 1 + (3 * 73 + 255) / 4);
  CHECK(tokens[14] == 1 + 73);
  d.downsample = 28;  // the whole image in one token: (783 * 73 + 255) / 784 = 73.2
  CHECK(make_task(d)->examples(Split::val)[1].inputs == std::vector<int64_t>{1 + 73});
  d.downsample = 5;
  CHECK(error_message([&] { make_task(d); }) ==
        "config: task.downsample 5 must divide the image side 28 (1, 2, 4, 7, 14 or 28)");

  TaskConfig big = c;
  big.train_size = 7;
  CHECK(error_message([&] { make_task(big); }) ==
        "config: task.train_size 7 exceeds the 6 train images of " + tmp.path.string());
  big = c;
  big.val_size = 8;
  CHECK(starts_with(error_message([&] { make_task(big); }),
                    "config: task.val_size 8 leaves no training images"));
}

TEST_CASE("fashion_mnist: absent or inconsistent files are named") {
  TempDir tmp;
  const std::string dir = tmp.path.string();
  const TaskConfig c = task_config({"task.name=fashion_mnist", "task.path=" + dir,
                                    "task.train_size=2", "task.val_size=1", "task.test_size=1"});
  const std::string absent = error_message([&] { make_task(c); });
  CHECK(absent == "fashion_mnist: " + dir +
                      "/train-images-idx3-ubyte.gz is missing (install Debian's package "
                      "dataset-fashion-mnist, or point task.path at a directory holding its four "
                      "files)");

  write_fashion(dir, "t10k", 2);
  write_fashion(dir, "train", 4);
  write_gz(dir + "/train-labels-idx1-ubyte.gz", idx_bytes({3}, "\x01\x02\x03"));
  CHECK(error_message([&] { make_task(c); }) ==
        "fashion_mnist: " + dir +
            "/train-labels-idx1-ubyte.gz holds shape [3], expected (4) to "
            "match " +
            dir + "/train-images-idx3-ubyte.gz");
  write_gz(dir + "/train-labels-idx1-ubyte.gz", idx_bytes({4}, "\x01\x02\x0c\x03"));
  CHECK(error_message([&] { make_task(c); }) ==
        "fashion_mnist: " + dir +
            "/train-labels-idx1-ubyte.gz: label 12 of image 2 "
            "is not a class 0-9");
  write_gz(dir + "/train-images-idx3-ubyte.gz", idx_bytes({4, 14, 14}, std::string(784, 'a')));
  CHECK(starts_with(error_message([&] { make_task(c); }),
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
