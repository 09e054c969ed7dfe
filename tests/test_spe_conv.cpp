// ConvSPE (spe/spe.h, spec 3), 1-D and 2-D: the reference's parameters and init, the expected
// kernel as the filters' cross-correlation, unbiasedness and stationarity of the codes, the
// noise as a pure function of (draw, position), the fused filter against its composed oracle
// (forward and every gradient, across chunks), gradcheck, thread-count independence, an
// independent numpy implementation, and errors.
//
// Tolerances. Statistical checks: 5 standard errors from the variance formula of spec 1.5,
// seeded so they cannot flake. Fused vs composed, relative to the largest magnitude compared:
// both build each code as the same sum over the taps, but contract it with q differently (a GEMM
// against a broadcast product and a reduction) and sum the filters' gradient over N R terms in
// another order, so they agree to a few ulps of those sums: 1e-10 in f64 (ulp 1e-16, sums of up
// to ~1e5 terms) and 1e-5 in f32 (ulp 6e-8). The numpy fixture uses the same formulas in f64,
// with libm's log and cos in the noise: 1e-12.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "spe/spe.h"
#include "tensor/kernels/kernels.h"
#include "tensor/kernels/spe.h"
#include "tensor/parallel.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"

using namespace spear;
using spe::ConvSPE;
using V = std::vector<Tensor>;

namespace {

std::vector<double> values(const Tensor& t) {
  REQUIRE(t.defined());
  return kernels::to_dtype(t, f64).to_vector<double>();
}

// max |a - e| <= rtol * max |e|
void check_close(const Tensor& actual, const Tensor& expected, double rtol,
                 const std::string& what) {
  INFO(what);
  REQUIRE(actual.shape() == expected.shape());
  const std::vector<double> a = values(actual), e = values(expected);
  double scale = 0, worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::fabs(e[i]));
    worst = std::max(worst, std::fabs(a[i] - e[i]));
  }
  CHECK(worst <= rtol * scale);
}

void check_identical(const Tensor& a, const Tensor& b, const std::string& what) {
  INFO(what);
  REQUIRE(a.shape() == b.shape());
  CHECK(values(a) == values(b));
}

Tensor random(const Shape& shape, DType dtype, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, dtype, &gen);
}

// A ConvSPE in `dtype`; with signed_taps, N(0, 1) filters instead of the non-negative init, so
// the kernels are signed and asymmetric.
std::shared_ptr<ConvSPE> make_code(int64_t H, int64_t D, int64_t R, std::vector<int64_t> P,
                                   std::vector<int64_t> grid, DType dtype, bool signed_taps,
                                   uint64_t seed = 5) {
  Generator gen(seed);
  auto code = std::make_shared<ConvSPE>(H, D, R, P, grid, seed, &gen);
  code->to(dtype);
  if (signed_taps) {
    code->conv_q.copy_(random(code->conv_q.shape(), f64, seed + 1));
    code->conv_k.copy_(random(code->conv_k.shape(), f64, seed + 2));
  }
  return code;
}

// Filter taps as (C, P1, P2) doubles, P2 = 1 in 1-D.
struct Taps {
  int64_t C, P1, P2;
  std::vector<double> w;
  double at(int64_t c, int64_t j1, int64_t j2) const {
    if (j1 < 0 || j1 >= P1 || j2 < 0 || j2 >= P2) return 0;
    return w[static_cast<size_t>((c * P1 + j1) * P2 + j2)];
  }
};
Taps taps(const Tensor& weight) {
  return {weight.size(0), weight.size(2), weight.dim() == 4 ? weight.size(3) : 1, values(weight)};
}

// P_c(t1, t2) = sum_j Wk[c, j] Wq[c, j + t], by definition (spec 3.3).
double cross_correlation(const Taps& wk, const Taps& wq, int64_t c, int64_t t1, int64_t t2) {
  double s = 0;
  for (int64_t j1 = 0; j1 < wk.P1; ++j1)
    for (int64_t j2 = 0; j2 < wk.P2; ++j2) s += wk.at(c, j1, j2) * wq.at(c, j1 + t1, j2 + t2);
  return s;
}

// The composed filter: qhat = sum_d q * Qbar, from the differentiable codes.
std::pair<Tensor, Tensor> composed_filter(const ConvSPE& code, const Tensor& q, const Tensor& k,
                                          int64_t offset) {
  auto [qbar, kbar] = code.codes(q.size(1), offset);
  return {sum(q.unsqueeze(-1) * qbar, {3}), sum(k.unsqueeze(-1) * kbar, {3})};
}

// qhat, khat and the gradients of q, k, conv_q, conv_k for loss = sum(qhat wq) + sum(khat wk).
template <typename Fn>
V run(ConvSPE& code, const Tensor& q, const Tensor& k, Fn filter) {
  V leaves = {q, k, code.conv_q, code.conv_k};
  for (Tensor l : leaves) l.zero_grad();
  auto [qhat, khat] = filter(q, k);
  Tensor wq = random(qhat.shape(), qhat.dtype(), 91), wk = random(khat.shape(), khat.dtype(), 92);
  (sum(qhat * wq) + sum(khat * wk)).backward();
  V out = {qhat, khat};
  for (const Tensor& l : leaves) out.push_back(l.grad());
  return out;
}
const char* kRunNames[] = {"qhat", "khat", "dq", "dk", "dconv_q", "dconv_k"};

// A code's kernel size and grid (empty in 1-D), and positions offset .. offset + n - 1.
struct Layout {
  std::vector<int64_t> P, grid;
  int64_t n, offset;
};

// A leaf (B, N, H, D) whose storage is (B, H, N, D): a non-contiguous input.
Tensor transposed_input(int64_t B, int64_t N, int64_t H, int64_t D, DType dtype, uint64_t seed) {
  return kernels::transpose(random({B, H, N, D}, dtype, seed), 1, 2).requires_grad_();
}

double energy(const Taps& w, int64_t c) {
  return cross_correlation(w, w, c, 0, 0);
}

// Checks, for every channel, the Monte-Carlo estimate mean_r Qbar[m,c,r] Kbar[n,c,r] (R D)^(1/2)
// of P_c(t) within 5 standard errors from spec 1.5: Var(ab) = E[a^2] E[b^2] + E[ab]^2 with, in
// units of (R D)^(-1/2), E[a^2] = sum_j Wk^2, E[b^2] = sum_j Wq^2 and E[ab] = P.
void check_unbiased(const std::vector<double>& qbar, const std::vector<double>& kbar,
                    const Taps& wk, const Taps& wq, int64_t R, int64_t D, int64_t m, int64_t n,
                    int64_t t1, int64_t t2) {
  const int64_t C = wk.C;
  for (int64_t c = 0; c < C; ++c) {
    CAPTURE(c);
    double s = 0;
    for (int64_t r = 0; r < R; ++r)
      s += qbar[static_cast<size_t>((m * C + c) * R + r)] *
           kbar[static_cast<size_t>((n * C + c) * R + r)];
    const double value = s / R * std::sqrt(static_cast<double>(R * D));
    const double p = cross_correlation(wk, wq, c, t1, t2);
    const double se = std::sqrt((energy(wk, c) * energy(wq, c) + p * p) / static_cast<double>(R));
    CHECK(std::fabs(value - p) < 5 * se);
  }
}

}  // namespace

TEST_CASE(
    "ConvSPE has the reference parameters: conv_q, conv_k (H*D, 1, P...), uniform in "
    "0..1/sqrt(P/2)") {
  ConvSPE one(2, 3, 4, {5}, {}, 1);
  NamedTensors params = one.named_parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0].first == "conv_q");
  CHECK(params[1].first == "conv_k");
  CHECK(one.conv_q.shape() == Shape{6, 1, 5});
  CHECK(one.conv_k.shape() == Shape{6, 1, 5});
  CHECK(one.conv_q.dtype() == f32);
  const double bound = 1 / std::sqrt(5 / 2.0);
  for (const Tensor& w : {one.conv_q, one.conv_k})
    for (double v : values(w)) CHECK((v >= 0 && v < bound));
  CHECK(values(one.conv_q) != values(one.conv_k));

  ConvSPE two(1, 2, 3, {2, 3}, {4, 5}, 1);
  CHECK(two.conv_q.shape() == Shape{2, 1, 2, 3});
  for (double v : values(two.conv_k)) CHECK((v >= 0 && v < 1 / std::sqrt(6 / 2.0)));

  // The same init generator gives the same filters.
  Generator g1(9), g2(9);
  CHECK(values(ConvSPE(2, 3, 4, {5}, {}, 1, &g1).conv_q) ==
        values(ConvSPE(2, 3, 4, {5}, {}, 1, &g2).conv_q));
}

TEST_CASE("the expected kernel at init is the triangle 0.5 (1 - |tau| / P), on average") {
  // E[P(tau)] = (P - |tau|) E[w]^2 with w ~ U[0, b), b = 1/sqrt(P/2): (P - |tau|) b^2 / 4.
  // 512 channels; the standard error comes from the sample.
  const int64_t H = 8, D = 64, P = 16, C = H * D;
  ConvSPE code(H, D, 4, {P}, {}, 3);
  Tensor lags = arange(-P - 1, P + 2, 1, i64);
  const std::vector<double> k = values(code.expected_kernel(lags));
  const int64_t L = lags.numel();
  REQUIRE(static_cast<int64_t>(k.size()) == C * L);
  for (int64_t l = 0; l < L; ++l) {
    const int64_t tau = l - P - 1;
    CAPTURE(tau);
    double mean = 0, sq = 0;
    for (int64_t c = 0; c < C; ++c) mean += k[static_cast<size_t>(c * L + l)];
    mean /= C;
    for (int64_t c = 0; c < C; ++c) sq += std::pow(k[static_cast<size_t>(c * L + l)] - mean, 2);
    const double se = std::sqrt(sq / (C - 1) / C);
    const double expected = std::max(0.0, 0.5 * (1 - std::fabs(static_cast<double>(tau)) / P));
    if (expected == 0)
      CHECK(mean == 0);
    else
      CHECK(std::fabs(mean - expected) < 5 * se);
  }
}

TEST_CASE("expected_kernel is the filters' cross-correlation, 1-D and 2-D, zero beyond P") {
  SUBCASE("1-D") {
    auto code = make_code(2, 3, 4, {4}, {}, f64, true);
    std::vector<int64_t> lag_values = {-6, -4, -3, -1, 0, 1, 2, 3, 4, 9};
    Tensor k = code->expected_kernel(tensor(lag_values));
    REQUIRE(k.shape() == Shape{2, 3, 10});
    const Taps wk = taps(code->conv_k), wq = taps(code->conv_q);
    const std::vector<double> got = values(k);
    for (int64_t c = 0; c < 6; ++c)
      for (size_t l = 0; l < lag_values.size(); ++l) {
        const double want = cross_correlation(wk, wq, c, lag_values[l], 0);
        CHECK(got[c * lag_values.size() + l] == doctest::Approx(want).epsilon(1e-12));
        if (std::abs(lag_values[l]) >= 4) CHECK(got[c * lag_values.size() + l] == 0);
      }
    // Asymmetric in general: the two filters differ.
    CHECK(got[5] != doctest::Approx(got[3]));  // channel 0 at tau = 1 and tau = -1
  }
  SUBCASE("2-D") {
    auto code = make_code(1, 2, 3, {2, 3}, {4, 5}, f64, true);
    std::vector<int64_t> pairs;
    for (int64_t t1 = -3; t1 <= 3; ++t1)
      for (int64_t t2 = -4; t2 <= 4; ++t2) pairs.insert(pairs.end(), {t1, t2});
    const int64_t L = static_cast<int64_t>(pairs.size()) / 2;
    Tensor k = code->expected_kernel(tensor(pairs, {L, 2}));
    REQUIRE(k.shape() == Shape{1, 2, L});
    const Taps wk = taps(code->conv_k), wq = taps(code->conv_q);
    const std::vector<double> got = values(k);
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t l = 0; l < L; ++l) {
        const int64_t t1 = pairs[l * 2], t2 = pairs[l * 2 + 1];
        CAPTURE(t1);
        CAPTURE(t2);
        const double want = cross_correlation(wk, wq, c, t1, t2);
        CHECK(got[c * L + l] == doctest::Approx(want).epsilon(1e-12));
        if (std::abs(t1) >= 2 || std::abs(t2) >= 3) CHECK(got[c * L + l] == 0);
      }
  }
  SUBCASE("no lags") {
    auto code = make_code(2, 3, 4, {4}, {}, f32, false);
    CHECK(code->expected_kernel(zeros({0}, i64)).shape() == Shape{2, 3, 0});
  }
}

TEST_CASE("codes are unbiased: mean_r Qbar(m) Kbar(n) = (R D)^(-1/2) P(m - n), 1-D and 2-D") {
  // One draw with many realizations; m > n, m < n, m = n and |m - n| >= P, at any offset (so
  // the statistics depend on m - n only: stationarity).
  const int64_t D = 2, R = 20000;
  SUBCASE("1-D") {
    const int64_t P = 4, N = 12;
    auto code = make_code(1, D, R, {P}, {}, f64, true);
    const Taps wk = taps(code->conv_k), wq = taps(code->conv_q);
    for (int64_t offset : {0, 1000003}) {
      CAPTURE(offset);
      auto [qbar, kbar] = code->codes(N, offset);
      REQUIRE(qbar.shape() == Shape{1, N, 1, D, R});
      const std::vector<double> qv = values(qbar), kv = values(kbar);
      const int64_t pairs[][2] = {{5, 2}, {2, 5}, {3, 3}, {9, 8}, {11, 10}, {4, 0}, {1, 9}, {0, 4}};
      for (auto [m, n] : pairs) {
        CAPTURE(m);
        CAPTURE(n);
        check_unbiased(qv, kv, wk, wq, R, D, m, n, m - n, 0);
      }
    }
  }
  SUBCASE("2-D") {
    const int64_t N1 = 4, N2 = 5;
    auto code = make_code(1, D, R, {2, 3}, {N1, N2}, f64, true);
    const Taps wk = taps(code->conv_k), wq = taps(code->conv_q);
    auto [qbar, kbar] = code->codes(N1 * N2, 0);
    const std::vector<double> qv = values(qbar), kv = values(kbar);
    // Cells (m1, m2), (n1, n2): lags of every sign per axis, and beyond the filters.
    const int64_t cells[][4] = {{2, 3, 1, 1}, {1, 1, 2, 3}, {3, 0, 2, 2}, {0, 4, 1, 2},
                                {2, 2, 2, 2}, {3, 4, 0, 0}, {1, 0, 1, 4}};
    for (auto [m1, m2, n1, n2] : cells) {
      CAPTURE(m1);
      CAPTURE(m2);
      CAPTURE(n1);
      CAPTURE(n2);
      check_unbiased(qv, kv, wk, wq, R, D, m1 * N2 + m2, n1 * N2 + n2, m1 - n1, m2 - n2);
    }
  }
}

TEST_CASE("qhat . khat is unbiased over draws: sqrt(R/D) sum_d q_md k_nd P_d(m - n)") {
  // Spec 1.5: over r, Var(sum_r a_r b_r) = R (E[a^2] E[b^2] + E[ab]^2) with
  // E[a^2] = (RD)^(-1/2) sum_d q_d^2 sigmaQ_d^2, E[b^2] likewise, E[ab] = (RD)^(-1/2) sum_d q k P.
  const int64_t H = 1, D = 3, R = 8, N = 9, P = 3, T = 3000;
  auto code = make_code(H, D, R, {P}, {}, f64, true);
  const Taps wk = taps(code->conv_k), wq = taps(code->conv_q);
  Tensor q = random({1, N, H, D}, f64, 31), k = random({1, N, H, D}, f64, 32);
  const std::vector<double> qv = values(q), kv = values(k);
  const int64_t pairs[][2] = {{6, 4}, {4, 6}, {5, 5}, {8, 1}};
  std::vector<double> sums(4, 0.0);
  for (int64_t t = 0; t < T; ++t) {
    code->set_draw(t);
    auto [qhat, khat] = code->filter(q, k, 2);
    const std::vector<double> a = values(qhat), b = values(khat);
    for (size_t p = 0; p < 4; ++p)
      for (int64_t r = 0; r < R; ++r) sums[p] += a[pairs[p][0] * R + r] * b[pairs[p][1] * R + r];
  }
  const double unit = 1 / std::sqrt(static_cast<double>(R * D));
  for (size_t p = 0; p < 4; ++p) {
    const int64_t m = pairs[p][0], n = pairs[p][1];
    CAPTURE(m);
    CAPTURE(n);
    double aa = 0, bb = 0, ab = 0;
    for (int64_t d = 0; d < D; ++d) {
      aa += qv[m * D + d] * qv[m * D + d] * energy(wk, d);
      bb += kv[n * D + d] * kv[n * D + d] * energy(wq, d);
      ab += qv[m * D + d] * kv[n * D + d] * cross_correlation(wk, wq, d, m - n, 0);
    }
    aa *= unit, bb *= unit, ab *= unit;
    const double se = std::sqrt(R * (aa * bb + ab * ab) / T);
    const double expected = R * ab;  // = sqrt(R/D) sum_d q_md k_nd P_d(m - n)
    CHECK(std::fabs(sums[p] / T - expected) < 5 * se);
    if (m - n >= P) CHECK(expected == 0);
  }
}

TEST_CASE("codes of a position are the same numbers whatever the length, offset or chunking") {
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype);
    auto code = make_code(2, 3, 4, {5}, {}, dtype, true);
    code->set_draw(7);
    auto [q20, k20] = code->codes(20, 0);
    auto [q10, k10] = code->codes(10, 5);
    auto [q30, k30] = code->codes(30, 0);
    check_identical(kernels::narrow(q20, 1, 5, 10), q10, "Qbar at an offset");
    check_identical(kernels::narrow(k20, 1, 5, 10), k10, "Kbar at an offset");
    check_identical(kernels::narrow(q30, 1, 0, 20), q20, "Qbar truncated");
    check_identical(kernels::narrow(k30, 1, 0, 20), k20, "Kbar truncated");

    // The fused filter, one position at a time (decoding) or all at once.
    Tensor q = random({2, 20, 2, 3}, dtype, 1), k = random({2, 20, 2, 3}, dtype, 2);
    auto [qhat, khat] = code->filter(q, k, 0);
    for (int64_t t : {0, 7, 19}) {
      auto [qt, kt] = code->filter(kernels::narrow(q, 1, t, 1), kernels::narrow(k, 1, t, 1), t);
      check_identical(qt, kernels::narrow(qhat, 1, t, 1), "qhat of one position");
      check_identical(kt, kernels::narrow(khat, 1, t, 1), "khat of one position");
    }
  }
}

TEST_CASE(
    "the fused kernel gives the same results for any chunk size and for two sides in one call") {
  // The outputs and dx are per-position computations: bit-identical for every chunking. The
  // filters' gradient sums the chunks in order, so only its rounding depends on the chunking.
  // The third case, a 20-tap filter, goes through the band GEMMs.
  for (int64_t taps : {0, 4, 20}) {
    const bool two_d = taps == 0;
    CAPTURE(taps);
    Tensor w = random(two_d ? Shape{6, 1, 3, 2} : Shape{6, 1, taps}, f64, 3);
    kernels::ConvSpeGrid grid;
    grid.seed = 77;
    grid.first_row = two_d ? 0 : 9;
    grid.rows = taps == 20 ? 150 : 11;
    grid.cols = two_d ? 3 : 1;
    grid.realizations = 5;
    grid.scale = 0.3;
    Tensor x = random({2, grid.rows * grid.cols, 2, 3}, f64, 4);
    Tensor g = random({2, grid.rows * grid.cols, 2, 5}, f64, 5);
    Tensor y = kernels::conv_spe_filter({x}, {w}, grid)[0];
    V grads = kernels::conv_spe_filter_backward({x}, {w}, {g}, grid);
    for (int64_t chunk : {1, 2, 4, 11, 50}) {
      CAPTURE(chunk);
      check_identical(kernels::conv_spe_filter({x}, {w}, grid, chunk)[0], y, "y");
      V chunked = kernels::conv_spe_filter_backward({x}, {w}, {g}, grid, chunk);
      check_identical(chunked[0], grads[0], "dx");
      check_close(chunked[1], grads[1], 1e-12, "dweight");
    }
    // Two sides in one call share each chunk's noise and give what two calls give, exactly.
    Tensor x2 = random(x.shape(), f64, 6), w2 = random(w.shape(), f64, 7);
    Tensor g2 = random(g.shape(), f64, 8);
    V pair = kernels::conv_spe_filter({x, x2}, {w, w2}, grid);
    check_identical(pair[0], y, "side 0");
    check_identical(pair[1], kernels::conv_spe_filter({x2}, {w2}, grid)[0], "side 1");
    V pair_grads = kernels::conv_spe_filter_backward({x, x2}, {w, w2}, {g, g2}, grid);
    V grads2 = kernels::conv_spe_filter_backward({x2}, {w2}, {g2}, grid);
    check_identical(pair_grads[0], grads[0], "dx side 0");
    check_identical(pair_grads[1], grads2[0], "dx side 1");
    check_identical(pair_grads[2], grads[1], "dweight side 0");
    check_identical(pair_grads[3], grads2[1], "dweight side 1");
  }
}

TEST_CASE("draws: different draws give different codes, the same draw the same codes") {
  auto code = make_code(1, 2, 3, {3}, {}, f64, false);
  code->set_draw(1);
  auto [a, unused_a] = code->codes(6, 0);
  code->set_draw(2);
  auto [b, unused_b] = code->codes(6, 0);
  code->set_draw(1);
  auto [c, unused_c] = code->codes(6, 0);
  std::vector<double> av = values(a), bv = values(b);
  for (size_t i = 0; i < av.size(); ++i) CHECK(av[i] != bv[i]);
  check_identical(a, c, "draw 1 again");
  // Another seed at the same draw is another stream too.
  Generator gen(5);
  ConvSPE other(1, 2, 3, {3}, {}, 6, &gen);
  other.to(f64);
  other.conv_k.copy_(code->conv_k);
  other.set_draw(1);
  CHECK(values(other.codes(6, 0).first) != av);
}

TEST_CASE("the fused filter equals the composed codes: forward and every gradient") {
  // N spans several chunks of the automatic size and is not a multiple of it: 1-D, H D R = 128,
  // 2048 rows per chunk; 2-D, 40 columns, 51 rows per chunk. Inputs are non-contiguous views.
  // A 40-tap filter goes through the band GEMMs (at least 16 taps), in 64-row blocks.
  for (const Layout& cs :
       {Layout{{5}, {}, 5000, 7}, Layout{{40}, {}, 3000, 7}, Layout{{3, 4}, {130, 40}, 5200, 0}}) {
    for (auto [dtype, tol] : {std::pair{f64, 1e-10}, std::pair{f32, 1e-5}}) {
      CAPTURE(cs.grid.size());
      CAPTURE(dtype);
      const int64_t B = 2, H = 2, D = 4, R = 16;
      auto code = make_code(H, D, R, cs.P, cs.grid, dtype, true);
      Tensor q = transposed_input(B, cs.n, H, D, dtype, 11);
      Tensor k = transposed_input(B, cs.n, H, D, dtype, 12);
      V fused = run(*code, q, k, [&](const Tensor& a, const Tensor& b) {
        return code->filter(a, b, cs.offset);
      });
      V composed = run(*code, q, k, [&](const Tensor& a, const Tensor& b) {
        return composed_filter(*code, a, b, cs.offset);
      });
      REQUIRE(fused[0].shape() == Shape{B, cs.n, H, R});
      for (size_t i = 0; i < fused.size(); ++i)
        check_close(fused[i], composed[i], tol, kRunNames[i]);
    }
  }
}

TEST_CASE("gradcheck: q, k, conv_q, conv_k and the gate through the fused filter, fixed draw") {
  for (const Layout& cs :
       {Layout{{3}, {}, 6, 2}, Layout{{18}, {}, 70, 2}, Layout{{2, 2}, {3, 3}, 9, 0}})
    for (bool gated : {false, true}) {
      CAPTURE(cs.grid.size());
      CAPTURE(cs.P[0]);
      CAPTURE(gated);
      auto code = make_code(1, 2, 3, cs.P, cs.grid, f64, true);
      code->set_draw(4);
      V inputs = {random({2, cs.n, 1, 2}, f64, 1).requires_grad_(),
                  random({2, cs.n, 1, 2}, f64, 2).requires_grad_(), code->conv_q, code->conv_k};
      if (gated) {  // the gate's a (H, D) and w (H, D, R), as SPEFilter makes them
        inputs.push_back(random({1, 2}, f64, 3).requires_grad_());
        inputs.push_back(random({1, 2, 3}, f64, 4).requires_grad_());
      }
      GradcheckResult result = gradcheck(
          [&](const V& in) {
            const spe::PositionalCode::Gate gate =
                gated ? spe::PositionalCode::Gate{in[4], in[5]} : spe::PositionalCode::Gate{};
            auto [qhat, khat] = code->filter(in[0], in[1], cs.offset, gate);
            return cat({qhat, khat}, 0);
          },
          inputs);
      CHECK_MESSAGE(result.ok, result.report);
    }
}

TEST_CASE("1 and 2 threads give bit-identical results, forward and backward, gated or not") {
  Tensor gate_a = random({2, 4}, f32, 3).requires_grad_();
  Tensor gate_w = random({2, 4, 16}, f32, 4).requires_grad_();
  for (bool two_d : {false, true})
    for (bool gated : {false, true}) {
      CAPTURE(two_d);
      CAPTURE(gated);
      const int64_t n = two_d ? 60 * 50 : 3000;
      auto code = two_d ? make_code(2, 4, 16, {3, 2}, {60, 50}, f32, true)
                        : make_code(2, 4, 16, {6}, {}, f32, true);
      Tensor q = random({2, n, 2, 4}, f32, 1).requires_grad_();
      Tensor k = random({2, n, 2, 4}, f32, 2).requires_grad_();
      const spe::PositionalCode::Gate gate =
          gated ? spe::PositionalCode::Gate{gate_a, gate_w} : spe::PositionalCode::Gate{};
      auto filter = [&](const Tensor& a, const Tensor& b) { return code->filter(a, b, 0, gate); };
      auto once = [&] {
        gate_a.zero_grad();
        gate_w.zero_grad();
        V out = run(*code, q, k, filter);
        if (gated) out.insert(out.end(), {gate_a.grad(), gate_w.grad()});
        return out;
      };
      set_num_threads(1);
      V one = once();
      set_num_threads(2);
      V two = once();
      REQUIRE(one[0].numel() > 32768);
      for (size_t i = 0; i < one.size(); ++i) {
        const char* name = i < 6 ? kRunNames[i] : i == 6 ? "dgate_a" : "dgate_w";
        INFO(name);
        CHECK(one[i].to_vector<float>() == two[i].to_vector<float>());
      }
    }
}

TEST_CASE("size-0 inputs: no positions or no batch") {
  auto code = make_code(2, 3, 4, {3}, {}, f64, false);
  CHECK(code->codes(0, 5).first.shape() == Shape{1, 0, 2, 3, 4});
  Tensor q = zeros({2, 0, 2, 3}, f64).requires_grad_();
  auto [qhat, khat] = code->filter(q, q, 5);
  CHECK(qhat.shape() == Shape{2, 0, 2, 4});
  sum(qhat).backward();
  CHECK(q.grad().shape() == q.shape());
  auto [empty_batch, unused] = code->filter(zeros({0, 4, 2, 3}, f64), zeros({0, 4, 2, 3}, f64), 0);
  CHECK(empty_batch.shape() == Shape{0, 4, 2, 4});
}

TEST_CASE("ConvSPE matches an independent numpy implementation (1-D and 2-D)") {
  SafetensorsFile file = load_safetensors(SPEAR_TEST_DATA_DIR "/spe/conv_fixture.safetensors");
  auto meta = [&](const std::string& key) { return std::stoll(file.metadata.at(key)); };
  struct Case {
    std::string prefix;
    std::vector<int64_t> P, grid;
  };
  for (const Case& cs : {Case{"conv1d", {4}, {}}, Case{"conv2d", {2, 3}, {3, 4}}}) {
    CAPTURE(cs.prefix);
    auto at = [&](const std::string& name) { return file.at(cs.prefix + "." + name); };
    const Tensor qbar = at("qbar");
    const int64_t N = qbar.size(1), H = qbar.size(2), D = qbar.size(3), R = qbar.size(4);
    const int64_t offset = meta(cs.prefix + ".offset");
    ConvSPE code(H, D, R, cs.P, cs.grid, static_cast<uint64_t>(meta("seed")));
    code.to(f64);
    code.conv_q.copy_(at("conv_q"));
    code.conv_k.copy_(at("conv_k"));
    code.set_draw(meta("draw"));

    const Tensor noise = at("noise");
    check_close(kernels::conv_spe_noise(code.stream_seed(0), offset, noise.size(0), noise.size(1),
                                        H * D, R, f64),
                noise, 1e-12, "noise");
    auto [qb, kb] = code.codes(N, offset);
    check_close(qb, qbar, 1e-12, "qbar");
    check_close(kb, at("kbar"), 1e-12, "kbar");
    auto [qhat, khat] = code.filter(at("q"), at("k"), offset);
    check_close(qhat, at("qhat"), 1e-12, "qhat");
    check_close(khat, at("khat"), 1e-12, "khat");
    check_close(code.expected_kernel(at("lags")), at("kernel"), 1e-12, "kernel");
  }
}

TEST_CASE("errors name the op and the sizes") {
  auto message = [](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // Construction: 1 or 2 kernel dims, positive sizes, a grid exactly in 2-D.
  CHECK_THROWS_AS(ConvSPE(2, 3, 4, {}, {}, 1), ConfigError);
  CHECK_THROWS_AS(ConvSPE(2, 3, 4, {2, 2, 2}, {3, 3, 3}, 1), ConfigError);
  CHECK(message([] { ConvSPE(2, 3, 4, {2, 2, 2}, {}, 1); }).find("ConvSPE") != std::string::npos);
  CHECK_THROWS_AS(ConvSPE(2, 3, 4, {0}, {}, 1), ConfigError);
  CHECK_THROWS_AS(ConvSPE(2, 3, 4, {3}, {4, 4}, 1), ConfigError);
  CHECK_THROWS_AS(ConvSPE(2, 3, 4, {3, 3}, {}, 1), ConfigError);
  CHECK_THROWS_AS(ConvSPE(2, 3, 4, {3, 3}, {4, 0}, 1), ConfigError);

  ConvSPE one(2, 3, 4, {3}, {}, 1);
  ConvSPE two(2, 3, 4, {2, 2}, {3, 4}, 1);
  Tensor q = zeros({1, 12, 2, 3});
  // 2-D: N must be N1 * N2 and the offset 0.
  CHECK_THROWS_AS(two.filter(zeros({1, 11, 2, 3}), zeros({1, 11, 2, 3}), 0), ShapeError);
  CHECK(message([&] {
          two.filter(zeros({1, 11, 2, 3}), zeros({1, 11, 2, 3}), 0);
        }).find("conv_spe.filter") != std::string::npos);
  CHECK_THROWS_AS(two.filter(q, q, 1), ShapeError);
  CHECK_THROWS_AS(two.codes(12, 1), ShapeError);
  CHECK(message([&] { two.codes(11, 0); }).find("conv_spe.codes") != std::string::npos);
  // Heads and head_dim must match the code's; q and k one shape; offsets non-negative.
  CHECK(message([&] {
          one.filter(zeros({1, 5, 2, 4}), zeros({1, 5, 2, 4}), 0);
        }).find("conv_spe.filter: expected q, k of one shape (B, N, 2, 3)") != std::string::npos);
  CHECK_THROWS_AS(one.filter(zeros({1, 5, 3, 3}), zeros({1, 5, 3, 3}), 0), ShapeError);
  CHECK_THROWS_AS(one.filter(zeros({1, 5, 2, 3}), zeros({1, 6, 2, 3}), 0), ShapeError);
  CHECK_THROWS_AS(one.filter(zeros({5, 2, 3}), zeros({5, 2, 3}), 0), ShapeError);
  CHECK_THROWS_AS(one.filter(zeros({1, 5, 2, 3}), zeros({1, 5, 2, 3}), -1), ShapeError);
  CHECK_THROWS_AS(one.codes(5, -2), ShapeError);
  CHECK_THROWS_AS(one.filter(zeros({1, 5, 2, 3}, f64), zeros({1, 5, 2, 3}, f64), 0), DTypeError);
  // Lags: (L) in 1-D, (L, 2) in 2-D, i64.
  CHECK_THROWS_AS(one.expected_kernel(zeros({3, 2}, i64)), ShapeError);
  CHECK_THROWS_AS(two.expected_kernel(zeros({3}, i64)), ShapeError);
  CHECK(message([&] {
          two.expected_kernel(zeros({3, 3}, i64));
        }).find("conv_spe.expected_kernel") != std::string::npos);
  CHECK_THROWS_AS(one.expected_kernel(zeros({3})), DTypeError);
  // The kernel itself.
  kernels::ConvSpeGrid grid;
  grid.rows = 5;
  grid.realizations = 4;
  Tensor x = zeros({1, 5, 2, 3});
  CHECK(message([&] {
          kernels::conv_spe_filter({x}, {zeros({5, 1, 3})}, grid);
        }).find("conv_spe_filter: weight [5, 1, 3] does not fit x [1, 5, 2, 3]") !=
        std::string::npos);
  CHECK_THROWS_AS(kernels::conv_spe_filter({zeros({1, 6, 2, 3})}, {zeros({6, 1, 3})}, grid),
                  ShapeError);
  CHECK_THROWS_AS(kernels::conv_spe_filter({x}, {zeros({6, 1, 3}, f64)}, grid), DTypeError);
  CHECK_THROWS_AS(
      kernels::conv_spe_filter_backward({x}, {zeros({6, 1, 3})}, {zeros({1, 5, 2, 3})}, grid),
      ShapeError);
  // Sides must match each other, and come with one weight and one gradient each.
  CHECK(message([&] {
          kernels::conv_spe_filter({x, zeros({1, 5, 2, 2})}, {zeros({6, 1, 3}), zeros({4, 1, 3})},
                                   grid);
        }).find("conv_spe_filter: side 1") != std::string::npos);
  CHECK_THROWS_AS(kernels::conv_spe_filter({x, x}, {zeros({6, 1, 3})}, grid), ShapeError);
  CHECK_THROWS_AS(kernels::conv_spe_filter({}, {}, grid), ShapeError);
  CHECK_THROWS_AS(kernels::conv_spe_filter_backward({x, x}, {zeros({6, 1, 3}), zeros({6, 1, 3})},
                                                    {zeros({1, 5, 2, 4})}, grid),
                  ShapeError);
}
