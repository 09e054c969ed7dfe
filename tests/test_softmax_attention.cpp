// The tiled softmax-attention op against its composed oracle (nn::SoftmaxAttention with
// fused = false), forward and gradients, with causal and padding masks.
#include <doctest/doctest.h>

#include <cmath>

#include <spear.h>

#include "nn/attention.h"
#include "tensor/kernels/kernels.h"

using namespace spear;

namespace {

// The largest error relative to the largest reference value, or absolute when every value is
// below 1: with one visible key softmax is constant, dq and dk are exactly 0 in the composed
// ops and round-off in the tiled one.
double relative_to_max(const Tensor& got, const Tensor& want) {
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double worst = 0, scale = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    worst = std::max(worst, std::fabs(g[i] - w[i]));
    scale = std::max(scale, std::fabs(w[i]));
  }
  return worst / std::max(scale, 1.0);
}

void check_against_composed(DType dtype, double tol, int64_t n, bool causal, bool padded) {
  CAPTURE(n);
  CAPTURE(causal);
  CAPTURE(padded);
  Generator gen(n + 10 * causal + 100 * padded);
  Tensor q = randn({2, n, 3, 8}, dtype, &gen).requires_grad_();
  Tensor k = randn({2, n, 3, 8}, dtype, &gen).requires_grad_();
  Tensor v = randn({2, n, 3, 5}, dtype, &gen).requires_grad_();
  Tensor g = randn({2, n, 3, 5}, dtype, &gen);
  Tensor mask;
  if (padded) {
    // Batch row 1: its last third is padding (and with a causal mask its first rows see keys).
    std::vector<int64_t> m(static_cast<size_t>(2 * n), 0);
    for (int64_t j = n - n / 3; j < n; ++j) m[n + j] = 1;
    mask = tensor(m, {2, n});
  }
  std::vector<Tensor> grads[2];
  Tensor outs[2];
  for (int fused = 0; fused < 2; ++fused) {
    nn::SoftmaxAttention attention(fused == 1);
    outs[fused] = attention.forward(q, k, v, mask, causal);
    outs[fused].backward(g);
    grads[fused] = {q.grad(), k.grad(), v.grad()};
    q.zero_grad();
    k.zero_grad();
    v.zero_grad();
  }
  CHECK(relative_to_max(outs[1], outs[0]) < tol);
  for (size_t i = 0; i < 3; ++i) CHECK(relative_to_max(grads[1][i], grads[0][i]) < tol);
}

}  // namespace

TEST_CASE("tiled softmax attention equals the composed ops, forward and gradients") {
  // 150 positions: three blocks of 64, the last partial.
  for (int64_t n : {1, 5, 64, 150})
    for (bool causal : {false, true})
      for (bool padded : {false, true}) {
        check_against_composed(f64, 1e-12, n, causal, padded);
        check_against_composed(f32, 2e-6, n, causal, padded);
      }
}

TEST_CASE("a query that sees no key outputs zeros and passes back zeros") {
  Tensor q = randn({1, 3, 1, 4}, f64).requires_grad_(), k = randn({1, 3, 1, 4}, f64);
  Tensor v = randn({1, 3, 1, 2}, f64).requires_grad_();
  Tensor mask = tensor(std::vector<int64_t>{1, 0, 0}, {1, 3});  // causal: query 0 sees only key 0
  Tensor y = softmax_attention(q, k, v, mask, true);
  std::vector<double> out = y.to_vector<double>();
  CHECK(out[0] == 0.0);
  CHECK(out[1] == 0.0);
  y.sum().backward();
  std::vector<double> dq = q.grad().to_vector<double>();
  for (int i = 0; i < 4; ++i) CHECK(dq[i] == 0.0);
  for (double x : dq) CHECK(std::isfinite(x));
}

TEST_CASE("tiled softmax attention passes gradcheck and is thread-count invariant") {
  Generator gen(2);
  Tensor q = randn({1, 70, 2, 3}, f64, &gen).requires_grad_();
  Tensor k = randn({1, 70, 2, 3}, f64, &gen).requires_grad_();
  Tensor v = randn({1, 70, 2, 2}, f64, &gen).requires_grad_();
  for (bool causal : {false, true}) {
    auto result = gradcheck(
        [&](const std::vector<Tensor>& in) {
          return softmax_attention(in[0], in[1], in[2], Tensor(), causal);
        },
        {q, k, v});
    CHECK_MESSAGE(result.ok, result.report);
  }
  Tensor a = randn({2, 300, 4, 16}), b = randn({2, 300, 4, 16}), c = randn({2, 300, 4, 16});
  auto run = [&] {
    std::vector<Tensor> out = kernels::softmax_attention(a, b, c, Tensor(), true);
    std::vector<float> all = out[0].to_vector<float>();
    for (const Tensor& d :
         kernels::softmax_attention_backward(a, b, c, Tensor(), true, out[0], out[1], c)) {
      std::vector<float> dv = d.to_vector<float>();
      all.insert(all.end(), dv.begin(), dv.end());
    }
    return all;
  };
  set_num_threads(1);
  std::vector<float> one = run();
  set_num_threads(2);
  CHECK(run() == one);
  CHECK_THROWS_AS(softmax_attention(a, b.slice(3, 0, 8), c, Tensor(), false), ShapeError);
  CHECK_THROWS_AS(softmax_attention(a, b, c, zeros({2, 299}, i64), false), ShapeError);
}

TEST_CASE("tiled softmax attention keeps no N x N matrix") {
  // Forward and backward at N = 2048 with 2 heads: the N x N weights alone would be 32 MiB.
  Tensor q = randn({1, 2048, 2, 16}).requires_grad_(), k = randn({1, 2048, 2, 16});
  Tensor v = randn({1, 2048, 2, 16});
  const int64_t before = memory_stats().current_bytes;
  reset_peak_memory();
  softmax_attention(q, k, v, Tensor(), true).sum().backward();
  const int64_t used = memory_stats().peak_bytes - before;
  CHECK(used < (int64_t(4) << 20));  // the inputs' size is 256 KiB each; N x N would be 32 MiB
}
