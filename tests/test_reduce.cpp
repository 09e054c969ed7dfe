// The reduce, softmax and scan kernel families: values against numpy (tests/data/reduce_cases.json,
// written by tests/tools/gen_reduce_cases.py), edge cases, errors, and thread-count independence.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"
#include "tensor/tensor.h"

using namespace spear;
using nlohmann::json;

namespace {

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

const json& numpy_cases() {
  static const json data = [] {
    std::ifstream in(SPEAR_TEST_DATA_DIR "/reduce_cases.json");
    REQUIRE(in.good());
    return json::parse(in);
  }();
  return data;
}

Tensor from_json(const json& j, DType dtype) {
  Tensor t = tensor(j["values"].get<std::vector<double>>(), j["shape"].get<Shape>());
  return kernels::to_dtype(t, dtype);
}

// The inputs of reduce_cases.json, rebuilt with the views gen_reduce_cases.py describes.
Tensor numpy_input(const std::string& name, DType dtype) {
  const json& inputs = numpy_cases()["inputs"];
  if (name == "col_expanded") return kernels::expand(from_json(inputs["col"], dtype), {2, 3, 4});
  Tensor base = from_json(inputs[name.substr(0, name.find('_'))], dtype);
  if (name == "x_permuted" || name == "ties_permuted") return kernels::permute(base, {2, 0, 1});
  if (name == "x_sliced") return kernels::slice(kernels::slice(base, 1, 0, 3, 2), 2, 1, 4);
  return base;
}

Tensor run_case(const json& c, const Tensor& x) {
  const std::string op = c["op"];
  const auto dims = c["dims"].get<std::vector<int64_t>>();
  const bool keepdim = c["keepdim"];
  if (op == "sum") return kernels::sum(x, dims, keepdim);
  if (op == "mean") return kernels::mean(x, dims, keepdim);
  if (op == "amax") return kernels::amax(x, dims, keepdim);
  if (op == "amin") return kernels::amin(x, dims, keepdim);
  if (op == "var") return kernels::var(x, dims, keepdim, /*unbiased=*/true);
  if (op == "var_biased") return kernels::var(x, dims, keepdim, /*unbiased=*/false);
  if (op == "logsumexp") return kernels::logsumexp(x, dims, keepdim);
  if (op == "sum_to") return kernels::sum_to(x, c["to"].get<Shape>());
  if (op == "softmax") return kernels::softmax(x, dims[0]);
  if (op == "log_softmax") return kernels::log_softmax(x, dims[0]);
  if (op == "cumsum") return kernels::cumsum(x, dims[0]);
  if (op == "cumsum_reverse") return kernels::cumsum(x, dims[0], /*reverse=*/true);
  if (op == "argmax") return kernels::argmax(x, dims[0], keepdim);
  if (op == "argmin") return kernels::argmin(x, dims[0], keepdim);
  FAIL("unknown op in reduce_cases.json: " << op);
  return {};
}

// "" when every actual value is within rtol * max(1, |expected|) of the expected one (the test
// values are O(1), so this is a relative tolerance that does not explode near zero), else the
// first mismatch. NaN matches NaN and infinities must match exactly.
std::string mismatch(const std::vector<double>& actual, const std::vector<double>& expected,
                     double rtol) {
  if (actual.size() != expected.size())
    return str_cat("got ", actual.size(), " values, expected ", expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], e = expected[i];
    const bool ok = std::isnan(e)   ? std::isnan(a)
                    : std::isinf(e) ? a == e
                                    : std::abs(a - e) <= rtol * std::max(1.0, std::abs(e));
    if (!ok) return str_cat("value ", i, ": got ", a, ", expected ", e);
  }
  return "";
}

// f64 results are computed in double, as numpy's are: they may differ by a few roundings of
// sums over at most 24 elements. f32 results are double results rounded to f32 (half an ulp,
// 6e-8 relative) plus, for softmax, one more rounding: 1e-6 leaves margin for both.
double rtol_for(DType dtype) {
  return dtype == f32 ? 1e-6 : 1e-12;
}

template <typename F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

}  // namespace

TEST_CASE("reductions, softmax and cumsum match numpy on contiguous and strided views") {
  int checked = 0;
  for (const json& c : numpy_cases()["cases"]) {
    const std::string input = c["input"];
    const bool integer = starts_with(input, "ties");
    for (DType dtype : integer ? std::vector<DType>{i64} : std::vector<DType>{f32, f64}) {
      INFO(c["op"].get<std::string>(), " of ", input, " (", dtype_name(dtype), ") dims ",
           shape_str(c["dims"].get<Shape>()), " keepdim ", c["keepdim"].get<bool>());
      Tensor y = run_case(c, numpy_input(input, dtype));
      CHECK(y.shape() == c["shape"].get<Shape>());
      CHECK(y.is_contiguous());
      if (y.dtype() == i64)  // integer sums and arg-indices are exact
        CHECK(y.to_vector<int64_t>() == c["values"].get<std::vector<int64_t>>());
      else
        CHECK(mismatch(y.to_vector<double>(), c["values"].get<std::vector<double>>(),
                       rtol_for(dtype)) == "");
      ++checked;
    }
  }
  CHECK(checked > 900);  // the fixture was found and read in full
}

TEST_CASE("argmax and argmin return the first extreme, and NaN propagates") {
  Tensor t = tensor({1, 3, 3, 2, -1, -1});
  CHECK(kernels::argmax(t, 0).item<int64_t>() == 1);
  CHECK(kernels::argmin(t, 0).item<int64_t>() == 4);
  Tensor rows = tensor(std::vector<double>{5, 5, 5, 0, 7, 7}, {2, 3});
  CHECK(kernels::argmax(rows, 1).to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  CHECK(kernels::argmax(rows, 1, /*keepdim=*/true).shape() == Shape{2, 1});
  // Ties across the 4096-element chunks of a long row still give the first position.
  Tensor longrow = zeros({3 * 4096 + 5}, f64);
  longrow.fill_(2.0);
  CHECK(kernels::argmax(longrow, 0).item<int64_t>() == 0);
  kernels::slice(longrow, 0, 5000, 5001).fill_(3.0);
  kernels::slice(longrow, 0, 9000, 9001).fill_(3.0);
  CHECK(kernels::argmax(longrow, 0).item<int64_t>() == 5000);

  // As in PyTorch: amax/amin return NaN if any element is NaN, arg* point at the first NaN.
  Tensor with_nan = tensor(std::vector<double>{1, kNaN, 3, kNaN});
  CHECK(std::isnan(kernels::amax(with_nan).item<double>()));
  CHECK(std::isnan(kernels::amin(with_nan).item<double>()));
  CHECK(kernels::argmax(with_nan, 0).item<int64_t>() == 1);
  CHECK(kernels::argmin(with_nan, 0).item<int64_t>() == 1);
}

TEST_CASE("softmax family: large logits do not overflow, -inf entries get zero weight") {
  for (DType dtype : {f32, f64}) {
    INFO(dtype_name(dtype));
    // numpy: np.exp([1000, 1001] - np.logaddexp(1000, 1001))
    Tensor big = kernels::to_dtype(tensor({1000, 1001}), dtype);
    CHECK(mismatch(kernels::softmax(big, 0).to_vector<double>(),
                   {0.2689414213699951, 0.7310585786300049}, rtol_for(dtype)) == "");
    CHECK(mismatch(kernels::log_softmax(big, 0).to_vector<double>(),
                   {-1.3132616875182228, -0.31326168751822286}, rtol_for(dtype)) == "");
    CHECK(mismatch({kernels::logsumexp(big).item<double>()}, {1001.3132616875182},
                   rtol_for(dtype)) == "");

    // Rows: [0, -inf, 1], all -inf, [-inf, +inf].
    Tensor x = kernels::to_dtype(
        tensor(std::vector<double>{0, -kInf, 1, -kInf, -kInf, -kInf, -kInf, kInf, -kInf}, {3, 3}),
        dtype);
    std::vector<double> sm = kernels::softmax(x, 1).to_vector<double>();
    CHECK(mismatch({sm[0], sm[1], sm[2]}, {0.2689414213699951, 0, 0.7310585786300049},
                   rtol_for(dtype)) == "");
    CHECK(std::isnan(sm[3]));  // no finite max: 0/0, as in PyTorch
    std::vector<double> lsm = kernels::log_softmax(x, 1).to_vector<double>();
    CHECK(mismatch({lsm[0], lsm[1], lsm[2]}, {-1.3132616875182228, -kInf, -0.31326168751822286},
                   rtol_for(dtype)) == "");
    // logsumexp: log(e^0 + e^1), log 0 = -inf for the all -inf row, +inf for a row holding +inf.
    CHECK(mismatch(kernels::logsumexp(x, {1}).to_vector<double>(),
                   {1.3132616875182228, -kInf, kInf}, rtol_for(dtype)) == "");
  }
}

TEST_CASE("0-d, size-1 and empty inputs") {
  Tensor s = scalar_tensor(2.5, f64);
  for (int64_t d : {0, -1}) {
    CHECK(kernels::sum(s, {d}).shape() == Shape{});
    CHECK(kernels::amax(s, {d}, /*keepdim=*/true).item<double>() == 2.5);
    CHECK(kernels::argmax(s, d).item<int64_t>() == 0);
    CHECK(kernels::cumsum(s, d).item<double>() == 2.5);
    CHECK(kernels::softmax(s, d).item<double>() == 1.0);
  }
  CHECK(kernels::sum(s).item<double>() == 2.5);
  CHECK(kernels::mean(s).item<double>() == 2.5);
  CHECK(kernels::var(s, {}, false, /*unbiased=*/false).item<double>() == 0.0);
  CHECK(std::isnan(kernels::var(s).item<double>()));  // n - 1 = 0, as in PyTorch

  // A size-1 reduced dim copies the values (with keepdim the shape is unchanged).
  Tensor col = tensor(std::vector<double>{1, 2, 3}, {3, 1});
  CHECK(kernels::sum(col, {1}, true).to_vector<double>() == std::vector<double>{1, 2, 3});
  CHECK(kernels::sum(col, {1}, true).shape() == Shape{3, 1});

  // Sum over nothing is 0; reducing a dim of other extent 0 gives an empty result.
  Tensor empty = zeros({3, 0}, f64);
  CHECK(kernels::sum(empty, {1}).to_vector<double>() == std::vector<double>{0, 0, 0});
  CHECK(kernels::sum(empty).item<double>() == 0.0);
  CHECK(kernels::sum(zeros({0}, i64)).item<int64_t>() == 0);
  CHECK(kernels::amax(empty, {0}).shape() == Shape{0});
  CHECK(kernels::logsumexp(empty, {1}).to_vector<double>() == std::vector<double>(3, -kInf));
  CHECK(kernels::cumsum(empty, 1).shape() == Shape{3, 0});
  CHECK(kernels::softmax(empty, 1).shape() == Shape{3, 0});
}

TEST_CASE("var is two-pass: a large mean does not cancel the spread") {
  // numpy: np.var(1e8 + np.array([1., 2., 3., 4.]), ddof=1) == 5/3; E[x^2] - E[x]^2 gives 0 or
  // worse in double here (x^2 ~ 1e16 has an ulp of 2).
  Tensor x = tensor(std::vector<double>{1e8 + 1, 1e8 + 2, 1e8 + 3, 1e8 + 4});
  CHECK(kernels::var(x).item<double>() == doctest::Approx(5.0 / 3.0).epsilon(1e-15));
  CHECK(kernels::var(x, {}, false, /*unbiased=*/false).item<double>() == 1.25);
}

namespace {

// Deterministic values in [-1, 1) from an index (splitmix64), so big inputs need no RNG.
double noise(uint64_t i) {
  uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1p-52 - 1.0;
}

Tensor noise_tensor(const Shape& shape, DType dtype) {
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = noise(i);
  return kernels::to_dtype(tensor(v, shape), dtype);
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && a.is_contiguous() &&
         b.is_contiguous() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.numel() * itemsize(a.dtype())) == 0;
}

}  // namespace

TEST_CASE("f32 sums are double sums over fixed 4096-element chunks, rounded once") {
  const int64_t n = 1000003;  // not a multiple of the chunk
  Tensor x = noise_tensor({n}, f32);
  std::vector<float> v = x.to_vector<float>();
  double total = 0;
  for (int64_t begin = 0; begin < n; begin += 4096) {
    double chunk = 0;
    for (int64_t i = begin; i < std::min(n, begin + 4096); ++i) chunk += v[i];
    total += chunk;
  }
  CHECK(kernels::sum(x).item<float>() == static_cast<float>(total));
  CHECK(kernels::mean(x).item<float>() == static_cast<float>(total / n));
  // A full reduction and a row reduction of the same elements add in the same order.
  CHECK(bit_identical(kernels::sum(kernels::view(x, {1, n}), {1}),
                      kernels::view(kernels::sum(x), {1})));
}

TEST_CASE("column and bundled layouts add in the same order as contiguous rows") {
  // Summing the leading dims of a contiguous tensor reads it in place as columns; softmax and
  // cumsum along a middle dim walk bundles of 16 neighbouring rows. Either must give the bits of
  // the same rows copied out contiguously. 37 rows = two bundles and a partial one; 9000 reduced
  // elements = three chunks.
  for (DType dtype : {f32, f64}) {
    INFO(dtype_name(dtype));
    Tensor x = noise_tensor({3, 3000, 37}, dtype);
    Tensor rows = kernels::contiguous(kernels::permute(x, {2, 0, 1}));  // (37, 3, 3000)
    CHECK(bit_identical(kernels::sum(x, {0, 1}), kernels::sum(rows, {1, 2})));
    CHECK(bit_identical(kernels::mean(x, {0, 1}), kernels::mean(rows, {1, 2})));
    CHECK(bit_identical(kernels::var(x, {0, 1}), kernels::var(rows, {1, 2})));

    Tensor along = kernels::contiguous(kernels::permute(x, {0, 2, 1}));  // (3, 37, 3000)
    auto back = [](const Tensor& t) { return kernels::contiguous(kernels::permute(t, {0, 2, 1})); };
    CHECK(bit_identical(kernels::softmax(x, 1), back(kernels::softmax(along, 2))));
    CHECK(bit_identical(kernels::log_softmax(x, 1), back(kernels::log_softmax(along, 2))));
    CHECK(bit_identical(kernels::cumsum(x, 1), back(kernels::cumsum(along, 2))));
    CHECK(bit_identical(kernels::cumsum(x, 1, true), back(kernels::cumsum(along, 2, true))));
  }
}

TEST_CASE("every kernel gives bit-identical results with 1 and 2 threads") {
  const int before = get_num_threads();
  // 150k elements: large enough that parallel_for splits rows, chunks and scans.
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>>
      kernels_under_test = {
          {"sum all", [](const Tensor& x) { return kernels::sum(x); }},
          {"sum rows", [](const Tensor& x) { return kernels::sum(x, {1}); }},
          {"sum cols", [](const Tensor& x) { return kernels::sum(x, {0}); }},
          {"mean all", [](const Tensor& x) { return kernels::mean(x); }},
          {"mean rows", [](const Tensor& x) { return kernels::mean(x, {-1}, true); }},
          {"mean cols", [](const Tensor& x) { return kernels::mean(x, {0}); }},
          {"amax all", [](const Tensor& x) { return kernels::amax(x); }},
          {"amin cols", [](const Tensor& x) { return kernels::amin(x, {0}); }},
          {"argmax rows", [](const Tensor& x) { return kernels::argmax(x, 1); }},
          {"argmin cols", [](const Tensor& x) { return kernels::argmin(x, 0); }},
          {"var all", [](const Tensor& x) { return kernels::var(x); }},
          {"var rows", [](const Tensor& x) { return kernels::var(x, {1}); }},
          {"var cols", [](const Tensor& x) { return kernels::var(x, {0}, false, false); }},
          {"softmax rows", [](const Tensor& x) { return kernels::softmax(x, 1); }},
          {"softmax cols", [](const Tensor& x) { return kernels::softmax(x, 0); }},
          {"log_softmax rows", [](const Tensor& x) { return kernels::log_softmax(x, -1); }},
          {"logsumexp all", [](const Tensor& x) { return kernels::logsumexp(x); }},
          {"logsumexp rows", [](const Tensor& x) { return kernels::logsumexp(x, {1}); }},
          {"cumsum rows", [](const Tensor& x) { return kernels::cumsum(x, 1); }},
          {"cumsum cols reversed", [](const Tensor& x) { return kernels::cumsum(x, 0, true); }},
          {"sum_to",
           [](const Tensor& x) {
             return kernels::sum_to(x, {1, 500});
           }},
      };
  for (DType dtype : {f32, f64}) {
    Tensor wide = noise_tensor({300, 500}, dtype);
    Tensor transposed = kernels::transpose(noise_tensor({500, 300}, dtype), 0, 1);
    for (const Tensor& x : {wide, transposed})
      for (const auto& [name, f] : kernels_under_test) {
        INFO(name, " (", dtype_name(dtype), x.is_contiguous() ? ", contiguous)" : ", transposed)");
        set_num_threads(1);
        Tensor one = f(x);
        set_num_threads(2);
        CHECK(bit_identical(one, f(x)));
      }
    Tensor million = noise_tensor({1000000}, dtype);
    set_num_threads(1);
    Tensor one = kernels::sum(million);
    set_num_threads(2);
    CHECK(bit_identical(one, kernels::sum(million)));
  }
  std::vector<int64_t> iv(1000000);
  for (size_t i = 0; i < iv.size(); ++i) iv[i] = static_cast<int64_t>(noise(i) * 1000);
  Tensor ints = tensor(iv, {1000, 1000});
  auto int_kernels = [&] {
    return std::vector<Tensor>{kernels::sum(ints), kernels::amax(ints, {0}),
                               kernels::argmax(ints, 1), kernels::cumsum(ints, 0)};
  };
  set_num_threads(1);
  std::vector<Tensor> one = int_kernels();
  set_num_threads(2);
  std::vector<Tensor> two = int_kernels();
  for (size_t i = 0; i < one.size(); ++i) CHECK(bit_identical(one[i], two[i]));
  set_num_threads(before);
}

TEST_CASE("bad arguments throw errors that name the op") {
  Tensor x = zeros({2, 3, 4});
  auto check_error = [](const std::string& message, const std::string& op,
                        const std::string& part) {
    INFO(op, ": ", message);
    CHECK(starts_with(message, op + ": "));
    CHECK(message.find(part) != std::string::npos);
  };
  CHECK_THROWS_AS(kernels::sum(x, {3}), ShapeError);
  check_error(error_message([&] { kernels::sum(x, {3}); }), "sum", "out of range");
  check_error(error_message([&] { kernels::mean(x, {-4}); }), "mean", "out of range");
  check_error(error_message([&] { kernels::argmax(x, 5); }), "argmax", "out of range");
  check_error(error_message([&] { kernels::softmax(x, 3); }), "softmax", "out of range");
  check_error(error_message([&] { kernels::log_softmax(x, -4); }), "log_softmax", "out of range");
  check_error(error_message([&] { kernels::cumsum(x, 3); }), "cumsum", "out of range");
  check_error(error_message([&] { kernels::logsumexp(x, {7}); }), "logsumexp", "out of range");

  CHECK_THROWS_AS(kernels::sum(x, {1, -2}), ShapeError);
  check_error(error_message([&] { kernels::sum(x, {1, -2}); }), "sum", "more than once");
  check_error(error_message([&] { kernels::var(x, {0, 0}); }), "var", "more than once");
  check_error(error_message([&] { kernels::amax(x, {2, -1}); }), "amax", "more than once");

  Tensor empty = zeros({3, 0});
  CHECK_THROWS_AS(kernels::amax(empty), Error);
  check_error(error_message([&] { kernels::amax(empty); }), "amax", "zero elements");
  check_error(error_message([&] { kernels::amin(empty, {1}); }), "amin", "[3, 0]");
  check_error(error_message([&] { kernels::argmax(empty, 1); }), "argmax", "zero elements");
  check_error(error_message([&] { kernels::argmin(empty, 1); }), "argmin", "zero elements");
  CHECK(kernels::argmin(empty, 0).shape() == Shape{0});  // 0 rows of 3: nothing is empty
  check_error(error_message([&] { kernels::mean(empty); }), "mean", "zero elements");
  check_error(error_message([&] { kernels::var(empty, {1}); }), "var", "zero elements");

  Tensor ids = zeros({4}, i64);
  CHECK_THROWS_AS(kernels::mean(ids), DTypeError);
  check_error(error_message([&] { kernels::mean(ids); }), "mean", "i64");
  check_error(error_message([&] { kernels::var(ids); }), "var", "i64");
  check_error(error_message([&] { kernels::softmax(ids, 0); }), "softmax", "i64");
  check_error(error_message([&] { kernels::logsumexp(ids); }), "logsumexp", "i64");

  CHECK_THROWS_AS(kernels::sum_to(x, {3, 3}), ShapeError);
  check_error(error_message([&] { kernels::sum_to(x, {3, 3}); }), "sum_to", "[2, 3, 4]");
  check_error(error_message([&] { kernels::sum_to(x, {5, 2, 3, 4}); }), "sum_to", "[5, 2, 3, 4]");
  check_error(error_message([&] { kernels::sum_to(x, {2, 3, 5}); }), "sum_to", "broadcast");
  check_error(error_message([&] { kernels::sum_to(zeros({1, 3}), {2, 3}); }), "sum_to", "[2, 3]");
}
