// The fused linear-attention op against (1) its composed oracle (nn::linear_attention_composed),
// forward and gradients, and (2) an explicit O(N^2) masked computation in double precision.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>

#include <spear.h>

#include "nn/linear_attention.h"
#include "tensor/kernels/kernels.h"

using namespace spear;

namespace {

// y[b, i, h] = sum_{j (<= i)} (q_i . k_j) v_j / (sum_{j (<= i)} q_i . k_j + eps), in double.
std::vector<double> explicit_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                       bool causal, double eps) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), F = q.size(3), M = v.size(3);
  std::vector<double> qv = q.to_vector<double>(), kv = k.to_vector<double>(),
                      vv = v.to_vector<double>();
  std::vector<double> out(static_cast<size_t>(B * N * H * M));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        std::vector<double> num(static_cast<size_t>(M), 0.0);
        double den = eps;
        for (int64_t j = 0; j < (causal ? i + 1 : N); ++j) {
          double w = 0;
          for (int64_t f = 0; f < F; ++f)
            w += qv[((b * N + i) * H + h) * F + f] * kv[((b * N + j) * H + h) * F + f];
          den += w;
          for (int64_t m = 0; m < M; ++m) num[m] += w * vv[((b * N + j) * H + h) * M + m];
        }
        for (int64_t m = 0; m < M; ++m) out[((b * N + i) * H + h) * M + m] = num[m] / den;
      }
  return out;
}

// Non-negative features, as a feature map gives.
Tensor features(const Shape& shape, DType dtype, Generator& gen) {
  return rand(shape, dtype, &gen);
}

// Largest error relative to the largest reference value: gradients of linear attention cancel
// (for N = 1, y = v and dq = 0 exactly), so an element-wise relative error would measure noise.
double relative_to_max(const std::vector<double>& got, const std::vector<double>& want) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, std::fabs(got[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return worst / std::max(scale, 1e-300);
}

// FT's metric for outputs: |a - b| / (|b| + 1e-6), element-wise.
double max_relative_error(const std::vector<double>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::fabs(got[i] - want[i]) / (std::fabs(want[i]) + 1e-6));
  return worst;
}

// Runs both paths on the same inputs, backpropagates g through each, and checks that the outputs
// and every input's gradient agree within tol.
void check_paths_agree(const std::vector<Tensor>& inputs, const Tensor& g,
                       const std::function<Tensor()>& fused,
                       const std::function<Tensor()>& composed, double tol) {
  auto run = [&](const std::function<Tensor()>& path) {
    Tensor out = path();
    std::vector<std::vector<double>> values = {out.to_vector<double>()};
    out.backward(g);
    for (Tensor t : inputs) {
      values.push_back(t.grad().to_vector<double>());
      t.zero_grad();
    }
    return values;
  };
  const std::vector<std::vector<double>> a = run(fused), b = run(composed);
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);  // 0: the output, then the inputs' gradients
    CHECK(relative_to_max(a[i], b[i]) < tol);
  }
}

void check_fused_equals_composed(DType dtype, double tol, bool causal, int64_t n) {
  CAPTURE(causal);
  CAPTURE(n);
  Generator gen(causal ? 11 : 12);
  Tensor q = features({2, n, 3, 5}, dtype, gen).requires_grad_();
  Tensor k = features({2, n, 3, 5}, dtype, gen).requires_grad_();
  Tensor v = randn({2, n, 3, 4}, dtype, &gen).requires_grad_();
  Tensor g = randn({2, n, 3, 4}, dtype, &gen);
  check_paths_agree(
      {q, k, v}, g, [&] { return linear_attention(q, k, v, causal); },
      [&] { return nn::linear_attention_composed(q, k, v, causal, 1e-6); }, tol);
}

}  // namespace

TEST_CASE("fused linear attention equals the composed ops, forward and gradients") {
  // N = 150 spans three causal chunks, N = 600 three non-causal ones, the last ones partial. (N = 1
  // is left to the explicit test:
  // there y = v (q.k) / (q.k + eps), so dq and dk are of order eps and pure cancellation.)
  for (bool causal : {false, true})
    for (int64_t n : {2, 7, 150, 600}) {
      check_fused_equals_composed(f64, 1e-12, causal, n);
      check_fused_equals_composed(f32, 1e-5, causal, n);
    }
}

TEST_CASE("causal fused linear attention matches the explicit O(N^2) computation in f32") {
  Generator gen(3);
  struct Case {
    int64_t n, f, m;
  };
  for (Case c : {Case{1000, 8, 128}, Case{333, 128, 8}, Case{64, 32, 32}, Case{700, 64, 16},
                 Case{1, 4, 4}}) {
    CAPTURE(c.n);
    for (bool causal : {true, false}) {
      Tensor q = features({1, c.n, 2, c.f}, f32, gen), k = features({1, c.n, 2, c.f}, f32, gen);
      Tensor v = rand({1, c.n, 2, c.m}, f32, &gen);
      std::vector<double> want = explicit_attention(q, k, v, causal, 1e-6);
      CHECK(max_relative_error(linear_attention(q, k, v, causal).to_vector<double>(), want) < 1e-5);
    }
  }
}

TEST_CASE("linear attention gradients pass gradcheck across chunk boundaries") {
  Generator gen(5);
  for (bool causal : {true, false}) {
    const int64_t n = causal ? 70 : 300;  // two chunks
    Tensor q = features({1, n, 1, 2}, f64, gen).requires_grad_();
    Tensor k = features({1, n, 1, 2}, f64, gen).requires_grad_();
    Tensor v = randn({1, n, 1, 2}, f64, &gen).requires_grad_();
    auto result = gradcheck(
        [&](const std::vector<Tensor>& in) {
          return linear_attention(in[0], in[1], in[2], causal);
        },
        {q, k, v});
    CHECK_MESSAGE(result.ok, result.report);
  }
}

TEST_CASE(
    "linear attention is bit-identical with 1 and 2 threads (elu, FAVOR+), and checks inputs") {
  Generator gen(9);
  Tensor q = features({2, 300, 4, 16}, f32, gen), k = features({2, 300, 4, 16}, f32, gen);
  Tensor v = randn({2, 300, 4, 16}, f32, &gen), g = randn({2, 300, 4, 16}, f32, &gen);
  Tensor mask = gt(rand({2, 300}, f32, &gen), full({}, 0.8));
  Tensor projection = randn({24, 16}, f32, &gen);
  auto run = [&](FeatureMapKind map, bool causal) {
    LinearAttentionOptions options;
    options.causal = causal;
    options.feature_map = map;
    if (map == FeatureMapKind::favor) options.projection = projection;
    std::vector<Tensor> forward = kernels::linear_attention(q, k, v, mask, options);
    std::vector<float> out = forward[0].to_vector<float>();
    for (const Tensor& d :
         kernels::linear_attention_backward(q, k, v, mask, forward[1], g, options)) {
      std::vector<float> dv = d.to_vector<float>();
      out.insert(out.end(), dv.begin(), dv.end());
    }
    return out;
  };
  for (FeatureMapKind map : {FeatureMapKind::elu, FeatureMapKind::favor})
    for (bool causal : {false, true}) {
      CAPTURE(static_cast<int>(map));
      CAPTURE(causal);
      set_num_threads(1);
      std::vector<float> one = run(map, causal);
      set_num_threads(2);
      CHECK(run(map, causal) == one);
    }
  CHECK_THROWS_AS(linear_attention(q, k.slice(3, 0, 8), v, true), ShapeError);
  CHECK_THROWS_AS(linear_attention(q, k, v.to(f64), true), DTypeError);
  CHECK_THROWS_AS(linear_attention(q.reshape({600, 4, 16}), k, v, true), ShapeError);
  LinearAttentionOptions options;
  CHECK_THROWS_WITH_AS(linear_attention(q, k, v, zeros({2, 299}), options),
                       doctest::Contains("key_padding_mask"), ShapeError);
  options.feature_map = FeatureMapKind::favor;  // without a projection, then a wrong one
  CHECK_THROWS_WITH_AS(linear_attention(q, k, v, Tensor(), options),
                       doctest::Contains("projection"), ShapeError);
  options.projection = zeros({24, 8});
  CHECK_THROWS_WITH_AS(linear_attention(q, k, v, Tensor(), options),
                       doctest::Contains("projection"), ShapeError);
  options.projection = zeros({24, 16}, f64);
  CHECK_THROWS_AS(linear_attention(q, k, v, Tensor(), options), DTypeError);
}

namespace {

// The feature map and the key padding inside the kernel against the composed path: map, zero the
// padded keys, attend.
void check_fused_map_equals_composed(DType dtype, double tol, FeatureMapKind map, bool causal,
                                     int64_t n) {
  CAPTURE(static_cast<int>(map));
  CAPTURE(causal);
  CAPTURE(n);
  Generator gen(20 + n);
  Tensor q = randn({2, n, 3, 5}, dtype, &gen).requires_grad_();
  Tensor k = randn({2, n, 3, 5}, dtype, &gen).requires_grad_();
  Tensor v = randn({2, n, 3, 4}, dtype, &gen).requires_grad_();
  Tensor g = randn({2, n, 3, 4}, dtype, &gen);
  Tensor mask = gt(rand({2, n}, f64, &gen), full({}, 0.7, f64));  // ~30 % padded keys
  LinearAttentionOptions options;
  options.causal = causal;
  options.feature_map = map;
  options.relu_eps = 0.01;
  std::shared_ptr<nn::FeatureMap> phi;
  if (map == FeatureMapKind::elu) {
    phi = std::make_shared<nn::EluFeatureMap>();
  } else if (map == FeatureMapKind::relu) {
    phi = std::make_shared<nn::ReluFeatureMap>(0.01);
  } else {  // 7 random features of the width-5 inputs
    auto favor = std::make_shared<nn::FavorFeatureMap>(5, 7, 0, 3);
    options.projection = favor->projection.to(dtype);
    phi = favor;
  }
  Tensor keep = eq(mask.to(dtype), zeros({}, dtype)).unsqueeze(-1).unsqueeze(-1);
  check_paths_agree(
      {q, k, v}, g, [&] { return linear_attention(q, k, v, mask, options); },
      [&] {
        return nn::linear_attention_composed(phi->forward(q, true), phi->forward(k, false) * keep,
                                             v, causal, 1e-6);
      },
      tol);
}

}  // namespace

TEST_CASE("feature maps and key padding inside the kernel equal the composed ops") {
  for (FeatureMapKind map : {FeatureMapKind::elu, FeatureMapKind::relu, FeatureMapKind::favor})
    for (bool causal : {false, true})
      for (int64_t n : {3, 150, 600}) {
        check_fused_map_equals_composed(f64, 1e-12, map, causal, n);
        check_fused_map_equals_composed(f32, 1e-5, map, causal, n);
      }
}

TEST_CASE("the non-causal backward gives the same gradients from the saved sums as without them") {
  Generator gen(31);
  Tensor q = randn({2, 300, 3, 8}, f64, &gen), k = randn({2, 300, 3, 8}, f64, &gen);
  Tensor v = randn({2, 300, 3, 5}, f64, &gen), g = randn({2, 300, 3, 5}, f64, &gen);
  LinearAttentionOptions options;
  options.feature_map = FeatureMapKind::elu;
  std::vector<Tensor> forward = kernels::linear_attention(q, k, v, Tensor(), options);
  CHECK(forward[1].shape() == Shape{2, 3, 8, 6});
  std::vector<Tensor> saved =
      kernels::linear_attention_backward(q, k, v, Tensor(), forward[1], g, options);
  std::vector<Tensor> recomputed =
      kernels::linear_attention_backward(q, k, v, Tensor(), Tensor(), g, options);
  for (size_t i = 0; i < 3; ++i)
    CHECK(relative_to_max(saved[i].to_vector<double>(), recomputed[i].to_vector<double>()) < 1e-14);
  CHECK_THROWS_WITH_AS(
      kernels::linear_attention_backward(q, k, v, Tensor(), zeros({2, 3, 8, 5}, f64), g, options),
      doctest::Contains("sums"), ShapeError);
}
