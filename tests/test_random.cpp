// The counter-based RNG: Philox known answers, the (seed, offset) stream, thread invariance, and
// the distributions. Statistical checks use fixed seeds, so they are deterministic; their
// tolerances are 5 standard errors (or a chi-square p-value of 1e-6), so a correct generator
// passes them for essentially every seed, while a wrong formula fails them by a wide margin.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "tensor/parallel.h"
#include "tensor/random.h"

using namespace spear;

namespace {

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double variance_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / static_cast<double>(v.size() - 1);
}

// Pearson's statistic sum (observed - expected)^2 / expected for equally likely bins.
double chi_square(const std::vector<int64_t>& counts, int64_t total) {
  const double expected = static_cast<double>(total) / static_cast<double>(counts.size());
  double s = 0;
  for (int64_t c : counts) {
    const double d = static_cast<double>(c) - expected;
    s += d * d / expected;
  }
  return s;
}

// Upper 1e-6 quantiles of the chi-square distribution, i.e. x with P(X > x) = 1e-6 for the given
// degrees of freedom (bins - 1). Computed from the regularized upper incomplete gamma function
// Q(df/2, x/2) = 1e-6 by bisection (scipy.stats.chi2.isf(1e-6, df) gives the same).
constexpr double kChi2Df5 = 35.888;
constexpr double kChi2Df6 = 38.258;
constexpr double kChi2Df9 = 44.811;

template <typename T>
std::vector<double> as_doubles(const Tensor& t) {
  std::vector<T> v = t.to_vector<T>();
  return std::vector<double>(v.begin(), v.end());
}

bool message_names(const Error& e, const std::string& op) {
  return std::string(e.what()).rfind(op + ":", 0) == 0;
}

// Runs fn with 1 and then 2 threads, restoring the previous setting.
template <typename Fn>
void with_1_and_2_threads(Fn fn) {
  const int saved = get_num_threads();
  set_num_threads(1);
  Tensor one = fn();
  set_num_threads(2);
  Tensor two = fn();
  set_num_threads(saved);
  REQUIRE(one.dtype() == two.dtype());
  if (one.dtype() == f32) CHECK(one.to_vector<float>() == two.to_vector<float>());
  if (one.dtype() == f64) CHECK(one.to_vector<double>() == two.to_vector<double>());
  if (one.dtype() == i64) CHECK(one.to_vector<int64_t>() == two.to_vector<int64_t>());
}

}  // namespace

TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors") {
  // From Random123's kat_vectors file: "philox4x32 10 <counter x4> <key x2> <output x4>".
  CHECK(philox4x32({0, 0, 0, 0}, {0, 0}) ==
        PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  CHECK(philox4x32({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
        PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  CHECK(philox4x32({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
        PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

TEST_CASE("element i of a draw is a fixed formula of philox(offset + i, seed)") {
  // Seed 0, offset 0: block 0 is the first known-answer vector above.
  Generator g(0);
  CHECK(rand({}, f64, &g).item<double>() ==
        static_cast<double>(0x6627e8d5e169c58dull >> 11) * 0x1p-53);
  g.set_state(0, 0);
  CHECK(rand({}, f32, &g).item<float>() == static_cast<float>(0x6627e8d5u >> 8) * 0x1p-24f);
  // The seed is the key {low word, high word}; the offset fills counter words {0, 1}; the second
  // element uses the next counter.
  g.set_state(0x299f31d0a4093822ull, 0x85a308d3243f6a88ull);
  std::vector<double> v = rand({2}, f64, &g).to_vector<double>();
  for (uint32_t i = 0; i < 2; ++i) {
    PhiloxCounter b = philox4x32({0x243f6a88 + i, 0x85a308d3, 0, 0}, {0xa4093822, 0x299f31d0});
    CHECK(v[i] == static_cast<double>((uint64_t{b[0]} << 32 | b[1]) >> 11) * 0x1p-53);
  }
  // randint(0, 2^k) is the top k bits of the first 64-bit word.
  g.set_state(0, 0);
  CHECK(randint(0, 1 << 20, {}, &g).item<int64_t>() == static_cast<int64_t>(0x6627e8d5u >> 12));
  // randn: sqrt(-2 ln u1) cos(2 pi u2), u1 from the first 52 bits (+ half), u2 from words 2-3.
  g.set_state(0, 0);
  const double u1 = (static_cast<double>(0x6627e8d5e169c58dull >> 12) + 0.5) * 0x1p-52;
  const double u2 = static_cast<double>(0xbc57ac4c9b00dbd8ull >> 11) * 0x1p-53;
  const double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * 3.14159265358979323846 * u2);
  CHECK(randn({}, f64, &g).item<double>() == doctest::Approx(z).epsilon(1e-15));
}

TEST_CASE("f32 draws are the f64 draws at lower precision") {
  Generator g(11);
  std::vector<float> u32 = rand({1000}, f32, &g).to_vector<float>();
  g.set_state(11, 0);
  std::vector<double> u64 = rand({1000}, f64, &g).to_vector<double>();
  g.set_state(11, 0);
  std::vector<float> n32 = randn({1000}, f32, &g).to_vector<float>();
  g.set_state(11, 0);
  std::vector<double> n64 = randn({1000}, f64, &g).to_vector<double>();
  for (size_t i = 0; i < u32.size(); ++i) {
    CHECK(u32[i] == static_cast<float>(std::floor(u64[i] * 0x1p24) * 0x1p-24));  // truncated
    CHECK(n32[i] == static_cast<float>(n64[i]));                                 // rounded
  }
}

TEST_CASE("the generator state: same seed, different seeds, reserve, set_state") {
  Generator a(42), b(42), c(43);
  std::vector<float> first = rand({1000}, f32, &a).to_vector<float>();
  CHECK(first == rand({1000}, f32, &b).to_vector<float>());
  CHECK(first != rand({1000}, f32, &c).to_vector<float>());
  // Each call reserves numel counters, so the next call continues the stream.
  CHECK(a.seed() == 42);
  CHECK(a.offset() == 1000);
  std::vector<float> second = rand({1000}, f32, &a).to_vector<float>();
  CHECK(a.offset() == 2000);
  CHECK(second != first);
  // The second call is exactly elements 1000..1999 of one long call.
  Generator d(42);
  std::vector<float> both = rand({2, 1000}, f32, &d).to_vector<float>();
  CHECK(std::vector<float>(both.begin() + 1000, both.end()) == second);
  // Restoring a saved state replays the stream, across every kind of draw.
  Generator e(7);
  randn({5}, f64, &e);
  const uint64_t seed = e.seed(), offset = e.offset();
  std::vector<int64_t> ints = randint(-5, 5, {100}, &e).to_vector<int64_t>();
  std::vector<double> normals = randn({100}, f64, &e).to_vector<double>();
  e.set_state(seed, offset);
  CHECK(randint(-5, 5, {100}, &e).to_vector<int64_t>() == ints);
  CHECK(randn({100}, f64, &e).to_vector<double>() == normals);
  // reserve itself: returns the old offset.
  Generator f(1);
  CHECK(f.reserve(10) == 0);
  CHECK(f.reserve(5) == 10);
  CHECK(f.offset() == 15);
  // A size-0 draw takes no counters; a 0-d draw takes one.
  CHECK(rand({3, 0}, f32, &f).numel() == 0);
  CHECK(f.offset() == 15);
  CHECK(rand({}, f32, &f).dim() == 0);
  CHECK(f.offset() == 16);
}

TEST_CASE("the default generator is used for a null gen and reset by manual_seed") {
  manual_seed(123);
  CHECK(default_generator().seed() == 123);
  CHECK(default_generator().offset() == 0);
  std::vector<double> x = randn({50}, f64).to_vector<double>();
  CHECK(default_generator().offset() == 50);
  Generator g(123);
  CHECK(randn({50}, f64, &g).to_vector<double>() == x);
  manual_seed(123);
  CHECK(randn({50}, f64).to_vector<double>() == x);
  randperm(10);
  bernoulli_mask({10}, 0.5);
  randint(0, 3, {10});
  rand({10});
  CHECK(default_generator().offset() == 90);
}

TEST_CASE("1 and 2 threads give bit-identical draws") {
  const Shape big = {300, 500};  // 150k elements, split across threads
  for (DType dt : {f32, f64}) {
    with_1_and_2_threads([&] {
      Generator g(5);
      return rand(big, dt, &g);
    });
    with_1_and_2_threads([&] {
      Generator g(5);
      return randn(big, dt, &g);
    });
    with_1_and_2_threads([&] {
      Generator g(5);
      return bernoulli_mask(big, 0.3, dt, &g);
    });
  }
  with_1_and_2_threads([&] {
    Generator g(5);
    return randint(-1000, 1000, big, &g);
  });
}

TEST_CASE("uniforms: range, mean, variance, chi-square on 10 bins") {
  const int64_t n = 1000000;
  for (DType dt : {f32, f64}) {
    Generator g(2024);
    Tensor u = rand({n}, dt, &g);
    std::vector<double> v = dt == f32 ? as_doubles<float>(u) : as_doubles<double>(u);
    CHECK(*std::min_element(v.begin(), v.end()) >= 0.0);
    CHECK(*std::max_element(v.begin(), v.end()) < 1.0);
    // U(0,1): mean 1/2, variance 1/12. The sample variance's own variance is (mu4 - sigma^4) / n
    // with mu4 = 1/80, sigma^4 = 1/144, i.e. 1 / (180 n).
    CHECK(std::abs(mean_of(v) - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
    CHECK(std::abs(variance_of(v) - 1.0 / 12) < 5 * std::sqrt(1.0 / 180 / n));
    std::vector<int64_t> counts(10, 0);
    for (double x : v) ++counts[static_cast<size_t>(x * 10)];
    CHECK(chi_square(counts, n) < kChi2Df9);
  }
}

TEST_CASE("normals: mean, variance, mass within one sigma") {
  const int64_t n = 1000000;
  for (DType dt : {f32, f64}) {
    Generator g(99);
    Tensor z = randn({n}, dt, &g);
    std::vector<double> v = dt == f32 ? as_doubles<float>(z) : as_doubles<double>(z);
    // N(0,1): the mean has variance 1/n, the sample variance 2/n.
    CHECK(std::abs(mean_of(v)) < 5 * std::sqrt(1.0 / n));
    CHECK(std::abs(variance_of(v) - 1) < 5 * std::sqrt(2.0 / n));
    // P(|Z| <= 1) = erf(1/sqrt 2); a fraction's standard error is sqrt(p (1 - p) / n).
    const double p = std::erf(1 / std::sqrt(2.0));
    double inside = 0;
    for (double x : v) inside += std::abs(x) <= 1 ? 1 : 0;
    CHECK(std::abs(inside / n - p) < 5 * std::sqrt(p * (1 - p) / n));
    CHECK(std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); }));
  }
}

TEST_CASE("randint: range, chi-square on 7 values, extreme bounds") {
  const int64_t n = 1000000;
  Generator g(31337);
  Tensor r = randint(0, 7, {n}, &g);
  CHECK(r.dtype() == i64);
  std::vector<int64_t> v = r.to_vector<int64_t>();
  REQUIRE(*std::min_element(v.begin(), v.end()) >= 0);
  REQUIRE(*std::max_element(v.begin(), v.end()) < 7);
  std::vector<int64_t> counts(7, 0);
  for (int64_t x : v) ++counts[static_cast<size_t>(x)];
  CHECK(chi_square(counts, n) < kChi2Df6);
  // A negative low: every value of [-3, 4) appears, nothing outside.
  std::vector<int64_t> small = randint(-3, 4, {10000}, &g).to_vector<int64_t>();
  CHECK(*std::min_element(small.begin(), small.end()) == -3);
  CHECK(*std::max_element(small.begin(), small.end()) == 3);
  CHECK(randint(5, 6, {100}, &g).to_vector<int64_t>() == std::vector<int64_t>(100, 5));
  // The full int64 range (high - low overflows int64): both signs appear.
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> wide = randint(lo, hi, {1000}, &g).to_vector<int64_t>();
  CHECK(std::count_if(wide.begin(), wide.end(), [](int64_t x) { return x < 0; }) > 400);
  CHECK(std::count_if(wide.begin(), wide.end(), [](int64_t x) { return x > 0; }) > 400);
}

TEST_CASE("bernoulli_mask: values, keep fraction, dtypes, p = 0 and 1") {
  const int64_t n = 1000000;
  const double keep = 0.9;
  Generator g(8);
  std::vector<float> m = bernoulli_mask({n}, keep, f32, &g).to_vector<float>();
  CHECK(std::all_of(m.begin(), m.end(), [](float x) { return x == 0.0f || x == 1.0f; }));
  double kept = 0;
  for (float x : m) kept += x;
  CHECK(std::abs(kept / n - keep) < 5 * std::sqrt(keep * (1 - keep) / n));
  // The mask depends on the seed, not on the dtype.
  g.set_state(8, 0);
  std::vector<int64_t> mi = bernoulli_mask({n}, keep, i64, &g).to_vector<int64_t>();
  CHECK(std::equal(m.begin(), m.end(), mi.begin(), [](float a, int64_t b) { return a == b; }));
  CHECK(bernoulli_mask({1000}, 0.0, f64, &g).to_vector<double>() == std::vector<double>(1000, 0));
  CHECK(bernoulli_mask({1000}, 1.0, f64, &g).to_vector<double>() == std::vector<double>(1000, 1));
}

TEST_CASE("randperm: a permutation, and uniform over the 6 orders of 3") {
  Generator g(3);
  std::vector<int64_t> p = randperm(10000, &g).to_vector<int64_t>();
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == arange(10000).to_vector<int64_t>());
  CHECK(p != sorted);
  CHECK(randperm(0, &g).shape() == Shape{0});
  CHECK(randperm(1, &g).to_vector<int64_t>() == std::vector<int64_t>{0});
  // A biased shuffle (e.g. swapping with any position instead of 0..i) fails this easily.
  const int64_t trials = 60000;
  std::vector<int64_t> counts(6, 0);
  for (int64_t t = 0; t < trials; ++t) {
    std::vector<int64_t> q = randperm(3, &g).to_vector<int64_t>();
    // Rank of the order among the 6: first element picks a block of 2, the next two the order.
    ++counts[static_cast<size_t>(q[0] * 2 + (q[1] > q[2] ? 1 : 0))];
  }
  CHECK(chi_square(counts, trials) < kChi2Df5);
}

TEST_CASE("bad arguments give errors naming the function") {
  Generator g(0);
  auto check_error = [](auto fn, const std::string& op) {
    try {
      fn();
      FAIL("no exception for ", op);
    } catch (const Error& e) {
      CHECK_MESSAGE(message_names(e, op), e.what());
    }
  };
  CHECK_THROWS_AS(randint(3, 3, {2}, &g), Error);
  check_error([&] { randint(3, 3, {2}, &g); }, "randint");
  check_error([&] { randint(4, -1, {2}, &g); }, "randint");
  CHECK_THROWS_AS(rand({2}, i64, &g), DTypeError);
  check_error([&] { rand({2}, i64, &g); }, "rand");
  check_error([&] { randn({2}, i64, &g); }, "randn");
  CHECK_THROWS_AS(rand({2, -1}, f32, &g), ShapeError);
  check_error([&] { rand({2, -1}, f32, &g); }, "rand");
  check_error([&] { randn({-3}, f32, &g); }, "randn");
  check_error([&] { randint(0, 2, {-1}, &g); }, "randint");
  check_error([&] { bernoulli_mask({-1}, 0.5, f32, &g); }, "bernoulli_mask");
  check_error([&] { bernoulli_mask({2}, 1.5, f32, &g); }, "bernoulli_mask");
  check_error([&] { bernoulli_mask({2}, std::nan(""), f32, &g); }, "bernoulli_mask");
  check_error([&] { randperm(-1, &g); }, "randperm");
  // A failed call takes no counters.
  CHECK(g.offset() == 0);
}
