// The counter-based RNG: Philox known answers, the (seed, offset) stream, thread invariance, and
// the distributions. Statistical checks use fixed seeds, so they are deterministic; their
// tolerances are 5 standard errors (or a chi-square p-value of 1e-6), so a correct generator
// passes them for essentially every seed, while a wrong formula fails them by a wide margin.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "tensor/kernels/fast_log_cos.h"
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

constexpr long double kPi = 3.141592653589793238462643383279502884L;

// |got - exact| in units in the last place of exact rounded to double. The references are long
// double (a 64-bit significand on x86-64), 2^11 times finer than double, so this is the true error
// to within a thousandth of an ulp.
double ulp_error(double got, long double exact) {
  const double e = std::abs(static_cast<double>(exact));
  const double ulp = std::nextafter(e, std::numeric_limits<double>::infinity()) - e;
  return static_cast<double>(std::abs(got - exact) / ulp);
}

// cos(2 pi u) in long double, accurate to its own precision even next to the zeros of cos (where
// cos of a rounded 2 pi u is not): u minus its nearest multiple of 1/4, q/4, is exact and leaves an
// angle of at most pi/4, and cos(2 pi u) is the cosine or sine of it, by q mod 4.
long double cos_2pi_reference(double u) {
  const double q = std::nearbyint(4 * u);
  const long double a = 2 * kPi * (u - q / 4);
  switch (static_cast<int>(q) % 4) {
    case 0:
      return std::cos(a);
    case 1:
      return -std::sin(a);
    case 2:
      return -std::cos(a);
    default:
      return std::sin(a);
  }
}

// randn's uniforms from 64 random bits, as tensor/random.cpp defines them.
double box_muller_u1(uint64_t bits) {
  return (static_cast<double>(bits >> 12) + 0.5) * 0x1p-52;
}
double box_muller_u2(uint64_t bits) {
  return static_cast<double>(bits >> 11) * 0x1p-53;
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

TEST_CASE("fast_log is within 1 ulp of log over randn's inputs and every exponent") {
  REQUIRE(std::numeric_limits<long double>::digits >= 64);
  std::mt19937_64 bits(1);
  std::vector<double> xs;
  // randn's u1 = (m + 0.5) 2^-52: random m, and m near 0 (u1 near 2^-53) and near 2^52 (u1 near
  // 1, where log is near 0).
  for (int i = 0; i < 100000; ++i) xs.push_back(box_muller_u1(bits()));
  for (uint64_t m = 0; m < 1000; ++m) {
    xs.push_back(box_muller_u1(m << 12));
    xs.push_back(box_muller_u1(~m << 12));
  }
  xs.push_back(1.0);
  // Beyond randn: random significands at every exponent, and either side of sqrt(2)/2 times a power
  // of two, where the reduction moves to the next k.
  for (int e = -1021; e <= 1023; ++e) {
    for (int i = 0; i < 20; ++i) xs.push_back(std::ldexp(1 + box_muller_u2(bits()), e - 1));
    const double h = std::ldexp(0x1.6a09e667f3bcdp-1, e);
    xs.insert(xs.end(), {std::nextafter(h, 0.0), h, std::nextafter(h, 2 * h)});
  }
  double worst = 0;
  for (double x : xs)
    worst = std::max(worst, ulp_error(kernels::fast_log(x), std::log(static_cast<long double>(x))));
  // Measured: 0.81 ulp; 0.84 over 2e7 inputs in [2^-53, 1) (glibc's double log: 0.52).
  CHECK(worst <= 1.0);
}

TEST_CASE("cos_2pi is within 2 ulp of cos(2 pi u) for u from 0 to 1") {
  REQUIRE(std::numeric_limits<long double>::digits >= 64);
  std::mt19937_64 bits(2);
  std::vector<double> us;
  // randn's u2 = k 2^-53, random, and within 1000 steps of each multiple of 1/4: the zeros of cos
  // and its extremes, where the reduction changes sides.
  for (int i = 0; i < 200000; ++i) us.push_back(box_muller_u2(bits()));
  for (int q = 0; q <= 4; ++q)
    for (int d = -1000; d <= 1000; ++d) {
      const double u = q / 4.0 + d * 0x1p-53;
      if (u >= 0 && u < 1) us.push_back(u);
    }
  // Tiny u, not of randn's form.
  for (int e = 1; e <= 200; ++e) us.push_back(std::ldexp(1 + box_muller_u2(bits()), -e));
  double worst = 0;
  for (double u : us) worst = std::max(worst, ulp_error(kernels::cos_2pi(u), cos_2pi_reference(u)));
  // Measured: 1.60 ulp; 1.79 over 2e8 random u (glibc's cos is within 1 ulp).
  CHECK(worst <= 2.0);
}

TEST_CASE("randn f64 is the Box-Muller formula to 1e-15 relative") {
  REQUIRE(std::numeric_limits<long double>::digits >= 64);
  // The formula with std functions in long double, of the same Philox blocks: exact to ~1e-18
  // relative, so the difference is randn's own error.
  const int64_t n = 100000;
  Generator g(2718);
  const std::vector<double> z = randn({n}, f64, &g).to_vector<double>();
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const PhiloxCounter b =
        philox4x32({static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), 0, 0}, {2718, 0});
    const double u1 = box_muller_u1(uint64_t{b[0]} << 32 | b[1]);
    const double u2 = box_muller_u2(uint64_t{b[2]} << 32 | b[3]);
    const long double exact =
        std::sqrt(-2 * std::log(static_cast<long double>(u1))) * cos_2pi_reference(u2);
    // |z - exact| <= worst |exact|, also where exact is near 0.
    worst = std::max(worst, static_cast<double>(std::abs(z[i] - exact) / std::abs(exact)));
  }
  // Measured: 4.0e-16, a few ulp (the log, the square root, cos_2pi and the product).
  CHECK(worst <= 1e-15);
}

TEST_CASE("randn: element i depends only on counter offset + i, not on how the range is cut") {
  // randn computes 16 elements at a time. Sizes around that block, and offsets that start inside
  // one, must give exactly the matching elements of one long draw.
  Generator g(77);
  const std::vector<double> all = randn({1000}, f64, &g).to_vector<double>();
  for (int64_t offset : {0, 1, 5, 15, 16, 17, 100}) {
    for (int64_t n : {1, 7, 15, 16, 17, 31, 33, 250}) {
      g.set_state(77, static_cast<uint64_t>(offset));
      CHECK(randn({n}, f64, &g).to_vector<double>() ==
            std::vector<double>(all.begin() + offset, all.begin() + offset + n));
    }
  }
  // An odd size, which the threads split at points that are not multiples of the block.
  for (DType dt : {f32, f64}) {
    with_1_and_2_threads([&] {
      Generator h(5);
      return randn({100003}, dt, &h);
    });
  }
}
