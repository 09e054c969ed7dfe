// The linear-attention layer: feature maps, FAVOR+ (its approximation of softmax, its random
// features and their redraw policy), and key padding.
#include <doctest/doctest.h>

#include <cmath>

#include <spear.h>

#include "nn/linear_attention.h"

using namespace spear;
using namespace spear::nn;

namespace {

// softmax(q k^T / sqrt(D)) v per (batch, head): the quadratic reference.
Tensor softmax_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  SoftmaxAttention kernel;
  return kernel.forward(q, k, v, Tensor(), false);
}

double mean_squared_error(const Tensor& a, const Tensor& b) {
  Tensor d = a.to(f64) - b.to(f64);
  return (d * d).mean().item<double>();
}

}  // namespace

TEST_CASE("elu and relu feature maps are positive and as defined") {
  Tensor x = tensor(std::vector<double>{-2, 0, 3}, {1, 1, 1, 3});
  std::vector<double> elu_phi = EluFeatureMap().forward(x, true).to_vector<double>();
  CHECK(elu_phi[0] == doctest::Approx(std::exp(-2.0)));
  CHECK(elu_phi[1] == 1.0);
  CHECK(elu_phi[2] == 4.0);
  CHECK(ReluFeatureMap().forward(x, false).to_vector<double>() ==
        std::vector<double>{1e-3, 1e-3, 3.001});
  CHECK_THROWS_AS(ReluFeatureMap(0.0), ConfigError);
  CHECK_THROWS_AS(make_feature_map("cosine", 4, 0, 0, 0), ConfigError);
}

TEST_CASE("FAVOR+ rows are orthogonal within a block and Gaussian in length") {
  FavorFeatureMap fm(16, 40, 0, 3);  // two full blocks of 16 rows and a partial one of 8
  std::vector<double> w = fm.projection.to(f64).to_vector<double>();
  auto dot = [&](int64_t a, int64_t b) {
    double s = 0;
    for (int64_t c = 0; c < 16; ++c) s += w[a * 16 + c] * w[b * 16 + c];
    return s;
  };
  for (int64_t block : {0, 16, 32})
    for (int64_t i = block; i < std::min<int64_t>(block + 16, 40); ++i)
      for (int64_t j = block; j < i; ++j)
        CHECK(std::fabs(dot(i, j)) < 1e-4 * std::sqrt(dot(i, i) * dot(j, j)));
  // Squared lengths are chi-square(16): mean 16, variance 32; over 40 rows the mean's standard
  // error is sqrt(32 / 40), and 5 of them never fail by chance.
  double mean_sq = 0;
  for (int64_t i = 0; i < 40; ++i) mean_sq += dot(i, i) / 40;
  CHECK(std::fabs(mean_sq - 16) < 5 * std::sqrt(32.0 / 40));
}

TEST_CASE("FAVOR+ attention approaches softmax attention as the number of features grows") {
  // Inputs of moderate norm: the estimator's variance grows like exp(|q^ + k^|^2).
  Generator gen(21);
  Tensor q = randn({1, 12, 1, 8}, f64, &gen) * 0.5, k = randn({1, 12, 1, 8}, f64, &gen) * 0.5;
  Tensor v = randn({1, 12, 1, 4}, f64, &gen);
  Tensor exact = softmax_attention(q, k, v);
  // Each error is averaged over 8 independent draws of W. The error of a Monte-Carlo estimate
  // falls like 1/m; between m = 16 and m = 1024 that is a factor 64, and we ask for 8.
  std::vector<double> errors;
  for (int64_t m : {16, 64, 256, 1024}) {
    double total = 0;
    for (uint64_t seed = 0; seed < 8; ++seed) {
      LinearAttention la(std::make_shared<FavorFeatureMap>(8, m, 0, 1000 + seed), 0.0);
      la.to(f64);
      total += mean_squared_error(la.forward(q, k, v, Tensor(), false), exact);
    }
    errors.push_back(total / 8);
  }
  CAPTURE(errors[0]);
  CAPTURE(errors[3]);
  CHECK(errors[3] < errors[0] / 8);
  CHECK(errors[2] < errors[0]);
}

TEST_CASE("FAVOR+ features estimate the softmax kernel without bias") {
  // phi(q) . phi(k) over many independent draws of W averages to exp(q . k / sqrt(D)); the
  // tolerance is 5 standard errors of that average, measured from the draws themselves.
  Tensor q = tensor(std::vector<double>{0.3, -0.2, 0.5, 0.1}, {1, 1, 1, 4});
  Tensor k = tensor(std::vector<double>{-0.1, 0.4, 0.2, 0.3}, {1, 1, 1, 4});
  const double exact = std::exp((0.3 * -0.1 - 0.2 * 0.4 + 0.5 * 0.2 + 0.1 * 0.3) / 2.0);
  const int draws = 2000;
  double sum = 0, sum_sq = 0;
  for (int s = 0; s < draws; ++s) {
    FavorFeatureMap fm(4, 4, 0, 5000 + s);
    fm.to(f64);
    double est = (fm.forward(q, false) * fm.forward(k, false)).sum().item<double>();
    sum += est;
    sum_sq += est * est;
  }
  const double mean = sum / draws, var = sum_sq / draws - mean * mean;
  CHECK(std::fabs(mean - exact) < 5 * std::sqrt(var / draws));
}

TEST_CASE("FAVOR+ redraws as its policy says, and its state is part of the checkpoint") {
  FavorFeatureMap fixed(4, 8, 0, 1);
  Tensor before = fixed.projection.clone();
  for (int i = 0; i < 3; ++i) fixed.before_forward();
  CHECK(fixed.projection.to_vector<float>() == before.to_vector<float>());

  FavorFeatureMap every2(4, 8, 2, 1);
  CHECK(every2.projection.to_vector<float>() == before.to_vector<float>());  // same seed
  std::vector<std::vector<float>> seen;
  for (int i = 0; i < 5; ++i) {
    every2.before_forward();
    seen.push_back(every2.projection.to_vector<float>());
  }
  CHECK(seen[0] == seen[1]);  // calls 0, 1: the first W
  CHECK(seen[1] != seen[2]);  // call 2: redrawn
  CHECK(seen[2] == seen[3]);
  CHECK(seen[3] != seen[4]);
  every2.eval();
  every2.before_forward();
  every2.before_forward();
  CHECK(every2.projection.to_vector<float>() == seen[4]);  // frozen in eval

  // A copy loaded from the state dict continues with exactly the same draws.
  every2.train();
  FavorFeatureMap copy(4, 8, 2, 99);
  copy.load_state_dict(every2.state_dict());
  for (int i = 0; i < 3; ++i) {
    every2.before_forward();
    copy.before_forward();
  }
  CHECK(copy.projection.to_vector<float>() == every2.projection.to_vector<float>());
  CHECK(every2.state_dict().size() == 3);  // projection, rng_state, calls
}

TEST_CASE("padded keys change nothing, in the numerator or the denominator") {
  Generator gen(8);
  for (const char* map : {"elu", "relu", "favor"})
    for (bool fused : {true, false})
      for (bool causal : {false, true}) {
        CAPTURE(map);
        CAPTURE(fused);
        CAPTURE(causal);
        LinearAttention la(make_feature_map(map, 4, 16, 0, 7), 1e-6, fused);
        Tensor q = randn({1, 5, 2, 4}, f64, &gen), k = randn({1, 5, 2, 4}, f64, &gen);
        Tensor v = randn({1, 5, 2, 3}, f64, &gen);
        la.feature_map->to(f64);
        // The last two positions are padding: garbage keys and values must not matter.
        Tensor mask = tensor(std::vector<int64_t>{0, 0, 0, 1, 1}, {1, 5});
        Tensor padded = la.forward(q, k, v, mask, causal);
        Tensor k2 = cat({k.slice(1, 0, 3), randn({1, 2, 2, 4}, f64, &gen) * 10.0}, 1);
        Tensor v2 = cat({v.slice(1, 0, 3), randn({1, 2, 2, 3}, f64, &gen) * 10.0}, 1);
        Tensor other = la.forward(q, k2, v2, mask, causal);
        Tensor unpadded =
            la.forward(q.slice(1, 0, 3), k.slice(1, 0, 3), v.slice(1, 0, 3), Tensor(), causal);
        CHECK(mean_squared_error(padded, other) < 1e-24);
        CHECK(mean_squared_error(padded.slice(1, 0, 3), unpadded) < 1e-24);
      }
}

TEST_CASE("the layer's fused and composed paths agree, FAVOR+ and causal included") {
  Generator gen(4);
  for (const char* map : {"elu", "favor"}) {
    CAPTURE(map);
    LinearAttention fused(make_feature_map(map, 6, 12, 0, 3), 1e-6, true);
    LinearAttention composed(make_feature_map(map, 6, 12, 0, 3), 1e-6, false);
    fused.to(f64);
    composed.to(f64);
    Tensor q = randn({2, 9, 2, 6}, f64, &gen).requires_grad_();
    Tensor k = randn({2, 9, 2, 6}, f64, &gen).requires_grad_();
    Tensor v = randn({2, 9, 2, 5}, f64, &gen).requires_grad_();
    fused.forward(q, k, v, Tensor(), true).sum().backward();
    std::vector<Tensor> g1 = {q.grad(), k.grad(), v.grad()};
    q.zero_grad();
    k.zero_grad();
    v.zero_grad();
    composed.forward(q, k, v, Tensor(), true).sum().backward();
    std::vector<Tensor> g2 = {q.grad(), k.grad(), v.grad()};
    for (size_t i = 0; i < 3; ++i) CHECK(mean_squared_error(g1[i], g2[i]) < 1e-24);
  }
}
