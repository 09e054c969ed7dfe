// The autograd engine: graph recording, gradient accumulation, retain_graph, no-grad mode,
// in-place checks, deep graphs, graph printing and gradcheck itself.
#include <doctest/doctest.h>

#include <cmath>

#include <spear.h>

#include "tensor/kernels/kernels.h"

using namespace spear;

namespace {
Tensor values(std::vector<double> v, const Shape& shape = {}) {
  return tensor(v, shape);
}
}  // namespace

TEST_CASE("backward of a simple expression gives the analytic gradient") {
  Tensor x = values({1, -2, 3}).requires_grad_();
  Tensor y = (x * x + x * 3.0).sum();  // dy/dx = 2x + 3
  CHECK(y.requires_grad());
  CHECK(!y.is_leaf());
  CHECK(x.is_leaf());
  y.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{5, -1, 9});
}

TEST_CASE("an input used twice gets the sum of both gradients") {
  Tensor x = values({2, 5}).requires_grad_();
  Tensor y = x * x;  // both operands are x
  y.sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{4, 10});
  // A diamond: x feeds two branches that meet again.
  Tensor z = values({1, 2}).requires_grad_();
  Tensor a = exp(z), b = z * 2.0;
  (a * b).sum().backward();  // d/dz (2 z e^z) = 2 e^z (1 + z)
  std::vector<double> g = z.grad().to_vector<double>();
  CHECK(g[0] == doctest::Approx(2 * std::exp(1.0) * 2));
  CHECK(g[1] == doctest::Approx(2 * std::exp(2.0) * 3));
}

TEST_CASE("broadcast gradients are summed back to each input's shape") {
  Tensor a = values({1, 2, 3}, {3, 1}).requires_grad_();
  Tensor b = values({10, 20, 30, 40}, {1, 4}).requires_grad_();
  (a * b).sum().backward();
  CHECK(a.grad().shape() == Shape{3, 1});
  CHECK(a.grad().to_vector<double>() == std::vector<double>{100, 100, 100});
  CHECK(b.grad().shape() == Shape{1, 4});
  CHECK(b.grad().to_vector<double>() == std::vector<double>{6, 6, 6, 6});
}

TEST_CASE("leaves accumulate until zero_grad, and retain_graph allows a second backward") {
  Tensor x = values({1, 2}).requires_grad_();
  Tensor y = (x * x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{4, 8});
  // The graph's saved tensors are freed now.
  try {
    y.backward();
    FAIL("expected an AutogradError");
  } catch (const AutogradError& e) {
    CHECK(std::string(e.what()).find("retain_graph") != std::string::npos);
    CHECK(std::string(e.what()).rfind("sum", 0) == 0);  // the first node to run again
  }
  x.zero_grad();
  CHECK(!x.grad().defined());
}

TEST_CASE("NoGradGuard, detach and constants record nothing") {
  Tensor x = values({1, 2}).requires_grad_();
  {
    NoGradGuard guard;
    CHECK(!is_grad_enabled());
    Tensor y = x * 2.0;
    CHECK(!y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(is_grad_enabled());
  Tensor d = x.detach();
  CHECK(!d.requires_grad());
  CHECK(d.storage() == x.storage());
  Tensor c = values({3, 4});
  CHECK(!(c * c).requires_grad());
  // Only the input that requires grad gets a gradient.
  (x * c).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 4});
  CHECK(!c.grad().defined());
}

TEST_CASE("backward needs a scalar or an explicit gradient") {
  Tensor x = values({1, 2, 3}).requires_grad_();
  Tensor y = x * 2.0;
  CHECK_THROWS_AS(y.backward(), AutogradError);
  y.backward(values({1, 0, -1}));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 0, -2});
  CHECK_THROWS_AS(values({1}).backward(), AutogradError);  // nothing requires grad
  CHECK_THROWS_AS((x * 2.0).backward(values({1, 2})), AutogradError);
}

TEST_CASE("requires_grad_ is for floating leaves only") {
  Tensor x = values({1}).requires_grad_();
  Tensor y = x * 2.0;
  CHECK_THROWS_AS(y.requires_grad_(), AutogradError);
  CHECK_THROWS_AS(arange(3).requires_grad_(), AutogradError);
}

TEST_CASE("changing a saved tensor in place before backward is an error naming the op") {
  Tensor x = values({1, 2}).requires_grad_();
  Tensor e = exp(x);  // exp saves its output e for backward (d e^x = e^x)
  Tensor y = e * 2.0;
  e.fill_(0.0);
  try {
    y.sum().backward();
    FAIL("expected an AutogradError");
  } catch (const AutogradError& err) {
    std::string msg = err.what();
    CHECK(msg.rfind("exp: a tensor saved for backward was modified in place", 0) == 0);
  }
}

TEST_CASE("a 100000-op chain runs backward without recursion") {
  Tensor x = values({1.0}).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = y * 1.0;
  y.sum().backward();
  CHECK(x.grad().item<double>() == 1.0);
}

TEST_CASE("gradients reach the leaves in their dtype, through dtype conversions") {
  Tensor x = tensor({1.0f, 2.0f}).requires_grad_();
  (x.to(f64) * values({3, 4})).sum().backward();
  CHECK(x.grad().dtype() == f32);
  CHECK(x.grad().to_vector<float>() == std::vector<float>{3, 4});
}

TEST_CASE("print_graph shows the ops, their shapes and shared nodes once") {
  Tensor x = values({1, 2, 3, 4}, {2, 2}).requires_grad_();
  Tensor y = exp(x);
  Tensor z = (y * y).sum();
  CHECK(graph_string(z) ==
        "sum []\n"
        "  mul [2, 2]\n"
        "    exp [2, 2]\n"
        "      AccumulateGrad [2, 2]\n"
        "    exp [2, 2] (shown above)\n");
  CHECK(graph_string(x) == "leaf [2, 2]\n");
}

namespace {
// A deliberately wrong backward (d/dx sin x reported as sin x), to show gradcheck catches it.
struct WrongSinFn : Function<WrongSinFn> {
  static constexpr const char* name = "wrong_sin";
  static Tensor forward(Context& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return kernels::unary(kernels::UnaryOp::sin, x);
  }
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {g * sin(ctx.saved(0))};
  }
};
}  // namespace

TEST_CASE("gradcheck passes a right gradient and reports a wrong one") {
  Tensor x = randn({3, 2}, f64).requires_grad_();
  auto right = gradcheck([](const std::vector<Tensor>& in) { return sin(in[0]); }, {x});
  CHECK(right.ok);
  CHECK(right.report.empty());
  GradcheckOptions options;
  options.name = "wrong_sin";
  auto wrong = gradcheck([](const std::vector<Tensor>& in) { return WrongSinFn::apply(in[0]); },
                         {x}, options);
  CHECK(!wrong.ok);
  CHECK(wrong.report.rfind("wrong_sin: input 0 element 0: analytic", 0) == 0);
  CHECK_THROWS_AS(
      gradcheck([](const std::vector<Tensor>& in) { return in[0]; }, {randn({2}).requires_grad_()}),
      DTypeError);
}
