// SineSPE (spe/spe.h, spec 2): the codes and closed-form kernel against an independent numpy
// implementation, the reference's init, truncation and offset invariance, the fused filter
// against its composed oracle (forward and every gradient), thread-count independence, phase
// accuracy at long range, and errors. Statistical properties (unbiasedness, variance) are in
// test_spe_filter.cpp.
//
// Tolerances, relative to the largest magnitude compared: the fused filter and the composed
// codes round differently (the fused one multiplies x into the bases before the GEMM, the
// composed one after), so they agree to a few ulps of each sum: 1e-10 in f64 (ulp 1e-16, sums
// of a few hundred terms, parameter gradients weighted by 2 pi p up to ~4000) and 1e-5 in f32
// (ulp 6e-8, the same sums). The numpy fixture uses the same formulas in f64: 1e-12.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "autograd/ops.h"
#include "spe/spe.h"
#include "tensor/kernels/kernels.h"
#include "tensor/kernels/spe.h"
#include "tensor/parallel.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tensor/storage.h"

using namespace spear;
using spe::SineSPE;
using V = std::vector<Tensor>;

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

std::vector<double> values(const Tensor& t) {
  REQUIRE(t.defined());
  return kernels::to_dtype(t, f64).to_vector<double>();
}

// max |a - e| <= rtol * max |e|
void check_close(const std::vector<double>& actual, const std::vector<double>& expected,
                 double rtol, const std::string& what) {
  INFO(what);
  REQUIRE(actual.size() == expected.size());
  double scale = 0, worst = 0;
  for (double e : expected) scale = std::max(scale, std::fabs(e));
  for (size_t i = 0; i < actual.size(); ++i)
    worst = std::max(worst, std::fabs(actual[i] - expected[i]));
  CHECK(worst <= rtol * scale);
}
void check_close(const Tensor& actual, const Tensor& expected, double rtol,
                 const std::string& what) {
  REQUIRE(actual.shape() == expected.shape());
  check_close(values(actual), values(expected), rtol, what);
}

Tensor random(const Shape& shape, DType dtype, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, dtype, &gen);
}

// A SineSPE with random frequencies around 0.1 cycles per position (faster than the init's
// 0.009, so that a few positions span whole periods), in `dtype`.
std::shared_ptr<SineSPE> make_code(int64_t H, int64_t D, int64_t R, int64_t K, DType dtype,
                                   uint64_t seed = 5) {
  Generator gen(seed);
  auto code = std::make_shared<SineSPE>(H, D, R, K, seed, &gen);
  code->to(dtype);
  code->freqs.copy_(random({H, D, K}, f64, seed + 1) - 2.0);
  return code;
}

// The composed filter: qhat = sum_d q * Qbar, from the differentiable codes.
std::pair<Tensor, Tensor> composed_filter(const SineSPE& code, const Tensor& q, const Tensor& k,
                                          int64_t offset) {
  auto [qbar, kbar] = code.codes(q.size(1), offset);
  return {sum(q.unsqueeze(-1) * qbar, {3}), sum(k.unsqueeze(-1) * kbar, {3})};
}

// Forward values and the gradients of q, k, freqs, offsets, gains for
// loss = sum(qhat * wq) + sum(khat * wk).
struct Run {
  std::vector<double> qhat, khat;
  std::vector<std::vector<double>> grads;
};
using FilterFn = std::function<std::pair<Tensor, Tensor>(const Tensor&, const Tensor&)>;
Run run(SineSPE& code, const Tensor& q, const Tensor& k, const FilterFn& fn) {
  V leaves = {q, k, code.freqs, code.offsets, code.gains};
  for (Tensor l : leaves) l.zero_grad();
  auto [qhat, khat] = fn(q, k);
  Tensor wq = random(qhat.shape(), qhat.dtype(), 91), wk = random(khat.shape(), khat.dtype(), 92);
  (sum(qhat * wq) + sum(khat * wk)).backward();
  Run r{values(qhat), values(khat), {}};
  for (const Tensor& l : leaves) r.grads.push_back(values(l.grad()));
  return r;
}

// The bases of the spec in double, at position p: (H, D, 2K) values for a (H, D, K) f, theta.
std::vector<double> bases_at(const std::vector<double>& f, const std::vector<double>& theta,
                             double p) {
  std::vector<double> omega;
  for (size_t j = 0; j < f.size(); ++j) {
    const double alpha = kTwoPi * f[j] * p + theta[j];
    omega.push_back(std::cos(alpha));
    omega.push_back(std::sin(alpha));
  }
  return omega;
}

}  // namespace

TEST_CASE("sine SPE: codes, kernel and gated filter match the numpy fixture") {
  SafetensorsFile file = load_safetensors(SPEAR_TEST_DATA_DIR "/spe/sine_fixture.safetensors");
  auto meta = [&](const char* key) { return std::stoll(file.metadata.at(key)); };
  const Tensor& qbar = file.at("qbar");  // (1, N, H, D, R)
  const int64_t N = qbar.size(1), H = qbar.size(2), D = qbar.size(3), R = qbar.size(4);
  const int64_t K = file.at("freqs").size(2), offset = meta("offset");
  auto code = std::make_shared<SineSPE>(H, D, R, K, static_cast<uint64_t>(meta("seed")));
  spe::SPEFilter filter(code, /*gated=*/true, static_cast<uint64_t>(meta("layer")),
                        /*owns_code=*/true);
  filter.to(f64);
  code->freqs.copy_(file.at("freqs"));
  code->offsets.copy_(file.at("offsets"));
  code->gains.copy_(file.at("gains"));
  filter.gate.copy_(file.at("gate"));
  code->set_draw(meta("draw"));

  auto [q, k] = code->codes(N, offset);
  check_close(q, qbar, 1e-12, "qbar");
  check_close(k, file.at("kbar"), 1e-12, "kbar");
  check_close(code->expected_kernel(file.at("lags")), file.at("kernel"), 1e-12, "kernel");
  check_close(filter.expected_kernel(file.at("lags")), file.at("gated_kernel"), 1e-12,
              "gated kernel");
  auto [qhat, khat] = filter.forward(file.at("q"), file.at("k"), offset);
  check_close(qhat, file.at("qhat"), 1e-12, "qhat");
  check_close(khat, file.at("khat"), 1e-12, "khat");
}

TEST_CASE("sine SPE: the reference's initialisation") {
  const int64_t H = 8, D = 64, K = 10;
  Generator gen(11);
  SineSPE code(H, D, 4, K, 0, &gen);
  CHECK(code.freqs.shape() == Shape{H, D, K});
  CHECK(code.freqs.dtype() == f32);
  CHECK(code.draw() == 0);

  // The same draws, in the documented order: F ~ N(0,1) - 4, theta ~ N(0,1), then G.
  Generator replay(11);
  CHECK(values(code.freqs) == values(kernels::to_dtype(randn({H, D, K}, f64, &replay) - 4.0, f32)));
  CHECK(values(code.offsets) == values(kernels::to_dtype(randn({H, D, K}, f64, &replay), f32)));
  // G <- G / (sqrt(|G|_2 over K) / 2), per (h, d).
  std::vector<double> g = randn({H, D, K}, f64, &replay).to_vector<double>(), expected;
  for (int64_t hd = 0; hd < H * D; ++hd) {
    double norm = 0;
    for (int64_t j = 0; j < K; ++j) norm += g[hd * K + j] * g[hd * K + j];
    for (int64_t j = 0; j < K; ++j)
      expected.push_back(g[hd * K + j] / (std::sqrt(std::sqrt(norm)) / 2));
  }
  check_close(values(code.gains), expected, 1e-7, "gains");  // f32 rounding

  // Frequencies sigmoid(F)/2 have median sigmoid(-4)/2 = 0.008993. The sample median of F has
  // standard error sqrt(pi/2) / sqrt(n); through the slope of sigmoid(x)/2 at -4 that is
  // 5 SE = 7.6e-4 in f.
  std::vector<double> f = values(sigmoid(code.freqs) / 2.0);
  std::nth_element(f.begin(), f.begin() + f.size() / 2, f.end());
  const double median = f[f.size() / 2], expected_median = 0.5 / (1 + std::exp(4.0));
  const double slope = expected_median * (1 - 2 * expected_median);  // d/dx sigmoid(x)/2
  const double se = std::sqrt(M_PI / 2 / static_cast<double>(f.size())) * slope;
  CHECK(std::fabs(median - expected_median) < 5 * se);
  CHECK(median == doctest::Approx(0.009).epsilon(0.1));
}

TEST_CASE("sine SPE: codes are a function of the absolute position (truncation, offsets)") {
  auto code = make_code(2, 3, 4, 2, f64);
  auto [q_full, k_full] = code->codes(57, 0);
  CHECK(q_full.shape() == Shape{1, 57, 2, 3, 4});
  // Truncation: the first 20 positions of a longer code are the code of 20 positions.
  auto [q20, k20] = code->codes(20, 0);
  CHECK(values(q20) == values(q_full.slice(1, 0, 20)));
  CHECK(values(k20) == values(k_full.slice(1, 0, 20)));
  // Offset: positions [37, 57) computed alone are the same numbers.
  auto [q_off, k_off] = code->codes(20, 37);
  CHECK(values(q_off) == values(q_full.slice(1, 37, 57)));
  CHECK(values(k_off) == values(k_full.slice(1, 37, 57)));
  // A new draw changes the code; returning to the draw restores it exactly.
  code->set_draw(1);
  CHECK(values(code->codes(20, 0).first) != values(q20));
  code->set_draw(0);
  CHECK(values(code->codes(20, 0).first) == values(q20));

  // The fused filter over positions [37, 200) equals the tail of the one over [0, 200): the same
  // bases, grouped into different GEMM chunks.
  Tensor q = random({2, 200, 2, 3}, f64, 1), k = random({2, 200, 2, 3}, f64, 2);
  auto [qh_full, kh_full] = code->filter(q, k, 0);
  auto [qh_tail, kh_tail] = code->filter(q.slice(1, 37, 200), k.slice(1, 37, 200), 37);
  check_close(qh_tail, qh_full.slice(1, 37, 200), 1e-13, "qhat tail");
  check_close(kh_tail, kh_full.slice(1, 37, 200), 1e-13, "khat tail");
}

TEST_CASE("sine SPE: the kernel is asymmetric with phases, symmetric without") {
  auto code = make_code(2, 3, 4, 3, f64);
  Tensor lags = arange(-20, 21, 1.0, i64), flipped = arange(20, -21, -1.0, i64);
  std::vector<double> p = values(code->expected_kernel(lags));
  std::vector<double> p_flipped = values(code->expected_kernel(flipped));
  double asymmetry = 0;
  for (size_t i = 0; i < p.size(); ++i)
    asymmetry = std::max(asymmetry, std::fabs(p[i] - p_flipped[i]));
  CHECK(asymmetry > 0.05);
  code->offsets.fill_(0.0);
  CHECK(values(code->expected_kernel(lags)) == values(code->expected_kernel(flipped)));
  // Lag 0 is the power sum_k softplus(G)^2 / (2K), whatever the phases.
  std::vector<double> p0 = values(code->expected_kernel(tensor(std::vector<int64_t>{0})));
  std::vector<double> power = values(sum(softplus(code->gains) * softplus(code->gains), {2}) / 6.0);
  check_close(p0, power, 1e-15, "lag 0");
}

TEST_CASE("sine SPE: the code is shared by the batch") {
  auto code = make_code(2, 4, 8, 2, f32);
  Tensor row = random({1, 70, 2, 4}, f32, 3);
  Tensor q = cat({row, row}, 0), k = cat({row * 2.0, row * 2.0}, 0);
  auto [qhat, khat] = code->filter(q, k, 5);
  CHECK(qhat.shape() == Shape{2, 70, 2, 8});
  CHECK(values(qhat.slice(0, 0, 1)) == values(qhat.slice(0, 1, 2)));
  CHECK(values(khat.slice(0, 0, 1)) == values(khat.slice(0, 1, 2)));
}

TEST_CASE_TEMPLATE("sine SPE: the fused filter equals the composed codes, forward and gradients", T,
                   float, double) {
  const DType dt = dtype_of<T>();
  const double tol = std::is_same_v<T, double> ? 1e-10 : 1e-5;
  // 165 positions: three chunks of 64, the last partial; 600: ten chunks in eight slabs.
  for (int64_t n : {165, 600}) {
    CAPTURE(n);
    auto code = make_code(2, 3, 5, 2, dt);
    // q is a transposed view: the kernel must read strided input.
    Tensor q = random({2, 2, n, 3}, dt, 4).transpose(1, 2).detach().requires_grad_();
    Tensor k = random({2, n, 2, 3}, dt, 5).requires_grad_();
    Run fused =
        run(*code, q, k, [&](const Tensor& a, const Tensor& b) { return code->filter(a, b, 7); });
    Run composed = run(*code, q, k, [&](const Tensor& a, const Tensor& b) {
      return composed_filter(*code, a, b, 7);
    });
    check_close(fused.qhat, composed.qhat, tol, "qhat");
    check_close(fused.khat, composed.khat, tol, "khat");
    const char* names[] = {"q", "k", "freqs", "offsets", "gains"};
    for (size_t i = 0; i < fused.grads.size(); ++i)
      check_close(fused.grads[i], composed.grads[i], tol, str_cat("gradient of ", names[i]));
  }
}

TEST_CASE("sine SPE: empty and size-1 shapes") {
  auto code = make_code(1, 2, 3, 1, f64);
  Tensor q = random({2, 0, 1, 2}, f64, 6).requires_grad_();
  auto [qhat, khat] = code->filter(q, q, 4);
  CHECK(qhat.shape() == Shape{2, 0, 1, 3});
  sum(qhat + khat).backward();
  CHECK(q.grad().shape() == Shape{2, 0, 1, 2});
  CHECK(values(code->freqs.grad()) == std::vector<double>{0, 0});
  CHECK(values(code->gains.grad()) == std::vector<double>{0, 0});
  CHECK(code->codes(0, 3).first.shape() == Shape{1, 0, 1, 2, 3});
  // One position, one batch row: the composed oracle still agrees.
  Tensor x = random({1, 1, 1, 2}, f64, 7);
  check_close(code->filter(x, x, 9).first, composed_filter(*code, x, x, 9).first, 1e-12, "N=1");
}

TEST_CASE("sine SPE: the fused filter gives the same bits with 1 and 2 threads, gated or not") {
  // (B, N, H, R) = (2, 300, 2, 32): 38400 outputs, split into (head, chunk) tasks.
  auto code = make_code(2, 8, 32, 4, f32);
  Tensor q = random({2, 300, 2, 8}, f32, 8).requires_grad_();
  Tensor k = random({2, 300, 2, 8}, f32, 9).requires_grad_();
  Tensor gate_a = random({2, 8}, f32, 10).requires_grad_();
  Tensor gate_w = random({2, 8, 32}, f32, 11).requires_grad_();
  for (bool gated : {false, true}) {
    CAPTURE(gated);
    const spe::PositionalCode::Gate gate =
        gated ? spe::PositionalCode::Gate{gate_a, gate_w} : spe::PositionalCode::Gate{};
    auto once = [&] {
      gate_a.zero_grad();
      gate_w.zero_grad();
      Run r = run(*code, q, k,
                  [&](const Tensor& a, const Tensor& b) { return code->filter(a, b, 3, gate); });
      if (gated) r.grads.insert(r.grads.end(), {values(gate_a.grad()), values(gate_w.grad())});
      return r;
    };
    const int saved = get_num_threads();
    set_num_threads(1);
    Run one = once();
    set_num_threads(2);
    Run two = once();
    set_num_threads(saved);
    CHECK(one.qhat == two.qhat);
    CHECK(one.khat == two.khat);
    CHECK(one.grads == two.grads);
  }
}

TEST_CASE("sine SPE: the fused filter never holds the (N, H, D, R) code") {
  // One code is N H D R floats: 64 MiB for N = 2048, H = 2, D = R = 64, against 1 MiB for each
  // of q, k, qhat, khat. Forward and backward of the fused filter (with the loss and its
  // gradients, about ten such 1 MiB tensors) stay below a quarter of one code; the composed
  // oracle, even at an eighth of the length, holds more than its code. (Tensor memory only: the
  // kernel's scratch is a few (64, D 2K) buffers per thread and the per-slab partials of dz.)
  const int64_t H = 2, D = 64, R = 64;
  auto code = make_code(H, D, R, 4, f32);
  auto peak_of = [&](int64_t n, const FilterFn& fn) {
    Tensor q = random({1, n, H, D}, f32, 14).requires_grad_();
    Tensor k = random({1, n, H, D}, f32, 15).requires_grad_();
    const int64_t before = memory_stats().current_bytes;
    reset_peak_memory();
    run(*code, q, k, fn);
    return memory_stats().peak_bytes - before;
  };
  auto code_bytes = [&](int64_t n) { return n * H * D * R * 4; };
  const int64_t fused =
      peak_of(2048, [&](const Tensor& a, const Tensor& b) { return code->filter(a, b, 0); });
  CHECK(fused < code_bytes(2048) / 4);
  const int64_t composed = peak_of(
      256, [&](const Tensor& a, const Tensor& b) { return composed_filter(*code, a, b, 0); });
  CHECK(composed > code_bytes(256));
}

TEST_CASE("sine SPE: the phase stays accurate at position 99999 in f32") {
  const int64_t H = 2, D = 3, K = 2, R = 4;
  const double p = 99999;
  auto code = make_code(H, D, R, K, f32);
  code->freqs.copy_(random({H, D, K}, f64, 12));  // f around 0.25: 2 pi f p ~ 1.6e5 rad

  // The reference in double, from the f32 values of f, theta and the gains (so the only
  // difference left is how the phase is computed).
  std::vector<double> f = values(sigmoid(code->freqs) / 2.0), theta = values(code->offsets);
  Generator gen(code->stream_seed(0));
  std::vector<double> eps = randn({H, D, 2 * K, R}, f64, &gen).to_vector<double>();
  std::vector<double> gain = values(softplus(code->gains.to(f64)));
  const double scale = std::pow(R * D, -0.25) / std::sqrt(2.0 * K);
  auto code_at = [&](const std::vector<double>& omega_q) {
    std::vector<double> qbar(H * D * R, 0.0);
    for (int64_t hd = 0; hd < H * D; ++hd)
      for (int64_t c = 0; c < 2 * K; ++c)
        for (int64_t r = 0; r < R; ++r)
          qbar[hd * R + r] += scale * omega_q[hd * 2 * K + c] * gain[hd * K + c / 2] *
                              eps[(hd * 2 * K + c) * R + r];
    return qbar;
  };
  const std::vector<double> expected = code_at(bases_at(f, theta, p));
  check_close(values(code->codes(1, 99999).first), expected, 1e-5, "codes() at 99999");

  Tensor q = random({1, 1, H, D}, f32, 13);
  std::vector<double> qv = values(q), expected_qhat(H * R, 0.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t r = 0; r < R; ++r)
        expected_qhat[h * R + r] += qv[h * D + d] * expected[(h * D + d) * R + r];
  check_close(values(code->filter(q, q, 99999).first), expected_qhat, 1e-5, "filter at 99999");

  // What the test guards against: the angle 2 pi f p rounded to f32 is off by up to ~1e-2 rad.
  std::vector<double> omega_f32;
  for (size_t j = 0; j < f.size(); ++j) {
    const float alpha =
        static_cast<float>(kTwoPi) * static_cast<float>(f[j]) * static_cast<float>(p) +
        static_cast<float>(theta[j]);
    omega_f32.push_back(std::cos(alpha));
    omega_f32.push_back(std::sin(alpha));
  }
  const std::vector<double> naive = code_at(omega_f32);
  double worst = 0, scale_max = 0;
  for (size_t i = 0; i < naive.size(); ++i) {
    worst = std::max(worst, std::fabs(naive[i] - expected[i]));
    scale_max = std::max(scale_max, std::fabs(expected[i]));
  }
  CHECK(worst > 1e-3 * scale_max);
}

TEST_CASE("sine SPE: errors name the op and the shapes") {
  CHECK_THROWS_AS(SineSPE(0, 3, 4, 2, 0), ConfigError);
  CHECK_THROWS_AS(SineSPE(2, 3, 4, 0, 0), ConfigError);
  auto code = make_code(2, 3, 4, 2, f32);
  auto throws_with = [](const std::function<void()>& fn, const std::string& op) {
    try {
      fn();
      FAIL("expected an exception from " << op);
    } catch (const Error& e) {
      CHECK_MESSAGE(std::string(e.what()).find(op) == 0, e.what());
    }
  };
  Tensor q = random({1, 5, 2, 3}, f32, 1);
  throws_with(
      [&] {
        code->filter(q.reshape({5, 2, 3}), q.reshape({5, 2, 3}), 0);
      },
      "sine_spe.filter: expected q, k of one shape (B, N, 2, 3), got q [5, 2, 3]");
  throws_with([&] { code->filter(q, q.slice(1, 0, 4), 0); }, "sine_spe.filter");
  throws_with(
      [&] {
        code->filter(random({1, 5, 2, 4}, f32, 1), random({1, 5, 2, 4}, f32, 1), 0);
      },
      "sine_spe.filter");
  CHECK_THROWS_AS(code->filter(q.to(f64), q.to(f64), 0), DTypeError);
  throws_with([&] { code->filter(q, q, -1); }, "sine_spe.filter: positions need");
  throws_with([&] { code->codes(-2, 0); }, "sine_spe.codes");
  CHECK_THROWS_AS(code->expected_kernel(arange(3, f32)), DTypeError);
  CHECK_THROWS_AS(code->expected_kernel(arange(6).reshape({3, 2})), ShapeError);
  // The kernel layer checks its own inputs.
  Tensor f = zeros({2, 3, 2}), z = zeros({2, 3, 4, 4});
  throws_with(
      [&] {
        kernels::sine_spe_filter(q, f, Tensor(), zeros({2, 3, 3, 4}), 0);
      },
      "sine_spe_filter: x [1, 5, 2, 3] needs f (H, D, K) = [2, 3, 2] and z (H, D, 2K, R) = "
      "[2, 3, 4, 4], got f [2, 3, 2], z [2, 3, 3, 4]");
  throws_with([&] { kernels::sine_spe_filter(q, f, zeros({2, 3, 1}), z, 0); }, "sine_spe_filter");
  CHECK_THROWS_AS(kernels::sine_spe_filter(q, f.to(f64), Tensor(), z, 0), DTypeError);
  throws_with(
      [&] {
        kernels::sine_spe_filter_backward(zeros({1, 5, 2, 3}), q, f, Tensor(), z, 0);
      },
      "sine_spe_filter_backward: grad [1, 5, 2, 3] does not match");
}
