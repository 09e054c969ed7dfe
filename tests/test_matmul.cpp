// matmul and bmm against a naive triple loop in double precision.
#include <doctest/doctest.h>

#include <cmath>

#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"
#include "tensor/tensor.h"

using namespace spear;
namespace k = spear::kernels;

namespace {

// Deterministic, irregular values.
template <typename T>
Tensor values(const Shape& shape, double phase) {
  std::vector<T> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(std::sin(0.37 * i + phase));
  return tensor(v, shape);
}

// out[b, i, j] = sum_k a[b, i, k] * b[b, k, j] for already-broadcast 3-d operands.
std::vector<double> naive_bmm(const Tensor& a, const Tensor& b) {
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  std::vector<double> out(static_cast<size_t>(B * M * N), 0.0);
  for (int64_t s = 0; s < B; ++s)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t kk = 0; kk < K; ++kk)
          acc += av[(s * M + i) * K + kk] * bv[(s * K + kk) * N + j];
        out[(s * M + i) * N + j] = acc;
      }
  return out;
}

template <typename T>
void check_close(const Tensor& got, const std::vector<double>& want, double tol) {
  std::vector<T> g = got.to_vector<T>();
  REQUIRE(g.size() == want.size());
  for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == doctest::Approx(want[i]).epsilon(tol));
}

}  // namespace

TEST_CASE("2-d matmul in f32 and f64, plain and transposed operands") {
  Tensor a = values<double>({5, 7}, 0.1), b = values<double>({7, 3}, 0.7);
  std::vector<double> want = naive_bmm(k::unsqueeze(a, 0), k::unsqueeze(b, 0));
  check_close<double>(k::matmul(a, b), want, 1e-12);
  check_close<float>(k::matmul(k::to_dtype(a, f32), k::to_dtype(b, f32)), want, 1e-5);
  // The same product from transposed storage (BLAS reads it with the transpose flag).
  Tensor at = k::transpose(k::contiguous(k::transpose(a, 0, 1)), 0, 1);
  Tensor bt = k::transpose(k::contiguous(k::transpose(b, 0, 1)), 0, 1);
  check_close<double>(k::matmul(at, bt), want, 1e-12);
  // A strided slice that BLAS cannot read directly is copied first.
  Tensor wide = values<double>({5, 14}, 0.1);
  Tensor every_other = k::slice(wide, 1, 0, 14, 2);
  check_close<double>(k::matmul(every_other, b),
                      naive_bmm(k::unsqueeze(k::contiguous(every_other), 0), k::unsqueeze(b, 0)),
                      1e-12);
}

TEST_CASE("batched matmul broadcasts batch dims") {
  Tensor a = values<double>({2, 1, 4, 6}, 0.3), b = values<double>({3, 6, 5}, 1.1);
  Tensor out = k::matmul(a, b);
  CHECK(out.shape() == Shape{2, 3, 4, 5});
  Tensor a3 = k::reshape(k::contiguous(k::expand(a, {2, 3, 4, 6})), {6, 4, 6});
  Tensor b3 = k::reshape(k::contiguous(k::expand(b, {2, 3, 6, 5})), {6, 6, 5});
  check_close<double>(out, naive_bmm(a3, b3), 1e-12);
  // (B, N, C) @ (C, O): the Linear-layer shape.
  Tensor x = values<double>({3, 4, 6}, 0.9);
  Tensor w = values<double>({6, 2}, 0.2);
  check_close<double>(k::matmul(x, w), naive_bmm(k::reshape(x, {1, 12, 6}), k::unsqueeze(w, 0)),
                      1e-12);
  check_close<double>(k::bmm(a3, b3), naive_bmm(a3, b3), 1e-12);
}

TEST_CASE("vectors, empty and zero-inner-dim products") {
  Tensor v = values<double>({4}, 0.5), m = values<double>({4, 3}, 0.6);
  Tensor vm = k::matmul(v, m);
  CHECK(vm.shape() == Shape{3});
  check_close<double>(vm, naive_bmm(k::reshape(v, {1, 1, 4}), k::unsqueeze(m, 0)), 1e-12);
  Tensor dot = k::matmul(v, v);
  CHECK(dot.dim() == 0);
  CHECK(k::matmul(zeros({2, 0}), zeros({0, 3})).to_vector<float>() == std::vector<float>(6, 0.0f));
  CHECK(k::matmul(zeros({0, 4}), zeros({4, 3})).shape() == Shape{0, 3});
}

TEST_CASE("matmul errors name the shapes") {
  try {
    k::matmul(zeros({4, 11}), zeros({256, 256}));
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()) == "matmul: inner dims differ: [4, 11] @ [256, 256]");
  }
  CHECK_THROWS_AS(k::matmul(zeros({2, 2}), zeros({2, 2}, f64)), DTypeError);
  CHECK_THROWS_AS(k::matmul(zeros({2, 2}, i64), zeros({2, 2}, i64)), DTypeError);
  CHECK_THROWS_AS(k::bmm(zeros({2, 3, 4}), zeros({3, 4, 5})), ShapeError);
  CHECK_THROWS_AS(k::matmul(zeros({2, 3, 4}), zeros({3, 4, 5})), ShapeError);
}

TEST_CASE("matmul is bit-identical with 1 and 2 threads, both split directions and batches") {
  // Shapes big enough to be cut into blocks by rows, by columns, and with odd edges.
  // The last shape is cut along K (a weight-gradient shape: narrow output, long inner dim).
  for (Shape mkn :
       {Shape{2001, 128, 37}, Shape{17, 256, 4003}, Shape{256, 256, 256}, Shape{40, 9000, 24}}) {
    CAPTURE(mkn);
    Tensor a = values<float>({mkn[0], mkn[1]}, 0.2), b = values<float>({mkn[1], mkn[2]}, 0.4);
    Tensor batched = values<float>({3, mkn[0], mkn[1]}, 0.2);
    set_num_threads(1);
    std::vector<float> one = k::matmul(a, b).to_vector<float>();
    std::vector<float> one_batched =
        k::bmm(batched, k::expand(b, {3, mkn[1], mkn[2]})).to_vector<float>();
    set_num_threads(2);
    CHECK(k::matmul(a, b).to_vector<float>() == one);
    CHECK(k::bmm(batched, k::expand(b, {3, mkn[1], mkn[2]})).to_vector<float>() == one_batched);
  }
}

TEST_CASE("a product cut along its inner dim matches the naive sum") {
  Tensor a = values<double>({40, 9000}, 0.3), b = values<double>({9000, 24}, 0.8);
  std::vector<double> want = naive_bmm(k::unsqueeze(a, 0), k::unsqueeze(b, 0));
  set_num_threads(2);
  check_close<double>(k::matmul(a, b), want, 1e-12);
  // Transposed operands go through the same path.
  Tensor at = k::transpose(k::contiguous(k::transpose(a, 0, 1)), 0, 1);
  check_close<double>(k::matmul(at, b), want, 1e-12);
}
