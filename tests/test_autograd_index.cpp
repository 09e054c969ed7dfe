// Gradients of the indexing ops: the index_add and scatter_add kernels that carry them, the
// Functions (index_select, gather, embedding, masked_fill) checked by hand and by gradcheck, and
// one_hot, which records nothing. Kernel values are small integers, exact in every dtype, so they
// compare with ==; each was worked out by hand and matches torch's index_add_ / scatter_add_.
#include <doctest/doctest.h>

#include <spear.h>

#include "int_tensors.h"
#include "tensor/kernels/kernels.h"

using namespace spear;
namespace k = spear::kernels;
using namespace spear::testing;

namespace {

// A random f64 leaf that requires grad; `seed` keeps every test's values fixed.
Tensor leaf(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, f64, &gen).requires_grad_();
}

// A leaf of the given shape whose storage is transposed (a non-contiguous input).
Tensor transposed_leaf(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return k::transpose(randn({shape[1], shape[0]}, f64, &gen), 0, 1).requires_grad_();
}

void check_gradient(const GradcheckFn& fn, const std::vector<Tensor>& inputs, const char* name) {
  GradcheckOptions options;
  options.name = name;
  GradcheckResult result = gradcheck(fn, inputs, options);
  CHECK_MESSAGE(result.ok, result.report);
}

// sum(a * b) in f64, exact for the small integers the adjoint tests use.
double dot(const Tensor& a, const Tensor& b) {
  return k::sum(k::binary(k::BinaryOp::mul, k::to_dtype(a, f64), k::to_dtype(b, f64)))
      .item<double>();
}

}  // namespace

// ---- index_add ----

TEST_CASE_TEMPLATE("index_add adds slices where the ids point, repeated ids accumulating", T, float,
                   double, int64_t) {
  Tensor rows = k::index_add({3, 2}, 0, ids({2, 0, 2}), make<T>({1, 2, 3, 4, 5, 6}, {3, 2}));
  CHECK(rows.shape() == Shape{3, 2});
  CHECK(rows.dtype() == dtype_of<T>());
  CHECK(rows.to_vector<T>() == vals<T>({3, 4, 0, 0, 6, 8}));  // row 2 = [1, 2] + [5, 6]

  Tensor cols = k::index_add({2, 2}, -1, ids({1, 1, 0}), make<T>({1, 2, 3, 4, 5, 6}, {2, 3}));
  CHECK(cols.to_vector<T>() == vals<T>({3, 3, 6, 9}));

  // A middle dim: out[b, s, :] = sum of src[b, l, :] over l with ids[l] == s; src[b, l, i] =
  // 8b + 2l + i, so out[0, 0] = rows 0 + 2 + 3 = [10, 13].
  Tensor mid = k::index_add({2, 3, 2}, 1, ids({0, 2, 0, 0}), iota<T>({2, 4, 2}));
  CHECK(mid.to_vector<T>() == vals<T>({10, 13, 0, 0, 2, 3, 34, 37, 0, 0, 10, 11}));

  Tensor none = Tensor::empty({2, 0}, dtype_of<T>());
  CHECK(k::index_add({2, 3}, 1, ids({}), none).to_vector<T>() == vals<T>({0, 0, 0, 0, 0, 0}));
  CHECK(k::index_add({0, 3}, 1, ids({2}), Tensor::empty({0, 1}, f32)).shape() == Shape{0, 3});
}

TEST_CASE("index_add reads transposed and expanded sources and a strided index") {
  Tensor src_t =
      k::transpose(make<float>({1, 3, 5, 2, 4, 6}, {2, 3}), 0, 1);  // [[1,2],[3,4],[5,6]]
  CHECK(k::index_add({3, 2}, 0, ids({2, 0, 2}), src_t).to_vector<float>() ==
        vals<float>({3, 4, 0, 0, 6, 8}));
  Tensor every_other = k::slice(ids({2, 9, 0, 9, 2}), 0, 0, 5, 2);  // [2, 0, 2]
  Tensor ones_src = k::expand(make<double>({1, 10}, {1, 2}), {3, 2});
  CHECK(k::index_add({3, 2}, 0, every_other, ones_src).to_vector<double>() ==
        vals<double>({1, 10, 0, 0, 2, 20}));
}

// ---- scatter_add ----

TEST_CASE_TEMPLATE("scatter_add follows PyTorch semantics, repeated ids accumulating", T, float,
                   double, int64_t) {
  // dim 0: out[index[i][j]][j] += src[i][j]
  Tensor src = make<T>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {2, 5});
  Tensor down = k::scatter_add({3, 5}, 0, ids({0, 1, 2, 0, 0, 2, 0, 0, 1, 2}, {2, 5}), src);
  CHECK(down.dtype() == dtype_of<T>());
  CHECK(down.to_vector<T>() == vals<T>({1, 7, 8, 4, 5, 0, 2, 0, 9, 0, 6, 0, 3, 0, 10}));

  // dim 1 with repeats: out[0][0] = 1 + 2 + 4, out[1][1] = 5 + 6 + 7.
  Tensor across = k::scatter_add({2, 3}, -1, ids({0, 0, 2, 0, 1, 1, 1, 0}, {2, 4}),
                                 make<T>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4}));
  CHECK(across.to_vector<T>() == vals<T>({7, 0, 3, 8, 18, 0}));

  // An index smaller than the output outside dim leaves the rest zero.
  Tensor part = k::scatter_add({3, 4}, 1, ids({3, 3, 0, 1}, {2, 2}), make<T>({1, 2, 3, 4}, {2, 2}));
  CHECK(part.to_vector<T>() == vals<T>({0, 0, 0, 3, 3, 4, 0, 0, 0, 0, 0, 0}));

  Tensor none = Tensor::empty({2, 0}, dtype_of<T>());
  CHECK(k::scatter_add({2, 3}, 1, ids({}, {2, 0}), none).to_vector<T>() ==
        vals<T>({0, 0, 0, 0, 0, 0}));
}

TEST_CASE("scatter_add reads transposed and expanded sources and indices") {
  // src [[1, 2, 3, 4], [5, 6, 7, 8]] stored transposed, index [[0, 0, 2, 0], [1, 1, 1, 0]] too.
  Tensor src_t = k::transpose(make<double>({1, 5, 2, 6, 3, 7, 4, 8}, {4, 2}), 0, 1);
  Tensor idx_t = k::transpose(ids({0, 1, 0, 1, 2, 1, 0, 0}, {4, 2}), 0, 1);
  CHECK(k::scatter_add({2, 3}, 1, idx_t, src_t).to_vector<double>() ==
        vals<double>({7, 0, 3, 8, 18, 0}));
  // Every row scatters [1, 10] to columns [2, 2]: each output row gets 11 in column 2.
  Tensor src_e = k::expand(make<float>({1, 10}, {1, 2}), {3, 2});
  Tensor idx_e = k::expand(ids({2, 2}, {1, 2}), {3, 2});
  CHECK(k::scatter_add({3, 3}, 1, idx_e, src_e).to_vector<float>() ==
        vals<float>({0, 0, 11, 0, 0, 11, 0, 0, 11}));
}

TEST_CASE("index_add and scatter_add are the adjoints of index_select and gather") {
  // <select(x), y> == <x, add(y)> for every x and y: the defining property of a gradient.
  Tensor x = k::to_dtype(randint(-5, 5, {3, 4, 5}), f64);
  Tensor index = ids({4, 0, 4, 4, 1, 3, 0});
  Tensor y = k::to_dtype(randint(-5, 5, {3, 4, 7}), f64);
  CHECK(dot(k::index_select(x, -1, index), y) == dot(x, k::index_add(x.shape(), -1, index, y)));

  Tensor g_index = k::transpose(randint(0, 4, {3, 6, 2}), 0, 2);  // (2, 6, 3), ids along dim 1
  Tensor g_y = k::to_dtype(randint(-5, 5, {2, 6, 3}), f64);
  CHECK(dot(k::gather(x, -2, g_index), g_y) == dot(x, k::scatter_add(x.shape(), -2, g_index, g_y)));
}

TEST_CASE("index_add and scatter_add give bit-identical results with 1 and 2 threads") {
  // Sources are random floats, so a different summation order would change the rounding.
  const int64_t V = 1000, C = 64, L = 4096;  // L * C = 262144 source elements
  std::vector<int64_t> row_ids(L);
  for (int64_t l = 0; l < L; ++l) row_ids[l] = (l * 7919) % V;  // every row hit about 4 times
  Tensor rows = ids(row_ids);
  Generator gen(7);
  Tensor src = randn({L, C}, f32, &gen);
  Tensor src3 = randn({4, L, 16}, f32, &gen);  // outer > 1: 4 * 4096 * 16 = 262144 elements
  std::vector<int64_t> col_ids(L * C);
  for (int64_t i = 0; i < L * C; ++i) col_ids[i] = (i * 31 + 17) % C;
  Tensor cols = ids(col_ids, {L, C});
  Tensor down = ids(col_ids, {256, 1024});  // scattered down the 64 rows of a (64, 1024) output
  Tensor src_down = randn({256, 1024}, f32, &gen);

  auto run = [&](int threads) {
    set_num_threads(threads);
    return std::vector<std::vector<float>>{
        k::index_add({V, C}, 0, rows, src).to_vector<float>(),
        k::index_add({4, V, 16}, 1, rows, src3).to_vector<float>(),
        k::scatter_add({L, C}, 1, cols, src).to_vector<float>(),
        k::scatter_add({C, 1024}, 0, down, src_down).to_vector<float>()};
  };
  const int before = get_num_threads();
  const auto one = run(1);
  const auto two = run(2);
  set_num_threads(before);
  CHECK(one == two);

  // And right, not just repeatable: a plain loop adding in increasing l rounds identically.
  std::vector<float> expect(V * C, 0.0f), s = src.to_vector<float>();
  for (int64_t l = 0; l < L; ++l)
    for (int64_t c = 0; c < C; ++c) expect[row_ids[l] * C + c] += s[l * C + c];
  CHECK(one[0] == expect);
}

// ---- Function gradients by hand ----

TEST_CASE_TEMPLATE("index_select's gradient adds back to each selected slice", T, float, double) {
  Tensor x = zeros({3, 2}, dtype_of<T>()).requires_grad_();
  Tensor y = index_select(x, 0, ids({2, 0, 2}));
  CHECK(y.grad_fn() != nullptr);
  CHECK(std::string(y.grad_fn()->name()) == "index_select");
  y.backward(make<T>({1, 2, 3, 4, 5, 6}, {3, 2}));
  CHECK(x.grad().dtype() == dtype_of<T>());
  CHECK(x.grad().to_vector<T>() == vals<T>({3, 4, 0, 0, 6, 8}));

  // Down the last dim, with the expanded gradient that sum() hands back.
  Tensor w = zeros({2, 3}, dtype_of<T>()).requires_grad_();
  index_select(w, -1, ids({1, 1, 1, 0})).sum().backward();
  CHECK(w.grad().to_vector<T>() == vals<T>({1, 3, 0, 1, 3, 0}));
}

TEST_CASE_TEMPLATE("gather's gradient scatters back, repeated ids accumulating", T, float, double) {
  Tensor x = zeros({2, 3}, dtype_of<T>()).requires_grad_();
  Tensor y = gather(x, 1, ids({0, 0, 2, 0, 1, 1, 1, 0}, {2, 4}));
  CHECK(std::string(y.grad_fn()->name()) == "gather");
  y.backward(make<T>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4}));
  CHECK(x.grad().to_vector<T>() == vals<T>({7, 0, 3, 8, 18, 0}));
}

TEST_CASE_TEMPLATE("embedding's weight gradient accumulates over repeated ids", T, float, double) {
  Tensor w = ones({4, 2}, dtype_of<T>()).requires_grad_();
  Tensor token_ids = ids({1, 3, 1, 1, 0, 1}, {2, 3});
  Tensor y = embedding(w, token_ids);
  CHECK(y.shape() == Shape{2, 3, 2});
  CHECK(std::string(y.grad_fn()->name()) == "embedding");
  y.sum().backward();
  CHECK(w.grad().to_vector<T>() == vals<T>({1, 1, 4, 4, 0, 0, 1, 1}));  // id counts per row

  w.zero_grad();
  // Upstream gradient rows g[n] = [n, 10n]: row 1 gets n = 0, 2, 3, 5.
  Tensor g = k::reshape(make<T>({0, 0, 1, 10, 2, 20, 3, 30, 4, 40, 5, 50}), {2, 3, 2});
  embedding(w, token_ids).backward(g);
  CHECK(w.grad().to_vector<T>() == vals<T>({4, 40, 10, 100, 0, 0, 1, 10}));

  w.zero_grad();
  embedding(w, k::reshape(ids({2}), {})).sum().backward();  // 0-d ids: output (C)
  CHECK(w.grad().to_vector<T>() == vals<T>({0, 0, 0, 0, 1, 1, 0, 0}));
  w.zero_grad();
  embedding(w, ids({})).sum().backward();  // no ids: a zero gradient
  CHECK(w.grad().to_vector<T>() == vals<T>({0, 0, 0, 0, 0, 0, 0, 0}));
}

TEST_CASE_TEMPLATE("masked_fill passes the gradient only where it kept x", T, float, double) {
  Tensor x = zeros({2, 3}, dtype_of<T>()).requires_grad_();
  Tensor mask = make<T>({1, 0, 1}).requires_grad_();  // a float mask that asks for a gradient
  Tensor y = masked_fill(x, mask, 9);
  CHECK(y.to_vector<T>() == vals<T>({9, 0, 9, 9, 0, 9}));
  CHECK(std::string(y.grad_fn()->name()) == "masked_fill");
  y.backward(make<T>({1, 2, 3, 4, 5, 6}, {2, 3}));
  CHECK(x.grad().to_vector<T>() == vals<T>({0, 2, 0, 0, 5, 0}));
  CHECK(!mask.grad().defined());  // the mask only chooses; it gets no gradient
}

TEST_CASE("indices get no gradient, and nothing is recorded without a grad input") {
  Tensor x = leaf({3, 2}, 1);
  Tensor index = ids({0, 2});
  index_select(x, 0, index).sum().backward();
  CHECK(!index.grad().defined());

  Tensor plain = zeros({3, 2});
  CHECK(index_select(plain, 0, index).grad_fn() == nullptr);
  CHECK(gather(plain, 0, ids({1}, {1, 1})).grad_fn() == nullptr);
  CHECK(embedding(plain, index).grad_fn() == nullptr);
  CHECK(!masked_fill(plain, ids({1, 0}), 2).requires_grad());
  {
    NoGradGuard guard;
    CHECK(!index_select(x, 0, index).requires_grad());
  }

  Tensor hot = one_hot(ids({2, 0}), 3);  // built from ids alone: never recorded
  CHECK(hot.grad_fn() == nullptr);
  CHECK(!hot.requires_grad());
  CHECK(hot.to_vector<float>() == vals<float>({0, 0, 1, 1, 0, 0}));
  CHECK(one_hot(ids({1}), 2, f64).dtype() == f64);
}

TEST_CASE("changing a saved index in place before backward is an error") {
  Tensor x = leaf({3, 2}, 2);
  Tensor index = ids({0, 2});
  Tensor y = index_select(x, 0, index).sum();
  index.fill_(1);  // backward would add into the wrong rows
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("index_select: a tensor saved for backward"),
                       AutogradError);
}

// ---- gradcheck ----

TEST_CASE("index_select passes gradcheck: repeated ids, negative dims, strided inputs") {
  check_gradient([](const std::vector<Tensor>& in) { return index_select(in[0], 0, in[1]); },
                 {leaf({4, 3}, 10), ids({2, 0, 2, 3})}, "index_select dim 0");
  check_gradient([](const std::vector<Tensor>& in) { return index_select(in[0], -1, in[1]); },
                 {transposed_leaf({3, 4}, 11), ids({3, 3, 1, 0, 3})}, "index_select transposed");
  check_gradient(
      [](const std::vector<Tensor>& in) {
        return index_select(transpose(in[0], 0, 2), -2, in[1]);  // middle dim of a permuted input
      },
      {leaf({2, 3, 4}, 12), ids({1, 1, 0})}, "index_select middle dim");
}

TEST_CASE("gather passes gradcheck: repeated ids, negative dims, strided inputs and indices") {
  check_gradient([](const std::vector<Tensor>& in) { return gather(in[0], 1, in[1]); },
                 {leaf({3, 4}, 20), ids({0, 0, 3, 1, 2, 2, 2, 2, 3, 0, 1, 3, 3, 1, 0}, {3, 5})},
                 "gather dim 1");
  check_gradient([](const std::vector<Tensor>& in) { return gather(in[0], -2, in[1]); },
                 {transposed_leaf({4, 3}, 21), ids({3, 3, 0, 1, 1, 1}, {2, 3})},
                 "gather dim -2, index smaller than input");
  check_gradient(
      [](const std::vector<Tensor>& in) { return gather(in[0], -1, in[1]); },
      {leaf({2, 3, 4}, 22), k::transpose(randint(0, 4, {5, 3, 2}), 0, 2)},  // (2, 3, 5) strided
      "gather 3-d, transposed index");
}

TEST_CASE("embedding passes gradcheck: repeated ids, strided weight, 0-d ids") {
  check_gradient([](const std::vector<Tensor>& in) { return embedding(in[0], in[1]); },
                 {leaf({5, 3}, 30), ids({4, 0, 4, 2, 4, 0}, {2, 3})}, "embedding");
  check_gradient([](const std::vector<Tensor>& in) { return embedding(in[0], in[1]); },
                 {transposed_leaf({5, 3}, 31), k::transpose(ids({1, 1, 3, 1}, {2, 2}), 0, 1)},
                 "embedding transposed");
  check_gradient([](const std::vector<Tensor>& in) { return embedding(in[0], in[1]); },
                 {leaf({5, 3}, 32), k::reshape(ids({3}), {})}, "embedding 0-d ids");
}

TEST_CASE("masked_fill passes gradcheck with broadcast and strided masks") {
  check_gradient([](const std::vector<Tensor>& in) { return masked_fill(in[0], in[1], -2.5); },
                 {leaf({3, 4}, 40), ids({1, 0, 0, 1}, {1, 4})}, "masked_fill broadcast mask");
  check_gradient(
      [](const std::vector<Tensor>& in) { return masked_fill(in[0], in[1], 0); },
      {transposed_leaf({3, 2}, 41), k::transpose(make<double>({1, 0, 0, 0, 1, 0}, {2, 3}), 0, 1)},
      "masked_fill strided");
}

// ---- errors ----

TEST_CASE("index_add and scatter_add errors name the op and the shapes") {
  Tensor src = zeros({3, 2});
  CHECK_THROWS_WITH_AS(k::index_add({3, 2}, 0, ids({0, 3, 1}), src),
                       "index_add: index 3 out of range [0, 3) at position 1", ShapeError);
  CHECK_THROWS_WITH_AS(k::index_add({3, 2}, 0, make<float>({0, 1, 2}), src),
                       "index_add: index tensor must be i64, got f32", DTypeError);
  CHECK_THROWS_WITH_AS(k::index_add({3, 2}, 0, ids({0, 1, 2}, {3, 1}), src),
                       "index_add: index must be 1-d, got shape [3, 1]", ShapeError);
  CHECK_THROWS_WITH_AS(k::index_add({3, 2}, 1, ids({0, 1, 1}), src),
                       "index_add: src shape [3, 2] does not match output shape [3, 2] with 3 ids "
                       "in dim 1, i.e. [3, 3]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(k::index_add({3, 2}, -3, ids({0}), src),
                       "index_add: dim -3 out of range for a tensor of rank 2", ShapeError);
  CHECK_THROWS_WITH_AS(k::index_add({}, 0, ids({0}), zeros({1})),
                       "index_add: output must have at least one dim, got shape []", ShapeError);

  CHECK_THROWS_WITH_AS(k::scatter_add({3}, 0, ids({0, 0}, {1, 2}), zeros({1, 2})),
                       "scatter_add: index shape [1, 2] has rank 2 but output [3] has rank 1",
                       ShapeError);
  CHECK_THROWS_WITH_AS(k::scatter_add({2, 2}, 0, ids({0, 0}, {1, 2}), zeros({2, 1})),
                       "scatter_add: src shape [2, 1] differs from index shape [1, 2]", ShapeError);
  CHECK_THROWS_WITH_AS(
      k::scatter_add({2, 2}, 0, ids({0, 0, 0}, {1, 3}), zeros({1, 3})),
      "scatter_add: index shape [1, 3] is larger than output shape [2, 2] in dim 1", ShapeError);
  CHECK_THROWS_WITH_AS(k::scatter_add({2, 2}, 1, ids({0, -1}, {1, 2}), zeros({1, 2})),
                       "scatter_add: index -1 out of range [0, 2) at position 1", ShapeError);
  CHECK_THROWS_WITH_AS(k::scatter_add({2, 2}, 2, ids({0}, {1, 1}), zeros({1, 1})),
                       "scatter_add: dim 2 out of range for a tensor of rank 2", ShapeError);
}

TEST_CASE("the differentiable ops report bad input like their kernels, while recording") {
  Tensor x = leaf({2, 3}, 50);
  CHECK_THROWS_WITH_AS(index_select(x, 1, ids({0, 3})),
                       "index_select: index 3 out of range [0, 3) at position 1", ShapeError);
  CHECK_THROWS_WITH_AS(gather(x, 0, ids({0, 2}, {1, 2})),
                       "gather: index 2 out of range [0, 2) at position 1", ShapeError);
  CHECK_THROWS_WITH_AS(embedding(x, ids({2})), "embedding: id 2 out of range [0, 2) at position 0",
                       ShapeError);
  CHECK_THROWS_WITH_AS(masked_fill(x, ids({1, 0}), 0),
                       doctest::Contains("masked_fill: shapes [2, 3] and [2] do not broadcast"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(one_hot(ids({0, 3}), 3), "one_hot: id 3 out of range [0, 3) at position 1",
                       ShapeError);
  CHECK(!x.grad().defined());  // nothing ran backward
}
