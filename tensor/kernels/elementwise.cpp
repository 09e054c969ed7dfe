// Elementwise ops: unary maps, broadcasting binary ops and where.
// x: S -> y: S;  a: A, b: B -> y: broadcast(A, B);  cond, a, b -> y: broadcast of all three.
#include <cmath>

#include "tensor/kernels/fast_erf.h"
#include "tensor/kernels/fast_exp.h"
#include "tensor/kernels/iterate.h"
#include "tensor/kernels/kernels.h"

namespace spear::kernels {
namespace {

// y = f(x) over any strided x; y is contiguous, so only x's stride varies.
template <typename T, typename F>
Tensor map_unary(const Tensor& x, F f) {
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  const T* in = x.data_ptr<T>();
  T* out = y.data_ptr<T>();
  parallel_runs<2>(
      x.shape(), {y.strides(), x.strides()},
      [&](int64_t n, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& st) {
        T* o = out + off[0];
        const T* i = in + off[1];
        if (st[1] == 1) {  // the common case, written so the compiler vectorises it
          for (int64_t j = 0; j < n; ++j) o[j] = f(i[j]);
        } else {
          for (int64_t j = 0; j < n; ++j) o[j] = f(i[j * st[1]]);
        }
      });
  return y;
}

template <typename T>
Tensor unary_typed(UnaryOp op, const Tensor& x) {
  switch (op) {
    case UnaryOp::neg:
      return map_unary<T>(x, [](T v) { return -v; });
    case UnaryOp::exp:
      return map_unary<T>(x, [](T v) { return std::exp(v); });
    case UnaryOp::log:
      return map_unary<T>(x, [](T v) { return std::log(v); });
    case UnaryOp::sqrt:
      return map_unary<T>(x, [](T v) { return std::sqrt(v); });
    case UnaryOp::rsqrt:
      return map_unary<T>(x, [](T v) { return T(1) / std::sqrt(v); });
    case UnaryOp::abs:
      return map_unary<T>(x, [](T v) { return std::abs(v); });
    case UnaryOp::sin:
      return map_unary<T>(x, [](T v) { return std::sin(v); });
    case UnaryOp::cos:
      return map_unary<T>(x, [](T v) { return std::cos(v); });
    case UnaryOp::tanh:
      return map_unary<T>(x, [](T v) { return std::tanh(v); });
    case UnaryOp::sigmoid:
      return map_unary<T>(x, [](T v) { return T(1) / (T(1) + std::exp(-v)); });
    case UnaryOp::relu:
      return map_unary<T>(x, [](T v) { return v > T(0) ? v : T(0); });
    case UnaryOp::gelu:  // exact form: x * Phi(x)
      return map_unary<T>(
          x, [](T v) { return T(0.5) * v * (T(1) + fast_erf(v * T(0.70710678118654752440))); });
    case UnaryOp::elu:
      return map_unary<T>(x, [](T v) { return v > T(0) ? v : std::expm1(v); });
    case UnaryOp::softplus:  // above 20, log(1 + e^x) == x in every float format we use
      return map_unary<T>(x, [](T v) { return v > T(20) ? v : std::log1p(std::exp(v)); });
    case UnaryOp::erf:
      return map_unary<T>(x, [](T v) { return fast_erf(v); });
  }
  throw Error("unary: unknown op");
}

// dx = g * f'(x) over x, y = f(x) and g, all of one shape, any strides.
template <typename T, typename F>
Tensor map_backward(const Tensor& x, const Tensor& y, const Tensor& g, F df) {
  Tensor dx = Tensor::empty(x.shape(), x.dtype());
  const T* px = x.data_ptr<T>();
  const T* py = y.data_ptr<T>();
  const T* pg = g.data_ptr<T>();
  T* out = dx.data_ptr<T>();
  parallel_runs<4>(
      x.shape(), {dx.strides(), x.strides(), y.strides(), g.strides()},
      [&](int64_t n, const std::array<int64_t, 4>& off, const std::array<int64_t, 4>& st) {
        T* o = out + off[0];
        const T *a = px + off[1], *b = py + off[2], *c = pg + off[3];
        if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {  // vectorised, as above
          for (int64_t j = 0; j < n; ++j) o[j] = c[j] * df(a[j], b[j]);
        } else {
          for (int64_t j = 0; j < n; ++j)
            o[j * st[0]] = c[j * st[3]] * df(a[j * st[1]], b[j * st[2]]);
        }
      });
  return dx;
}

// Each case is f'(x), written with whichever of x and y = f(x) is cheaper.
template <typename T>
Tensor unary_backward_typed(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g) {
  auto d = [&](auto df) { return map_backward<T>(x, y, g, df); };
  const T inv_sqrt_2pi = T(0.39894228040143267794), two_over_sqrt_pi = T(1.12837916709551257390);
  switch (op) {
    case UnaryOp::neg:
      return d([](T, T) { return T(-1); });
    case UnaryOp::exp:
      return d([](T, T y) { return y; });  // e^x
    case UnaryOp::log:
      return d([](T x, T) { return T(1) / x; });  // 1/x
    case UnaryOp::sqrt:
      return d([](T, T y) { return T(0.5) / y; });  // 1/(2 sqrt x)
    case UnaryOp::rsqrt:
      return d([](T, T y) { return T(-0.5) * y * y * y; });  // -x^(-3/2)/2
    case UnaryOp::abs:
      return d([](T x, T) { return T((x > 0) - (x < 0)); });  // sign(x)
    case UnaryOp::sin:
      return d([](T x, T) { return std::cos(x); });
    case UnaryOp::cos:
      return d([](T x, T) { return -std::sin(x); });
    case UnaryOp::tanh:
      return d([](T, T y) { return T(1) - y * y; });  // 1 - tanh^2
    case UnaryOp::sigmoid:
      return d([](T, T y) { return y * (T(1) - y); });  // s (1 - s)
    case UnaryOp::relu:
      return d([](T x, T) { return T(x > 0); });
    case UnaryOp::gelu:  // Phi(x) + x phi(x), with Phi(x) = y / x: a division instead of an erf
      return d([=](T x, T y) {
        const T tiny = T(1e-20);  // below it, y / x loses digits (or is 0 / 0); Phi(x) = 1/2 there
        const T cdf = x > tiny || x < -tiny ? y / x : T(0.5);
        return cdf + x * inv_sqrt_2pi * fast_exp(T(-0.5) * x * x);
      });
    case UnaryOp::elu:
      return d([](T x, T y) { return x > 0 ? T(1) : y + T(1); });  // e^x below 0
    case UnaryOp::softplus:
      return d([](T x, T) { return T(1) / (T(1) + std::exp(-x)); });
    case UnaryOp::erf:
      return d([=](T x, T) { return two_over_sqrt_pi * fast_exp(-x * x); });
  }
  throw Error("unary_backward: unknown op");
}

// One run of y[j] = f(a[j], b[j]) with the operands' strides; unit and zero strides get loops the
// compiler can vectorise.
template <typename T, typename R, typename F>
void binary_run(int64_t n, R* o, const T* a, int64_t sa, const T* b, int64_t sb, F f) {
  if (sa == 1 && sb == 1) {
    for (int64_t j = 0; j < n; ++j) o[j] = f(a[j], b[j]);
  } else if (sa == 1 && sb == 0) {
    const T bv = *b;
    for (int64_t j = 0; j < n; ++j) o[j] = f(a[j], bv);
  } else if (sa == 0 && sb == 1) {
    const T av = *a;
    for (int64_t j = 0; j < n; ++j) o[j] = f(av, b[j]);
  } else {
    for (int64_t j = 0; j < n; ++j) o[j] = f(a[j * sa], b[j * sb]);
  }
}

template <typename T, typename F>
Tensor map_binary(const Tensor& a, const Tensor& b, const Shape& shape, F f) {
  Tensor y = Tensor::empty(shape, a.dtype());
  const T* pa = a.data_ptr<T>();
  const T* pb = b.data_ptr<T>();
  T* out = y.data_ptr<T>();
  parallel_runs<3>(
      shape, {y.strides(), broadcast_strides(a, shape), broadcast_strides(b, shape)},
      [&](int64_t n, const std::array<int64_t, 3>& off, const std::array<int64_t, 3>& st) {
        binary_run(n, out + off[0], pa + off[1], st[1], pb + off[2], st[2], f);
      });
  return y;
}

template <typename T>
Tensor binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, const Shape& s) {
  switch (op) {
    case BinaryOp::add:
      return map_binary<T>(a, b, s, [](T x, T y) { return x + y; });
    case BinaryOp::sub:
      return map_binary<T>(a, b, s, [](T x, T y) { return x - y; });
    case BinaryOp::mul:
      return map_binary<T>(a, b, s, [](T x, T y) { return x * y; });
    case BinaryOp::div:
      return map_binary<T>(a, b, s, [](T x, T y) { return x / y; });
    case BinaryOp::pow:
      return map_binary<T>(a, b, s, [](T x, T y) { return static_cast<T>(std::pow(x, y)); });
    // NaN wins, as in PyTorch (x != x only for NaN).
    case BinaryOp::maximum:
      return map_binary<T>(a, b, s, [](T x, T y) { return x != x || x > y ? x : y; });
    case BinaryOp::minimum:
      return map_binary<T>(a, b, s, [](T x, T y) { return x != x || x < y ? x : y; });
    case BinaryOp::eq:
      return map_binary<T>(a, b, s, [](T x, T y) { return T(x == y); });
    case BinaryOp::ne:
      return map_binary<T>(a, b, s, [](T x, T y) { return T(x != y); });
    case BinaryOp::lt:
      return map_binary<T>(a, b, s, [](T x, T y) { return T(x < y); });
    case BinaryOp::le:
      return map_binary<T>(a, b, s, [](T x, T y) { return T(x <= y); });
    case BinaryOp::gt:
      return map_binary<T>(a, b, s, [](T x, T y) { return T(x > y); });
    case BinaryOp::ge:
      return map_binary<T>(a, b, s, [](T x, T y) { return T(x >= y); });
  }
  throw Error("binary: unknown op");
}

}  // namespace

Tensor unary(UnaryOp op, const Tensor& x) {
  if (x.dtype() == i64 && (op == UnaryOp::neg || op == UnaryOp::abs))
    return unary_typed<int64_t>(op, x);
  return SPEAR_DISPATCH_FLOAT(x.dtype(), unary_name(op),
                              [&] { return unary_typed<scalar_t>(op, x); });
}

Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& grad) {
  SPEAR_CHECK_SHAPE(x.shape() == y.shape() && x.shape() == grad.shape(), unary_name(op),
                    " backward: shapes differ: x ", x.shape(), ", y ", y.shape(), ", grad ",
                    grad.shape());
  SPEAR_CHECK_DTYPE(x.dtype() == y.dtype() && x.dtype() == grad.dtype(), unary_name(op),
                    " backward: dtypes differ");
  return SPEAR_DISPATCH_FLOAT(x.dtype(), unary_name(op),
                              [&] { return unary_backward_typed<scalar_t>(op, x, y, grad); });
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  SPEAR_CHECK_DTYPE(a.dtype() == b.dtype(), name, ": dtypes differ: ", a.dtype(), " and ",
                    b.dtype());
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  // Integer division and powers have no float result type here; convert first.
  if (a.dtype() == i64) {
    SPEAR_CHECK_DTYPE(op != BinaryOp::div && op != BinaryOp::pow, name,
                      ": not defined for i64 tensors; convert with to(f32) or to(f64) first");
    return binary_typed<int64_t>(op, a, b, shape);
  }
  return SPEAR_DISPATCH_FLOAT(a.dtype(), name,
                              [&] { return binary_typed<scalar_t>(op, a, b, shape); });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  SPEAR_CHECK_DTYPE(a.dtype() == b.dtype(), "where: dtypes of the two branches differ: ", a.dtype(),
                    " and ", b.dtype());
  Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor y = Tensor::empty(shape, a.dtype());
  SPEAR_DISPATCH_ALL(a.dtype(), "where", [&] {
    using T = scalar_t;
    SPEAR_DISPATCH_ALL(cond.dtype(), "where", [&] {
      const scalar_t* pc = cond.data_ptr<scalar_t>();
      const T* pa = a.data_ptr<T>();
      const T* pb = b.data_ptr<T>();
      T* out = y.data_ptr<T>();
      parallel_runs<4>(
          shape,
          {y.strides(), broadcast_strides(cond, shape), broadcast_strides(a, shape),
           broadcast_strides(b, shape)},
          [&](int64_t n, const std::array<int64_t, 4>& off, const std::array<int64_t, 4>& st) {
            for (int64_t j = 0; j < n; ++j)
              out[off[0] + j * st[0]] = pc[off[1] + j * st[1]] != scalar_t(0)
                                            ? pa[off[2] + j * st[2]]
                                            : pb[off[3] + j * st[3]];
          });
    });
  });
  return y;
}

}  // namespace spear::kernels
