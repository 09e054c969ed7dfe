// SPEFilter (spe/spe.h, spec 1.3-1.5, 4.2) on a SineSPE code: the statistics of the estimator
// (unbiasedness gated and not, for m < n, m > n and m = n; stationarity under a shift; variance
// proportional to 1/R), the gate limits, the gate noise (fixed per draw, independent per layer),
// gradcheck of every parameter kind, and the bookkeeping of draws and shared codes.
//
// Statistical tolerances: over T independent draws, qhat_m . khat_n = sum_r a_r b_r with i.i.d.
// jointly Gaussian pairs (a_r, b_r), so (spec 1.5)
//   E    = sqrt(R/D) sum_d q_d k_d Pt_d(m - n)
//   Var  = R (E[a^2] E[b^2] + E[ab]^2),  E[a^2] = (RD)^(-1/2) sum_d q_d^2 sigma_d^2, ...
// with sigma_d^2 the lag-0 variance of the gated code (not Pt_d(0), which carries the phase),
// and the mean over T draws has standard error sqrt(Var / T). Every check allows 5 standard
// errors; every sample is seeded, so the tests never flake.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "spe/spe.h"
#include "tensor/kernels/kernels.h"
#include "tensor/random.h"

using namespace spear;
using spe::ConvSPE;
using spe::PositionalCode;
using spe::SineSPE;
using spe::SPEFilter;
using V = std::vector<Tensor>;

namespace {

std::vector<double> values(const Tensor& t) {
  return kernels::to_dtype(t, f64).to_vector<double>();
}

Tensor random(const Shape& shape, DType dtype, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, dtype, &gen);
}

// A gated or plain filter over a fresh SineSPE in f64, with frequencies around 0.1 cycles per
// position and random phases, so the kernel visibly changes and is asymmetric over a few lags.
std::shared_ptr<SPEFilter> make_filter(int64_t H, int64_t D, int64_t R, int64_t K, bool gated,
                                       uint64_t seed = 3) {
  Generator gen(seed);
  auto code = std::make_shared<SineSPE>(H, D, R, K, seed, &gen);
  code->freqs.copy_(randn({H, D, K}, f64, &gen) - 2.0);
  auto filter = std::make_shared<SPEFilter>(code, gated, /*layer=*/0, /*owns_code=*/true);
  filter->to(f64);
  return filter;
}

// q[0, m, h, :] as D values.
std::vector<double> row(const Tensor& x, int64_t m, int64_t h) {
  return values(x.slice(1, m, m + 1).slice(2, h, h + 1));
}

// The lag-0 variances of the (gated) unit-free codes, (H, D): sigma^2 = sum_k softplus(G)^2/(2K)
// (spec 2.4; unlike P(0) it does not depend on the phases), mixed by the gate as
// (1 - gamma) sigma^2 + gamma.
std::vector<double> lag0_variance(const SPEFilter& filter) {
  const auto& code = dynamic_cast<const SineSPE&>(*filter.code);
  const double two_k = 2.0 * static_cast<double>(code.gains.size(2));
  Tensor sigma2 = sum(softplus(code.gains) * softplus(code.gains), {2}) / two_k;
  if (filter.gate.defined()) {
    Tensor gamma = sigmoid(filter.gate);
    sigma2 = (1.0 - gamma) * sigma2 + gamma;
  }
  return values(sigma2);
}

// The closed form for head h, query position m, key position n, with the kernel taken at `lag`
// (m - n for the true value): E, and Var of one draw's qhat_m . khat_n (spec 1.5).
struct Moments {
  double mean, var;
};
Moments moments(const SPEFilter& filter, const Tensor& q, const Tensor& k, int64_t h, int64_t m,
                int64_t n, int64_t lag) {
  const int64_t D = filter.code->features(), R = filter.code->realizations();
  std::vector<double> pt = values(filter.expected_kernel(tensor(std::vector<int64_t>{lag})));
  std::vector<double> sigma2 = lag0_variance(filter);
  std::vector<double> qv = row(q, m, h), kv = row(k, n, h);
  double qk = 0, qq = 0, kk = 0;
  for (int64_t d = 0; d < D; ++d) {
    qk += qv[d] * kv[d] * pt[h * D + d];
    qq += qv[d] * qv[d] * sigma2[h * D + d];
    kk += kv[d] * kv[d] * sigma2[h * D + d];
  }
  const double s2 = 1 / std::sqrt(static_cast<double>(R * D));  // (RD)^(-1/2)
  return {std::sqrt(static_cast<double>(R) / D) * qk, R * (s2 * qq * s2 * kk + s2 * qk * s2 * qk)};
}
Moments moments(const SPEFilter& filter, const Tensor& q, const Tensor& k, int64_t h, int64_t m,
                int64_t n) {
  return moments(filter, q, k, h, m, n, m - n);
}

struct Cell {
  int64_t h, m, n;
};

// qhat_m . khat_n of head h for draws 0 .. T-1: samples[cell][draw].
std::vector<std::vector<double>> sample(const SPEFilter& filter, const Tensor& q, const Tensor& k,
                                        int64_t offset, const std::vector<Cell>& cells, int T) {
  const int64_t H = filter.code->heads(), R = filter.code->realizations();
  std::vector<std::vector<double>> out(cells.size());
  for (int t = 0; t < T; ++t) {
    filter.code->set_draw(t);
    auto [qhat, khat] = filter.forward(q, k, offset);
    std::vector<double> a = values(qhat), b = values(khat);
    for (size_t c = 0; c < cells.size(); ++c) {
      double dot = 0;
      for (int64_t r = 0; r < R; ++r)
        dot += a[(cells[c].m * H + cells[c].h) * R + r] * b[(cells[c].n * H + cells[c].h) * R + r];
      out[c].push_back(dot);
    }
  }
  filter.code->set_draw(0);
  return out;
}

double mean_of(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v;
  return s / static_cast<double>(x.size());
}

// The sample variance and its standard error sqrt((m4 - s^4) / T) (from the fourth central
// moment, so heavy tails widen it honestly).
struct Estimate {
  double value, se;
};
Estimate variance_of(const std::vector<double>& x) {
  const double mu = mean_of(x);
  double m2 = 0, m4 = 0;
  for (double v : x) {
    m2 += (v - mu) * (v - mu);
    m4 += std::pow(v - mu, 4);
  }
  const double n = static_cast<double>(x.size());
  m2 /= n;
  m4 /= n;
  return {m2 * n / (n - 1), std::sqrt((m4 - m2 * m2) / n)};
}

// Checks every cell's mean over T draws against the closed form within 5 standard errors.
void check_unbiased(const SPEFilter& filter, const Tensor& q, const Tensor& k, int64_t offset,
                    const std::vector<Cell>& cells, int T) {
  auto samples = sample(filter, q, k, offset, cells, T);
  for (size_t c = 0; c < cells.size(); ++c) {
    const Moments th = moments(filter, q, k, cells[c].h, cells[c].m, cells[c].n);
    const double se = std::sqrt(th.var / T), mc = mean_of(samples[c]);
    INFO("h " << cells[c].h << ", m " << cells[c].m << ", n " << cells[c].n << ": MC " << mc
              << ", theory " << th.mean << ", SE " << se);
    CHECK(std::fabs(mc - th.mean) < 5 * se);
  }
}

const std::vector<Cell> kCells = {{0, 6, 1}, {0, 1, 6}, {0, 3, 3}, {1, 6, 1}, {1, 1, 6}, {1, 3, 3}};

}  // namespace

TEST_CASE("SPE filter: the mean of qhat_m . khat_n is sqrt(R/D) sum_d q_d k_d Pt_d(m - n)") {
  const int T = 400;
  for (bool gated : {false, true}) {
    CAPTURE(gated);
    auto filter = make_filter(2, 3, 64, 2, gated);
    if (gated) filter->gate.copy_(random({2, 3}, f64, 21));
    Tensor q = random({1, 8, 2, 3}, f64, 22), k = random({1, 8, 2, 3}, f64, 23);
    check_unbiased(*filter, q, k, 0, kCells, T);
    if (!gated) {
      // The test can tell m - n from n - m: the closed form at the flipped lag is far away.
      double separation = 0;
      for (int64_t h : {0, 1}) {
        const Moments th = moments(*filter, q, k, h, 6, 1),
                      flipped = moments(*filter, q, k, h, 6, 1, -5);
        separation =
            std::max(separation, std::fabs(th.mean - flipped.mean) / std::sqrt(th.var / T));
      }
      CHECK(separation > 10);
    }
  }
}

TEST_CASE("SPE filter: stationarity, the same expectation at positions shifted by 1000") {
  const int T = 400;
  auto filter = make_filter(2, 3, 64, 2, /*gated=*/true);
  filter->gate.copy_(random({2, 3}, f64, 24));
  Tensor q = random({1, 8, 2, 3}, f64, 25), k = random({1, 8, 2, 3}, f64, 26);
  check_unbiased(*filter, q, k, 1000, kCells, T);
  // Different absolute positions give different codes, hence different samples.
  CHECK(sample(*filter, q, k, 0, kCells, 3) != sample(*filter, q, k, 1000, kCells, 3));
}

TEST_CASE("SPE filter: the relative noise of qhat . khat falls as 1/sqrt(R)") {
  // Var(qhat . khat) = (S_qq S_kk + S_qk^2) / D does not depend on R, while the mean grows as
  // sqrt(R): the relative std halves when R is multiplied by 4.
  const int T = 2000;
  const Cell cell{0, 5, 2};
  Tensor q = random({1, 8, 2, 3}, f64, 27), k = random({1, 8, 2, 3}, f64, 28);
  std::vector<double> relative_std, log_se;
  for (int64_t R : {16, 64}) {
    CAPTURE(R);
    auto filter = make_filter(2, 3, R, 2, /*gated=*/false);
    const Moments th = moments(*filter, q, k, cell.h, cell.m, cell.n);
    const Estimate var = variance_of(sample(*filter, q, k, 0, {cell}, T)[0]);
    INFO("sample variance " << var.value << " +- " << var.se << ", theory " << th.var);
    CHECK(std::fabs(var.value - th.var) < 5 * var.se);
    relative_std.push_back(std::sqrt(var.value) / std::fabs(th.mean));
    log_se.push_back(0.5 * var.se / var.value);  // SE of log(std) = SE(s^2) / (2 s^2)
  }
  const double log_ratio = std::log(relative_std[0] / relative_std[1]);
  INFO("relative std at R 16 / R 64: " << std::exp(log_ratio));
  CHECK(std::fabs(log_ratio - std::log(2.0)) < 5 * std::hypot(log_se[0], log_se[1]));
}

TEST_CASE("SPE filter: gate limits") {
  const int T = 400;
  Tensor q = random({1, 8, 2, 3}, f64, 29), k = random({1, 8, 2, 3}, f64, 30);
  Tensor lags = arange(-7, 8, 1.0, i64);
  auto filter = make_filter(2, 3, 64, 2, /*gated=*/true);
  SUBCASE("gamma -> 1: plain content attention, E[qhat . khat] / sqrt(R) = q . k / sqrt(D)") {
    filter->gate.fill_(40.0);
    for (double p : values(filter->expected_kernel(lags)))
      CHECK(p == doctest::Approx(1.0).epsilon(1e-12));
    for (const Cell& c : kCells) {
      std::vector<double> qv = row(q, c.m, c.h), kv = row(k, c.n, c.h);
      const double dot = qv[0] * kv[0] + qv[1] * kv[1] + qv[2] * kv[2];
      CHECK(moments(*filter, q, k, c.h, c.m, c.n).mean / 8.0 ==
            doctest::Approx(dot / std::sqrt(3.0)).epsilon(1e-12));
    }
    check_unbiased(*filter, q, k, 0, kCells, T);
  }
  SUBCASE("gamma -> 0: the pure positional kernel") {
    filter->gate.fill_(-40.0);
    std::vector<double> gated = values(filter->expected_kernel(lags));
    std::vector<double> pure = values(filter->code->expected_kernel(lags));
    for (size_t i = 0; i < pure.size(); ++i)
      CHECK(gated[i] == doctest::Approx(pure[i]).epsilon(1e-12));
    check_unbiased(*filter, q, k, 0, kCells, T);
  }
}

TEST_CASE("SPE filter: the gated filter equals its composition from codes and eta, sine and conv") {
  // qhat = sum_d q_d (sqrt(1 - gamma_d) Qbar_d + sqrt(gamma_d) eta_d), eta from stream 1 + layer.
  // The fused filters fold the gate into each chunk of codes; the composition applies it to the
  // whole codes.
  const int64_t H = 2, D = 3, R = 5, K = 2, layer = 4;
  for (const char* kind : {"sine", "conv"}) {
    CAPTURE(kind);
    Generator gen(31);
    std::shared_ptr<PositionalCode> code;
    if (std::string(kind) == "sine")
      code = std::make_shared<SineSPE>(H, D, R, K, 9, &gen);
    else
      code = std::make_shared<ConvSPE>(H, D, R, std::vector<int64_t>{4}, std::vector<int64_t>{}, 9,
                                       &gen);
    SPEFilter filter(code, /*gated=*/true, layer, /*owns_code=*/true);
    filter.to(f64);
    filter.gate.copy_(random({H, D}, f64, 32));
    code->set_draw(12);
    Tensor q = random({2, 70, H, D}, f64, 33).requires_grad_();
    Tensor k = random({2, 70, H, D}, f64, 34).requires_grad_();
    V leaves = {q, k};
    for (const auto& [name, p] : filter.named_parameters()) leaves.push_back(p);
    auto grads_of = [&](const std::pair<Tensor, Tensor>& out) {
      for (Tensor l : leaves) l.zero_grad();
      (sum(out.first * random(out.first.shape(), f64, 35)) +
       sum(out.second * random(out.second.shape(), f64, 36)))
          .backward();
      std::vector<std::vector<double>> g = {values(out.first), values(out.second)};
      for (const Tensor& l : leaves) g.push_back(values(l.grad()));
      return g;
    };
    auto fused = grads_of(filter.forward(q, k, 3));

    Generator eta_gen(code->stream_seed(1 + layer));
    Tensor eta = randn({H, D, R}, f64, &eta_gen) * std::pow(D * R, -0.25);
    Tensor gamma = sigmoid(filter.gate).unsqueeze(-1);
    auto [qbar, kbar] = code->codes(70, 3);
    Tensor qbar_g = sqrt(1.0 - gamma) * qbar + sqrt(gamma) * eta;
    Tensor kbar_g = sqrt(1.0 - gamma) * kbar + sqrt(gamma) * eta;
    auto composed =
        grads_of({sum(q.unsqueeze(-1) * qbar_g, {3}), sum(k.unsqueeze(-1) * kbar_g, {3})});

    REQUIRE(fused.size() == composed.size());
    for (size_t i = 0; i < fused.size(); ++i) {
      CAPTURE(i);
      double scale = 0, worst = 0;
      for (size_t j = 0; j < fused[i].size(); ++j) {
        scale = std::max(scale, std::fabs(composed[i][j]));
        worst = std::max(worst, std::fabs(fused[i][j] - composed[i][j]));
      }
      CHECK(scale > 0);
      CHECK(worst <= 1e-10 * scale);
    }
  }
}

TEST_CASE("SPE filter: decoding one position at a time gives the rows of the whole sequence") {
  // What cached decoding needs: with the draw fixed, position t filtered alone (offset t) is row
  // t of the filtered sequence, gate noise included. The GEMMs group rows differently, so allow
  // a few ulps (observed: identical bits with OpenBLAS).
  auto filter = make_filter(2, 16, 32, 4, /*gated=*/true, 43);
  filter->gate.copy_(random({2, 16}, f64, 44));
  filter->code->set_draw(5);
  Tensor q = random({2, 150, 2, 16}, f64, 45), k = random({2, 150, 2, 16}, f64, 46);
  auto [qhat, khat] = filter->forward(q, k, 0);
  double worst = 0, scale = 0;
  for (int64_t t = 0; t < 150; ++t) {
    auto [qt, kt] = filter->forward(q.slice(1, t, t + 1), k.slice(1, t, t + 1), t);
    std::vector<double> a = values(cat({qt, kt}, -1));
    std::vector<double> e = values(cat({qhat.slice(1, t, t + 1), khat.slice(1, t, t + 1)}, -1));
    for (size_t i = 0; i < a.size(); ++i) {
      worst = std::max(worst, std::fabs(a[i] - e[i]));
      scale = std::max(scale, std::fabs(e[i]));
    }
  }
  CHECK(worst <= 1e-13 * scale);
}

TEST_CASE("SPE filter: gradcheck of q, k and every parameter kind with a fixed draw") {
  for (bool gated : {true, false}) {
    CAPTURE(gated);
    auto filter = make_filter(2, 3, 4, 2, gated, 37);
    if (gated) filter->gate.copy_(random({2, 3}, f64, 38));
    filter->code->set_draw(2);
    auto& code = dynamic_cast<SineSPE&>(*filter->code);
    V inputs = {random({2, 5, 2, 3}, f64, 39).requires_grad_(),
                random({2, 5, 2, 3}, f64, 40).requires_grad_(), code.freqs, code.offsets,
                code.gains};
    if (gated) inputs.push_back(filter->gate);
    GradcheckOptions options;
    options.name = "spe_filter";
    GradcheckResult result = gradcheck(
        [&](const V& in) {
          auto [qhat, khat] = filter->forward(in[0], in[1], 11);
          return cat({qhat, khat}, -1);
        },
        inputs, options);
    CHECK_MESSAGE(result.ok, result.report);
    for (size_t i = 0; i < inputs.size(); ++i) {
      CAPTURE(i);
      double norm = 0;
      for (double g : values(inputs[i].grad())) norm += g * g;
      CHECK(norm > 0);  // every kind really gets a gradient
    }
  }
}

TEST_CASE("SPE filter: a draw is fixed until changed, and layers have independent gate noise") {
  struct Model : nn::Module {
    std::shared_ptr<SPEFilter> f0, f1, f2;
    std::shared_ptr<SineSPE> a, b;
    Model() : nn::Module("Model") {
      a = std::make_shared<SineSPE>(2, 3, 4, 2, 1);
      b = std::make_shared<SineSPE>(2, 3, 4, 2, 2);
      // f0 and f1 share code a (f0 registers it), f2 has its own code b.
      f0 = register_module("f0", std::make_shared<SPEFilter>(a, true, 0, true));
      f1 = register_module("f1", std::make_shared<SPEFilter>(a, true, 1, false));
      f2 = register_module("f2", std::make_shared<SPEFilter>(b, false, 2, true));
    }
  } model;
  model.f1->gate.copy_(model.f0->gate);

  auto codes = spe::positional_codes(model);
  REQUIRE(codes.size() == 2);
  CHECK(codes[0].get() == model.a.get());
  CHECK(codes[1].get() == model.b.get());
  NamedTensors state = model.state_dict();
  auto has = [&](const std::string& key) {
    for (const auto& [name, t] : state)
      if (name == key) return true;
    return false;
  };
  CHECK(has("f0.code.draw"));
  CHECK(has("f0.code.freqs"));
  CHECK(has("f1.gate"));
  CHECK_FALSE(has("f1.code.freqs"));  // a shared code is saved once
  CHECK(has("f2.code.gains"));
  CHECK_FALSE(has("f2.gate"));

  Tensor q = random({1, 6, 2, 3}, f32, 41), k = random({1, 6, 2, 3}, f32, 42);
  std::vector<float> first = model.f0->forward(q, k, 0).first.to_vector<float>();
  CHECK(model.f0->forward(q, k, 0).first.to_vector<float>() == first);  // same draw
  CHECK(model.f1->forward(q, k, 0).first.to_vector<float>() != first);  // other layer's eta
  spe::set_draw(model, 7);
  CHECK(model.a->draw() == 7);
  CHECK(model.b->draw() == 7);
  CHECK(model.f0->forward(q, k, 0).first.to_vector<float>() != first);
  spe::set_draw(model, 0);
  CHECK(model.f0->forward(q, k, 0).first.to_vector<float>() == first);

  // The draw is state: a fresh code loading the checkpoint reproduces the codes of draw 7.
  model.a->set_draw(7);
  SineSPE copy(2, 3, 4, 2, 1);
  copy.load_state_dict(model.a->state_dict());
  CHECK(copy.draw() == 7);
  CHECK(copy.codes(5, 2).first.to_vector<float>() == model.a->codes(5, 2).first.to_vector<float>());

  // Stream seeds: every ingredient matters.
  const uint64_t s = model.a->stream_seed(0);
  CHECK(model.a->stream_seed(0) == s);
  CHECK(model.a->stream_seed(1) != s);
  CHECK(model.b->stream_seed(0) != s);  // another seed
  model.a->set_draw(8);
  CHECK(model.a->stream_seed(0) != s);
}

TEST_CASE("SPE filter: widths, shapes and errors") {
  auto code = std::make_shared<SineSPE>(2, 3, 4, 2, 1);
  SPEFilter filter(code, true, 0, true);
  CHECK(filter.gate.shape() == Shape{2, 3});
  CHECK(filter.output_width(3) == 4);
  auto [qhat, khat] = filter.forward(random({2, 5, 2, 3}, f32, 1), random({2, 5, 2, 3}, f32, 2), 0);
  CHECK(qhat.shape() == Shape{2, 5, 2, 4});
  CHECK(khat.shape() == Shape{2, 5, 2, 4});
  auto message = [](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  CHECK(message([&] { filter.output_width(8); }) ==
        "spe_filter: the attention's head width 8 differs from the positional code's features 3");
  CHECK_THROWS_AS(filter.output_width(8), ShapeError);
  CHECK(message([&] {
          filter.forward(random({2, 5, 2, 4}, f32, 1), random({2, 5, 2, 4}, f32, 1), 0);
        }).find("spe_filter: expected q, k of one shape (B, N, 2, 3)") == 0);
  CHECK_THROWS_AS(filter.forward(random({2, 5, 2, 3}, f32, 1), random({2, 4, 2, 3}, f32, 1), 0),
                  ShapeError);
  CHECK_THROWS_AS(SPEFilter(nullptr, true, 0, true), ConfigError);
  std::ostringstream os;
  filter.pretty_print(os);
  CHECK(os.str().find("SPEFilter(gated=true, layer=0, realizations=4)") != std::string::npos);
  CHECK(os.str().find("(code): SineSPE") != std::string::npos);
}
