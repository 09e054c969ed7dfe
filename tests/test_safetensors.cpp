// safetensors I/O: round trips, the exact bytes spear writes, a file written by numpy, a corpus
// of malformed files, atomic saves, and a numpy reader opening a file spear wrote.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "tensor/kernels/kernels.h"
#include "tensor/safetensors.h"

using namespace spear;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / str_cat("spear_safetensors_", getpid(), "_", counter++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// The 8-byte little-endian length, then `rest` (the header and the data).
std::string with_length(uint64_t length, const std::string& rest) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((length >> (8 * i)) & 0xff);
  return out + rest;
}

std::string file_bytes(const std::string& header, const std::string& data) {
  return with_length(header.size(), header + data);
}

std::string f32_bytes(const std::vector<float>& values) {
  std::string out(values.size() * sizeof(float), '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

doctest::Contains contains(const std::string& fragment) {
  return doctest::Contains(fragment.c_str());
}

template <typename T>
void check_same_tensor(const Tensor& loaded, const Tensor& saved) {
  CHECK(loaded.dtype() == saved.dtype());
  CHECK(loaded.shape() == saved.shape());
  CHECK(loaded.is_contiguous());
  CHECK(loaded.to_vector<T>() == saved.to_vector<T>());
}

}  // namespace

TEST_CASE("save then load gives back every tensor, in order, with its metadata") {
  TempDir dir;
  Tensor w = tensor(std::vector<float>{0.5f, -1.25f, 3.0f, 0.1f, 8.0f, -0.0f}, {2, 3});
  Tensor w_t = kernels::transpose(w, 0, 1);                            // (3, 2), strides (1, 3)
  Tensor b = kernels::slice(arange(0.0, 1.0, 0.1, f64), 0, 1, 10, 3);  // offset 1, stride 3
  Tensor expanded = kernels::expand(tensor({1.5f, -2.0f}, {2, 1}), {2, 3});  // stride 0
  Tensor ids = tensor(std::vector<int64_t>{-(int64_t{1} << 62), 0, (int64_t{1} << 53) + 1}, {3});
  Tensor step = scalar_tensor(1.0 / 3.0, f64);  // rank 0
  Tensor none = zeros({0, 3});
  Tensor none_ids = zeros({4, 0}, i64);
  REQUIRE_FALSE(w_t.is_contiguous());
  REQUIRE_FALSE(b.is_contiguous());
  REQUIRE_FALSE(expanded.is_contiguous());

  NamedTensors saved = {{"w_t", w_t},   {"b", b},       {"expanded", expanded}, {"ids", ids},
                        {"step", step}, {"none", none}, {"none_ids", none_ids}, {"w", w}};
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"config", R"({"d": 1})"}};
  const std::string path = dir / "model.safetensors";
  save_safetensors(path, saved, metadata);

  SafetensorsFile loaded = load_safetensors(path);
  CHECK(loaded.metadata == metadata);
  REQUIRE(loaded.tensors.size() == saved.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    CAPTURE(saved[i].first);
    CHECK(loaded.tensors[i].first == saved[i].first);
    const Tensor& t = loaded.tensors[i].second;
    SPEAR_DISPATCH_ALL(saved[i].second.dtype(), "test",
                       [&] { check_same_tensor<scalar_t>(t, saved[i].second); });
  }
  CHECK(loaded.at("w_t").to_vector<float>() ==
        std::vector<float>{0.5f, 0.1f, -1.25f, 8.0f, 3.0f, -0.0f});
  CHECK(loaded.at("b").to_vector<double>() == b.to_vector<double>());
  CHECK(loaded.at("step").item<double>() == 1.0 / 3.0);
  CHECK(loaded.at("ids").to_vector<int64_t>()[2] == (int64_t{1} << 53) + 1);
  CHECK_THROWS_WITH_AS(loaded.at("missing"), doctest::Contains("no tensor named 'missing'"), Error);

  // No tensors at all is a valid file too.
  save_safetensors(dir / "nothing.safetensors", {});
  SafetensorsFile nothing = load_safetensors(dir / "nothing.safetensors");
  CHECK(nothing.tensors.empty());
  CHECK(nothing.metadata.empty());
}

TEST_CASE("save writes the exact bytes of the format") {
  TempDir dir;
  save_safetensors(dir / "a.safetensors", {{"a", tensor({1.0f, 2.0f})}});
  // 54 bytes of JSON padded with 2 spaces to 56 (0x38), so the data starts at byte 64.
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  )";
  const std::string expected = std::string("\x38\0\0\0\0\0\0\0", 8) + header +
                               std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);  // 1.0f, 2.0f
  CHECK(read_bytes(dir / "a.safetensors") == expected);

  // Metadata goes first in the header; the header length keeps the data 8-byte aligned.
  save_safetensors(dir / "m.safetensors", {{"x", scalar_tensor(7, i64)}}, {{"k", "v"}});
  const std::string bytes = read_bytes(dir / "m.safetensors");
  const std::string start = R"({"__metadata__":{"k":"v"},"x":)";
  CHECK(bytes.compare(8, start.size(), start) == 0);
  CHECK(bytes.size() % 8 == 0);
}

TEST_CASE("load reads a file written by numpy (tests/tools/make_golden_safetensors.py)") {
  SafetensorsFile golden = load_safetensors(SPEAR_TEST_DATA_DIR "/safetensors/golden.safetensors");
  CHECK(golden.metadata ==
        std::map<std::string, std::string>{{"format", "pt"}, {"writer", "numpy"}});
  // The header lists the tensors by name; load returns them in data order.
  REQUIRE(golden.tensors.size() == 4);
  CHECK(golden.tensors[0].first == "weight");
  CHECK(golden.tensors[1].first == "ids");
  CHECK(golden.tensors[2].first == "scale");
  CHECK(golden.tensors[3].first == "empty");

  const Tensor& weight = golden.at("weight");
  CHECK(weight.dtype() == f32);
  CHECK(weight.shape() == Shape{2, 3});
  std::vector<float> w = weight.to_vector<float>();
  CHECK(w == std::vector<float>{0.1f, -2.5f, 3.0f, 1e-30f, -0.0f, 65504.0f});
  CHECK(std::signbit(w[4]));
  CHECK(golden.at("ids").to_vector<int64_t>() ==
        std::vector<int64_t>{-(int64_t{1} << 53) - 1, 0, int64_t{1} << 62, -1});
  CHECK(golden.at("scale").shape().empty());
  CHECK(golden.at("scale").dtype() == f64);
  CHECK(golden.at("scale").item<double>() == 3.141592653589793);
  CHECK(golden.at("empty").shape() == Shape{0, 3});
}

TEST_CASE("load accepts valid files that spear itself would not write") {
  TempDir dir;
  // No padding, newlines in the header, entries listed in reverse data order, two empty tensors
  // at one offset, and an extra key in an entry (ignored, as other readers do).
  const std::string header = R"({
    "c": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12], "note": "x"},
    "e2": {"dtype": "I64", "shape": [0], "data_offsets": [8, 8]},
    "e1": {"dtype": "F64", "shape": [2, 0], "data_offsets": [8, 8]},
    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})";
  write_bytes(dir / "f.safetensors", file_bytes(header, f32_bytes({1.0f, 2.0f, 3.0f})));
  SafetensorsFile f = load_safetensors(dir / "f.safetensors");
  REQUIRE(f.tensors.size() == 4);
  // By offset; the empty tensors at offset 8 keep their header order.
  CHECK(f.tensors[0].first == "a");
  CHECK(f.tensors[1].first == "e2");
  CHECK(f.tensors[2].first == "e1");
  CHECK(f.tensors[3].first == "c");
  CHECK(f.at("a").to_vector<float>() == std::vector<float>{1.0f, 2.0f});
  CHECK(f.at("c").to_vector<float>() == std::vector<float>{3.0f});
  CHECK(f.at("e1").shape() == Shape{2, 0});
}

TEST_CASE("load rejects malformed files with an IOError naming the file and the problem") {
  TempDir dir;
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight = f32_bytes({1.0f, 2.0f});
  auto one = [&](const std::string& entry, const std::string& data) {
    return file_bytes("{\"a\":" + entry + "}", data);
  };
  struct Malformed {
    std::string what;
    std::string bytes;
    const char* fragment;
  };
  const std::vector<Malformed> corpus = {
      {"empty file", "", "0 bytes, shorter than the 8-byte header length"},
      {"truncated length", std::string("\x05\0\0", 3), "shorter than the 8-byte header length"},
      {"lying header length", with_length(1000, "{}"),
       "header length 1000 is larger than the rest"},
      {"header over 100 MB", with_length(200'000'000, "{}"), "exceeds the limit"},
      {"header length 0", with_length(0, ""), "must start with '{'"},
      {"JSON array", file_bytes("[1, 2]", ""), "must start with '{'"},
      {"bad JSON", file_bytes(R"({"a": {"dtype": )", ""), "not valid JSON"},
      {"invalid UTF-8", file_bytes("{\"a\xff\": 1}", ""), "not valid JSON"},
      {"entry not an object", one("3", ""), "tensor 'a': entry is not a JSON object"},
      {"missing dtype", one(R"({"shape":[2],"data_offsets":[0,8]})", eight),
       "tensor 'a': missing or non-string \"dtype\""},
      {"BF16", one(R"({"dtype":"BF16","shape":[2],"data_offsets":[0,4]})", "1234"),
       "tensor 'a': dtype 'BF16' is not supported"},
      {"I32", one(R"({"dtype":"I32","shape":[2],"data_offsets":[0,8]})", eight),
       "tensor 'a': dtype 'I32' is not supported"},
      {"shape not a list", one(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})", eight),
       "tensor 'a': missing or non-list \"shape\""},
      {"negative shape", one(R"({"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]})", eight),
       "tensor 'a': shape [-1,2] has a negative size"},
      {"fractional shape", one(R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,8]})", eight),
       "must be a list of non-negative integers"},
      {"overflowing shape",
       one(R"({"dtype":"F32","shape":[1000000000000000000,1000000000000000000],)"
           R"("data_offsets":[0,8]})",
           eight),
       "tensor 'a': shape [1000000000000000000,1000000000000000000] is too large"},
      {"overflow behind a zero size",
       one(R"({"dtype":"F32","shape":[0,4000000000,4000000000],"data_offsets":[0,0]})", ""),
       "overflows 64 bits"},
      {"shape size over int64",
       one(R"({"dtype":"F32","shape":[10000000000000000000],"data_offsets":[0,8]})", eight),
       "must be a list of non-negative integers"},
      {"missing data_offsets", one(R"({"dtype":"F32","shape":[2]})", eight),
       "tensor 'a': \"data_offsets\" must be a list [BEGIN, END]"},
      {"one data offset", one(R"({"dtype":"F32","shape":[2],"data_offsets":[8]})", eight),
       "\"data_offsets\" must be a list [BEGIN, END]"},
      {"negative data offset", one(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})", eight),
       "\"data_offsets\" must be a list [BEGIN, END]"},
      {"END before BEGIN", one(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})", eight),
       "tensor 'a': data_offsets [8,0] end before they begin"},
      {"offsets past the file",
       one(R"({"dtype":"F32","shape":[100],"data_offsets":[0,400]})", eight),
       "tensor 'a': data_offsets [0,400] reach past the end of the data buffer (8 bytes)"},
      {"numel/bytes mismatch", one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", eight),
       "tensor 'a': shape [3] of F32 needs 12 bytes but data_offsets [0,8] span 8"},
      {"overlapping ranges",
       file_bytes("{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  eight + "4567"),
       "tensor 'b' (data_offsets [4,12]) overlaps tensor 'a'"},
      {"hole between ranges",
       file_bytes("{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                  eight + "4567" + eight),
       "hole of 4 bytes in the data buffer before tensor 'b'"},
      {"hole at the start",
       one(R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})", "4567" + eight),
       "hole of 4 bytes in the data buffer before tensor 'a'"},
      {"trailing unindexed bytes", file_bytes("{" + a + "}", eight + "4567"),
       "the last 4 bytes of the data buffer belong to no tensor"},
      {"data but no tensors", file_bytes("{}", "4567"), "the last 4 bytes"},
      {"duplicate tensor names", file_bytes("{" + a + "," + a + "}", eight),
       "duplicate tensor name 'a'"},
      {"duplicate key in an entry",
       one(R"({"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]})", eight),
       "duplicate key 'dtype'"},
      {"metadata not an object", file_bytes(R"({"__metadata__":[1]})", ""),
       "__metadata__ must be a JSON object"},
      {"non-string metadata", file_bytes(R"({"__metadata__":{"step":3},)" + a + "}", eight),
       "__metadata__ must map strings to strings, but key 'step' holds 3"},
      {"empty tensor name",
       file_bytes(R"({"":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", ""),
       "empty tensor name"},
  };
  for (size_t i = 0; i < corpus.size(); ++i) {
    const Malformed& m = corpus[i];
    CAPTURE(m.what);
    const std::string path = dir / str_cat("bad", i, ".safetensors");
    write_bytes(path, m.bytes);
    CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains(m.fragment), IOError);
    CHECK_THROWS_WITH_AS(load_safetensors(path), contains("load_safetensors: " + path), IOError);
  }

  CHECK_THROWS_WITH_AS(load_safetensors(dir / "missing.safetensors"),
                       doctest::Contains("cannot open"), IOError);
  CHECK_THROWS_AS(load_safetensors(dir.path.string()), IOError);  // a directory
}

TEST_CASE("save rejects bad names and undefined tensors with an IOError naming the path") {
  TempDir dir;
  const std::string path = dir / "x.safetensors";
  Tensor t = zeros({2});
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"", t}}), doctest::Contains("empty tensor name"),
                       IOError);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"a", t}, {"b", t}, {"a", t}}),
                       doctest::Contains("duplicate tensor name 'a'"), IOError);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"__metadata__", t}}),
                       doctest::Contains("'__metadata__' is reserved"), IOError);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"a", Tensor()}}),
                       doctest::Contains("tensor 'a' is undefined"), IOError);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"bad\xff", t}}), doctest::Contains("UTF-8"),
                       IOError);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"a", t}}, {{"k", "\xff"}}),
                       contains("save_safetensors: " + path), IOError);
  CHECK(fs::is_empty(dir.path));
}

TEST_CASE("a failed save leaves nothing half-written behind") {
  TempDir dir;
  const std::string nowhere = dir / "no/such/dir/model.safetensors";
  CHECK_THROWS_WITH_AS(save_safetensors(nowhere, {{"a", zeros({2})}}),
                       contains("save_safetensors: " + nowhere), IOError);
  CHECK(fs::is_empty(dir.path));

  // A failed save over an existing file keeps the old file.
  const std::string path = dir / "model.safetensors";
  save_safetensors(path, {{"a", tensor({1.0f, 2.0f})}});
  const std::string before = read_bytes(path);
  CHECK_THROWS_AS(save_safetensors(path, {{"a", zeros({3})}, {"a", zeros({3})}}), IOError);
  CHECK(read_bytes(path) == before);
  CHECK(load_safetensors(path).at("a").to_vector<float>() == std::vector<float>{1.0f, 2.0f});

  // The temporary file is written, but renaming it over a directory fails: it must be removed.
  const std::string taken = dir / "taken.safetensors";
  fs::create_directory(taken);
  CHECK_THROWS_WITH_AS(save_safetensors(taken, {{"a", zeros({3})}}),
                       doctest::Contains("cannot rename"), IOError);
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir.path))
    left.push_back(entry.path().filename().string());
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<std::string>{"model.safetensors", "taken.safetensors"});
}

namespace {

// The first interpreter that can import numpy: the one on PATH, else Debian's (python3-numpy
// installs there, while pyenv or venv interpreters often lack it). Empty when there is none.
std::string python_with_numpy() {
  for (const char* python : {"python3", "/usr/bin/python3"})
    if (std::system(str_cat(python, " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0)
      return python;
  return "";
}

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  pclose(pipe);
  return out;
}

}  // namespace

TEST_CASE("numpy reads a file spear wrote (tests/tools/read_safetensors.py)") {
  const std::string python = python_with_numpy();
  if (python.empty()) {
    MESSAGE("skipped: no python3 with numpy");
    return;
  }
  TempDir dir;
  Tensor w = tensor(std::vector<float>{0.5f, -1.25f, 3.0f, 0.1f, 8.0f, -0.0f}, {2, 3});
  Tensor b = tensor(std::vector<double>{0.1, 1.0 / 3.0, -2e300});
  // -(2^53) - 1 has no f64 representation, so only an exact i64 path prints it right.
  Tensor step = kernels::view(tensor(std::vector<int64_t>{-(int64_t{1} << 53) - 1}), {});
  const std::string path = dir / "interop.safetensors";
  save_safetensors(
      path,
      {{"w_t", kernels::transpose(w, 0, 1)}, {"b", b}, {"step", step}, {"none", zeros({0, 3})}},
      {{"format", "pt"}});

  // Python prints floats as the shortest decimal that round-trips the double (0.1f widened to
  // double is 0.10000000149011612), so equal text means bit-equal values.
  const std::string expected =
      "__metadata__ {\"format\": \"pt\"}\n"
      "w_t F32 [3, 2] [0.5, 0.10000000149011612, -1.25, 8.0, 3.0, -0.0]\n"
      "b F64 [3] [0.1, 0.3333333333333333, -2e+300]\n"
      "step I64 [] [-9007199254740993]\n"
      "none F32 [0, 3] []\n";
  CHECK(run(str_cat(python, " '", SPEAR_TEST_DATA_DIR, "/../tools/read_safetensors.py' '", path,
                    "' 2>&1")) == expected);
}
