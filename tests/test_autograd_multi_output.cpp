// Functions with several outputs: each output carries its own gradient slot, outputs nothing used
// get zeros, and a node runs once, after every use of every output has sent its gradient.
#include <doctest/doctest.h>

#include <spear.h>

using namespace spear;

namespace {

// x, y: S -> {x + y, x * y}. Not registered: it exists for these tests only.
struct SumAndProductFn : Function<SumAndProductFn> {
  static constexpr const char* name = "sum_and_product";
  static int backward_calls;
  static std::vector<Tensor> forward(Context& ctx, const Tensor& x, const Tensor& y) {
    ctx.save_for_backward({x, y});
    return {x + y, x * y};
  }
  // dx = g_sum + g_product y, dy = g_sum + g_product x
  static std::vector<Tensor> backward(Context& ctx, const std::vector<Tensor>& grads) {
    ++backward_calls;
    const Tensor x = ctx.saved(0), y = ctx.saved(1);
    return {grads[0] + grads[1] * y, grads[0] + grads[1] * x};
  }
};
int SumAndProductFn::backward_calls = 0;

Tensor values(std::vector<double> v) {
  return tensor(v, {static_cast<int64_t>(v.size())});
}

}  // namespace

TEST_CASE("a two-output Function gets one gradient per output and runs backward once") {
  Tensor x = values({1, 2}).requires_grad_(), y = values({3, -1}).requires_grad_();
  std::vector<Tensor> out = SumAndProductFn::apply(x, y);
  REQUIRE(out.size() == 2);
  CHECK(out[0].to_vector<double>() == std::vector<double>{4, 1});
  CHECK(out[1].to_vector<double>() == std::vector<double>{3, -2});
  CHECK(out[0].grad_fn() == out[1].grad_fn());
  SumAndProductFn::backward_calls = 0;
  // L = sum(2 s) + sum(3 p): dx = 2 + 3 y, dy = 2 + 3 x
  (sum(out[0] * 2.0) + sum(out[1] * 3.0)).backward();
  CHECK(SumAndProductFn::backward_calls == 1);
  CHECK(x.grad().to_vector<double>() == std::vector<double>{11, -1});
  CHECK(y.grad().to_vector<double>() == std::vector<double>{5, 8});
}

TEST_CASE("an output nothing used gets a zero gradient") {
  Tensor x = values({1, 2}).requires_grad_(), y = values({3, -1}).requires_grad_();
  std::vector<Tensor> out = SumAndProductFn::apply(x, y);
  sum(out[1]).backward();  // only the product: dx = y, dy = x
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3, -1});
  CHECK(y.grad().to_vector<double>() == std::vector<double>{1, 2});
  x.zero_grad();
  y.zero_grad();
  std::vector<Tensor> again = SumAndProductFn::apply(x, y);
  sum(again[0]).backward();  // only the sum: dx = dy = 1
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 1});
  CHECK(y.grad().to_vector<double>() == std::vector<double>{1, 1});
}

TEST_CASE("several uses of each output are summed before the node runs") {
  Tensor x = values({0.5, -1.5}).requires_grad_(), y = values({2, 0.25}).requires_grad_();
  std::vector<Tensor> out = SumAndProductFn::apply(x, y);
  // L = sum(s^2) + sum(s p) + sum(p): dL/ds = 2 s + p, dL/dp = s + 1
  Tensor s = out[0], p = out[1];
  SumAndProductFn::backward_calls = 0;
  (sum(s * s) + sum(s * p) + sum(p)).backward();
  CHECK(SumAndProductFn::backward_calls == 1);
  const std::vector<double> xv{0.5, -1.5}, yv{2, 0.25};
  for (size_t i = 0; i < 2; ++i) {
    const double sv = xv[i] + yv[i], pv = xv[i] * yv[i];
    const double ds = 2 * sv + pv, dp = sv + 1;
    CHECK(x.grad().to_vector<double>()[i] == doctest::Approx(ds + dp * yv[i]));
    CHECK(y.grad().to_vector<double>()[i] == doctest::Approx(ds + dp * xv[i]));
  }
}

TEST_CASE("gradcheck through both outputs of a two-output Function") {
  Generator gen(3);
  auto fn = [](const std::vector<Tensor>& in) {
    std::vector<Tensor> out = SumAndProductFn::apply(in[0], in[1]);
    return tanh(out[0]) * out[1];
  };
  const GradcheckResult r = gradcheck(
      fn, {randn({3, 2}, f64, &gen).requires_grad_(), randn({3, 2}, f64, &gen).requires_grad_()});
  CHECK_MESSAGE(r.ok, r.report);
}

TEST_CASE("the graph lists every output shape, and a second backward is refused") {
  Tensor x = values({1, 2}).requires_grad_(), y = values({3, 4});
  std::vector<Tensor> out = SumAndProductFn::apply(x, y);
  CHECK(graph_string(out[1]).find("sum_and_product [2] [2]") != std::string::npos);
  Tensor loss = sum(out[0]) + sum(out[1]);
  loss.backward();
  CHECK(y.grad().defined() == false);  // y does not require grad
  CHECK_THROWS_AS(loss.backward(), AutogradError);
}

TEST_CASE("without grad mode nothing is recorded") {
  Tensor x = values({1, 2}).requires_grad_(), y = values({3, 4});
  NoGradGuard no_grad;
  std::vector<Tensor> out = SumAndProductFn::apply(x, y);
  CHECK(!out[0].requires_grad());
  CHECK(!out[1].requires_grad());
}
