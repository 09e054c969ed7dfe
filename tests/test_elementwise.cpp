// Unary maps, broadcasting binary ops and where, on contiguous and strided inputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "tensor/kernels/fast_erf.h"
#include "tensor/kernels/fast_exp.h"
#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"
#include "tensor/tensor.h"

using namespace spear;
namespace k = spear::kernels;

namespace {

// Values in [-3, 3] that avoid the kinks of relu/abs at 0.
template <typename T>
Tensor ramp(const Shape& shape) {
  std::vector<T> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(-3.0 + 6.0 * (i + 0.5) / v.size());
  return tensor(v, shape);
}

template <typename T>
double reference_unary(k::UnaryOp op, double x) {
  switch (op) {
    case k::UnaryOp::neg:
      return -x;
    case k::UnaryOp::exp:
      return std::exp(x);
    case k::UnaryOp::log:
      return std::log(std::fabs(x));  // applied to |x| below
    case k::UnaryOp::sqrt:
      return std::sqrt(std::fabs(x));
    case k::UnaryOp::rsqrt:
      return 1.0 / std::sqrt(std::fabs(x));
    case k::UnaryOp::abs:
      return std::fabs(x);
    case k::UnaryOp::sin:
      return std::sin(x);
    case k::UnaryOp::cos:
      return std::cos(x);
    case k::UnaryOp::tanh:
      return std::tanh(x);
    case k::UnaryOp::sigmoid:
      return 1.0 / (1.0 + std::exp(-x));
    case k::UnaryOp::relu:
      return x > 0 ? x : 0;
    case k::UnaryOp::gelu:
      return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case k::UnaryOp::elu:
      return x > 0 ? x : std::exp(x) - 1.0;
    case k::UnaryOp::softplus:
      return std::log(1.0 + std::exp(x));
    case k::UnaryOp::erf:
      return std::erf(x);
  }
  return NAN;
}

template <typename T>
void check_all_unary(double rtol) {
  using k::UnaryOp;
  for (UnaryOp op : {UnaryOp::neg, UnaryOp::exp, UnaryOp::log, UnaryOp::sqrt, UnaryOp::rsqrt,
                     UnaryOp::abs, UnaryOp::sin, UnaryOp::cos, UnaryOp::tanh, UnaryOp::sigmoid,
                     UnaryOp::relu, UnaryOp::gelu, UnaryOp::elu, UnaryOp::softplus, UnaryOp::erf}) {
    CAPTURE(k::unary_name(op));
    bool positive_only = op == UnaryOp::log || op == UnaryOp::sqrt || op == UnaryOp::rsqrt;
    // A transposed (non-contiguous) input exercises the strided path.
    Tensor x = k::transpose(ramp<T>({6, 5}), 0, 1);
    if (positive_only) x = k::unary(UnaryOp::abs, x);
    Tensor y = k::unary(op, x);
    CHECK(y.shape() == Shape{5, 6});
    std::vector<T> xs = x.to_vector<T>(), ys = y.to_vector<T>();
    for (size_t i = 0; i < xs.size(); ++i)
      CHECK(ys[i] == doctest::Approx(reference_unary<T>(op, xs[i])).epsilon(rtol));
  }
}

}  // namespace

TEST_CASE("unary ops match their definitions in f32 and f64") {
  check_all_unary<double>(1e-14);
  check_all_unary<float>(1e-6);
}

TEST_CASE("softplus and sigmoid stay finite for large inputs") {
  Tensor x = tensor(std::vector<double>{-800, -30, 30, 800});
  CHECK(k::unary(k::UnaryOp::softplus, x).to_vector<double>()[3] == 800.0);
  CHECK(k::unary(k::UnaryOp::sigmoid, x).to_vector<double>() ==
        std::vector<double>{0.0, 1.0 / (1.0 + std::exp(30.0)), 1.0 / (1.0 + std::exp(-30.0)), 1.0});
}

TEST_CASE("binary ops broadcast by NumPy rules") {
  Tensor a = tensor(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor col = tensor(std::vector<float>{10, 20}, {2, 1});
  Tensor row = tensor(std::vector<float>{1, 0, -1});
  CHECK(k::binary(k::BinaryOp::add, a, col).to_vector<float>() ==
        std::vector<float>{11, 12, 13, 24, 25, 26});
  CHECK(k::binary(k::BinaryOp::mul, a, row).to_vector<float>() ==
        std::vector<float>{1, 0, -3, 4, 0, -6});
  // (2,1) with (3,) -> (2,3): both sides broadcast.
  CHECK(k::binary(k::BinaryOp::sub, col, row).to_vector<float>() ==
        std::vector<float>{9, 10, 11, 19, 20, 21});
  CHECK(k::binary(k::BinaryOp::div, a, scalar_tensor(2.0)).to_vector<float>() ==
        std::vector<float>{0.5, 1, 1.5, 2, 2.5, 3});
  CHECK(k::binary(k::BinaryOp::pow, row, scalar_tensor(2.0)).to_vector<float>() ==
        std::vector<float>{1, 0, 1});
  CHECK(k::binary(k::BinaryOp::maximum, a, full({3}, 3.5)).to_vector<float>() ==
        std::vector<float>{3.5, 3.5, 3.5, 4, 5, 6});
  CHECK(k::binary(k::BinaryOp::minimum, a, full({3}, 3.5)).to_vector<float>() ==
        std::vector<float>{1, 2, 3, 3.5, 3.5, 3.5});
  CHECK(k::binary(k::BinaryOp::gt, a, scalar_tensor(3)).to_vector<float>() ==
        std::vector<float>{0, 0, 0, 1, 1, 1});
  CHECK(k::binary(k::BinaryOp::le, a, scalar_tensor(3)).to_vector<float>() ==
        std::vector<float>{1, 1, 1, 0, 0, 0});
  CHECK(
      k::binary(k::BinaryOp::eq, a, k::transpose(k::transpose(a, 0, 1), 0, 1)).to_vector<float>() ==
      std::vector<float>(6, 1));
  CHECK(k::binary(k::BinaryOp::ne, row, scalar_tensor(0)).to_vector<float>() ==
        std::vector<float>{1, 0, 1});
  CHECK(k::binary(k::BinaryOp::lt, row, scalar_tensor(0)).to_vector<float>() ==
        std::vector<float>{0, 0, 1});
  CHECK(k::binary(k::BinaryOp::ge, row, scalar_tensor(0)).to_vector<float>() ==
        std::vector<float>{1, 1, 0});
}

TEST_CASE("binary ops on strided and expanded views equal the contiguous result") {
  Tensor base = ramp<double>({4, 6});
  Tensor strided = k::slice(base, 1, 0, 6, 2);  // (4, 3), stride 2
  Tensor expanded = k::expand(k::slice(base, 0, 0, 1), {4, 3 * 2});
  Tensor a = k::slice(expanded, 1, 1, 6, 2);  // (4, 3) with a zero row stride
  Tensor got = k::binary(k::BinaryOp::mul, strided, a);
  Tensor want = k::binary(k::BinaryOp::mul, k::contiguous(strided), k::contiguous(a));
  CHECK(got.to_vector<double>() == want.to_vector<double>());
}

TEST_CASE("i64 arithmetic, maximum and NaN propagation") {
  Tensor a = tensor(std::vector<int64_t>{1, -2, 3});
  CHECK(k::binary(k::BinaryOp::mul, a, a).to_vector<int64_t>() == std::vector<int64_t>{1, 4, 9});
  CHECK(k::unary(k::UnaryOp::abs, a).to_vector<int64_t>() == std::vector<int64_t>{1, 2, 3});
  CHECK_THROWS_AS(k::binary(k::BinaryOp::div, a, a), DTypeError);
  Tensor n = tensor(std::vector<double>{NAN, 1.0});
  std::vector<double> m =
      k::binary(k::BinaryOp::maximum, n, full({2}, 5.0, f64)).to_vector<double>();
  CHECK(std::isnan(m[0]));
  CHECK(m[1] == 5.0);
}

TEST_CASE("where picks a where cond is non-zero, with broadcasting") {
  Tensor cond = tensor(std::vector<int64_t>{1, 0, 2}, {3});
  Tensor a = full({2, 3}, 1.0);
  Tensor b = tensor(std::vector<float>{-1, -2}, {2, 1});
  CHECK(k::where(cond, a, b).to_vector<float>() == std::vector<float>{1, -1, 1, 1, -2, 1});
}

TEST_CASE("elementwise errors name the op and the shapes") {
  Tensor a = zeros({2, 3}), b = zeros({4});
  try {
    k::binary(k::BinaryOp::add, a, b);
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()) == "add: shapes [2, 3] and [4] do not broadcast");
  }
  CHECK_THROWS_AS(k::binary(k::BinaryOp::add, a, zeros({2, 3}, f64)), DTypeError);
  CHECK_THROWS_AS(k::unary(k::UnaryOp::exp, zeros({2}, i64)), DTypeError);
}

TEST_CASE("elementwise results are bit-identical with 1 and 2 threads") {
  Tensor x = k::transpose(ramp<float>({300, 400}), 0, 1);
  Tensor y = ramp<float>({300, 1});
  auto run = [&] {
    std::vector<float> out = k::unary(k::UnaryOp::gelu, x).to_vector<float>();
    std::vector<float> sum =
        k::binary(k::BinaryOp::add, k::transpose(x, 0, 1), y).to_vector<float>();
    out.insert(out.end(), sum.begin(), sum.end());
    return out;
  };
  set_num_threads(1);
  std::vector<float> one = run();
  set_num_threads(2);
  CHECK(run() == one);
}

TEST_CASE("fast_exp is within 2 ulp of expf, 0 below the float range and inf above it") {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.001953125f) {  // 2^-9 steps: 90 000 points
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(kernels::fast_exp(x) - want) / want);
  }
  CHECK(worst < 2 * 1.1920929e-7);  // 2 ulp of a float (FLT_EPSILON = 2^-23)
  CHECK(kernels::fast_exp(0.0f) == 1.0f);
  CHECK(kernels::fast_exp(-100.0f) == 0.0f);
  CHECK(kernels::fast_exp(-INFINITY) == 0.0f);
  CHECK(std::isinf(kernels::fast_exp(100.0f)));
}

TEST_CASE("fast_erf is within 3 ulp of erf and odd, with erf's limits") {
  double worst_ulp = 0;
  auto check = [&](float x) {
    const double want = std::erf(static_cast<double>(x));
    const float got = kernels::fast_erf(x);
    CHECK(kernels::fast_erf(-x) == -got);
    if (want == 0) return;
    const double ulp = std::nextafter(static_cast<float>(std::fabs(want)), INFINITY) -
                       static_cast<float>(std::fabs(want));
    worst_ulp = std::max(worst_ulp, std::fabs(got - want) / ulp);
  };
  for (float x = -6.0f; x <= 6.0f; x += 0.0001220703125f) check(x);  // 2^-13 steps: 98 000 points
  for (float x = 1e-30f; x < 1e-2f; x *= 1.01f) check(x);            // tiny: erf(x) ~ 2x/sqrt(pi)
  CHECK(worst_ulp <= 3);
  CHECK(kernels::fast_erf(0.0f) == 0.0f);
  CHECK(kernels::fast_erf(10.0f) == 1.0f);
  CHECK(kernels::fast_erf(-INFINITY) == -1.0f);
}
