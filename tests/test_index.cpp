// Index kernels (index_select, gather, embedding, masked_fill, one_hot) and join kernels (cat,
// stack, split, chunk). Values are small integers, exact in every dtype, so results compare with
// ==. They are hand-computed unless a comment gives the numpy expression that produced them.
#include <doctest/doctest.h>

#include "int_tensors.h"
#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"
#include "tensor/tensor.h"

using namespace spear;
namespace k = spear::kernels;
using namespace spear::testing;

namespace {}  // namespace

// ---- index_select ----

TEST_CASE_TEMPLATE("index_select picks slices along dim", T, float, double, int64_t) {
  Tensor x = iota<T>({2, 3});  // [[0, 1, 2], [3, 4, 5]]
  Tensor rows = k::index_select(x, 0, ids({1, 1, 0}));
  CHECK(rows.shape() == Shape{3, 3});
  CHECK(rows.dtype() == dtype_of<T>());
  CHECK(rows.to_vector<T>() == vals<T>({3, 4, 5, 3, 4, 5, 0, 1, 2}));
  Tensor cols = k::index_select(x, -1, ids({2, 0}));
  CHECK(cols.shape() == Shape{2, 2});
  CHECK(cols.to_vector<T>() == vals<T>({2, 0, 5, 3}));

  // np.arange(24).reshape(2, 3, 4)[:, [2, 0, 2], :]
  Tensor mid = k::index_select(iota<T>({2, 3, 4}), 1, ids({2, 0, 2}));
  CHECK(mid.shape() == Shape{2, 3, 4});
  CHECK(mid.to_vector<T>() == vals<T>({8,  9,  10, 11, 0,  1,  2,  3,  8,  9,  10, 11,
                                       20, 21, 22, 23, 12, 13, 14, 15, 20, 21, 22, 23}));

  Tensor none = k::index_select(x, 1, ids({}));
  CHECK(none.shape() == Shape{2, 0});
}

TEST_CASE("index_select reads transposed, expanded inputs and a strided index") {
  Tensor xt = k::transpose(iota<float>({2, 3}), 0, 1);  // [[0, 3], [1, 4], [2, 5]]
  CHECK(k::index_select(xt, 0, ids({2, 0})).to_vector<float>() == vals<float>({2, 5, 0, 3}));
  Tensor col = k::index_select(xt, 1, ids({1}));
  CHECK(col.shape() == Shape{3, 1});
  CHECK(col.to_vector<float>() == vals<float>({3, 4, 5}));
  Tensor every_other = k::slice(ids({0, 9, 2, 9, 1}), 0, 0, 5, 2);  // [0, 2, 1]
  CHECK(k::index_select(xt, 0, every_other).to_vector<float>() == vals<float>({0, 3, 2, 5, 1, 4}));
  Tensor rows = k::expand(make<double>({1, 2, 3}, {1, 3}), {4, 3});
  CHECK(k::index_select(rows, 0, ids({3, 0})).to_vector<double>() ==
        vals<double>({1, 2, 3, 1, 2, 3}));
}

// ---- gather ----

TEST_CASE_TEMPLATE("gather follows PyTorch semantics", T, float, double, int64_t) {
  Tensor t = make<T>({1, 2, 3, 4}, {2, 2});  // the example of torch.gather's documentation
  CHECK(k::gather(t, 1, ids({0, 0, 1, 0}, {2, 2})).to_vector<T>() == vals<T>({1, 1, 4, 3}));
  CHECK(k::gather(t, 0, ids({1, 0, 0, 0}, {2, 2})).to_vector<T>() == vals<T>({3, 2, 1, 2}));

  // Index smaller than x in the last dim. numpy:
  // np.take_along_axis(np.arange(24).reshape(2, 3, 4)[:, :, :3], idx, axis=1)
  Tensor idx = ids({2, 0, 1, 1, 1, 0, 0, 2, 2, 1, 0, 2}, {2, 2, 3});
  Tensor out = k::gather(iota<T>({2, 3, 4}), 1, idx);
  CHECK(out.shape() == Shape{2, 2, 3});
  CHECK(out.to_vector<T>() == vals<T>({8, 1, 6, 4, 5, 2, 12, 21, 22, 16, 13, 22}));
}

TEST_CASE("gather reads transposed inputs and expanded or transposed indices") {
  // xt = [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]], shape (4, 3)
  Tensor xt = k::transpose(iota<float>({3, 4}), 0, 1);
  // np.take_along_axis(np.arange(12).reshape(3, 4).T[:3, :], [[2, 0], [1, 1], [0, 2]], axis=1)
  CHECK(k::gather(xt, -1, ids({2, 0, 1, 1, 0, 2}, {3, 2})).to_vector<float>() ==
        vals<float>({8, 0, 5, 5, 2, 10}));
  CHECK(k::gather(xt, 0, ids({3, 0, 1}, {1, 3})).to_vector<float>() == vals<float>({3, 4, 9}));
  Tensor same_rows = k::expand(ids({1, 0}, {1, 2}), {3, 2});
  CHECK(k::gather(xt, 1, same_rows).to_vector<float>() == vals<float>({4, 0, 5, 1, 6, 2}));
  Tensor swapped = k::transpose(ids({0, 2, 1, 0}, {2, 2}), 0, 1);  // [[0, 1], [2, 0]]
  CHECK(k::gather(xt, 1, swapped).to_vector<float>() == vals<float>({0, 4, 9, 1}));
  CHECK(k::gather(xt, 0, ids({}, {0, 3})).shape() == Shape{0, 3});
}

// ---- embedding ----

TEST_CASE_TEMPLATE("embedding copies one weight row per id", T, float, double) {
  Tensor w = iota<T>({4, 3});  // row r is [3r, 3r + 1, 3r + 2]
  Tensor out = k::embedding(w, ids({3, 0, 1, 3}, {2, 2}));
  CHECK(out.shape() == Shape{2, 2, 3});
  CHECK(out.dtype() == dtype_of<T>());
  CHECK(out.to_vector<T>() == vals<T>({9, 10, 11, 0, 1, 2, 3, 4, 5, 9, 10, 11}));

  Tensor one = k::embedding(w, k::reshape(ids({2}), {}));  // 0-d ids -> (C)
  CHECK(one.shape() == Shape{3});
  CHECK(one.to_vector<T>() == vals<T>({6, 7, 8}));
  CHECK(k::embedding(w, ids({})).shape() == Shape{0, 3});
}

TEST_CASE("embedding reads a transposed weight and transposed ids") {
  Tensor w = k::transpose(iota<float>({3, 4}), 0, 1);         // (4, 3), row r is [r, r + 4, r + 8]
  Tensor id = k::transpose(ids({0, 3, 2, 1}, {2, 2}), 0, 1);  // [[0, 2], [3, 1]]
  CHECK(k::embedding(w, id).to_vector<float>() ==
        vals<float>({0, 4, 8, 2, 6, 10, 3, 7, 11, 1, 5, 9}));
}

// ---- masked_fill ----

TEST_CASE_TEMPLATE("masked_fill broadcasts a mask of any dtype", T, float, double, int64_t) {
  Tensor x = iota<T>({2, 3});  // [[0, 1, 2], [3, 4, 5]]
  Tensor by_col = k::masked_fill(x, ids({1, 0, 1}), 9);
  CHECK(by_col.shape() == Shape{2, 3});
  CHECK(by_col.to_vector<T>() == vals<T>({9, 1, 9, 9, 4, 9}));
  Tensor by_row = k::masked_fill(x, make<double>({0, -2}, {2, 1}), 9);  // any non-zero counts
  CHECK(by_row.to_vector<T>() == vals<T>({0, 1, 2, 9, 9, 9}));
  Tensor full_mask = k::masked_fill(x, make<float>({0, 1, 0, 0, 0, 1}, {2, 3}), -1);
  CHECK(full_mask.to_vector<T>() == vals<T>({0, -1, 2, 3, 4, -1}));
  CHECK(k::masked_fill(x, k::reshape(ids({1}), {}), 7).to_vector<T>() ==
        vals<T>({7, 7, 7, 7, 7, 7}));
  CHECK(x.to_vector<T>() == vals<T>({0, 1, 2, 3, 4, 5}));  // a new tensor, x untouched
}

TEST_CASE("masked_fill reads transposed and expanded inputs and masks") {
  Tensor xt = k::transpose(iota<float>({2, 3}), 0, 1);  // [[0, 3], [1, 4], [2, 5]]
  Tensor out = k::masked_fill(xt, ids({0, 1}), 9);
  CHECK(out.is_contiguous());
  CHECK(out.to_vector<float>() == vals<float>({0, 9, 1, 9, 2, 9}));
  Tensor rows = k::expand(make<double>({1, 2, 3}, {1, 3}), {2, 3});
  CHECK(k::masked_fill(rows, ids({1, 0}, {2, 1}), 9).to_vector<double>() ==
        vals<double>({9, 9, 9, 1, 2, 3}));
  Tensor mask_t = k::transpose(ids({1, 0, 0, 0, 1, 0}, {2, 3}), 0, 1);  // [[1, 0], [0, 1], [0, 0]]
  CHECK(k::masked_fill(xt, mask_t, 9).to_vector<float>() == vals<float>({9, 3, 1, 9, 2, 5}));
}

// ---- one_hot ----

TEST_CASE("one_hot puts a 1 at each id") {
  Tensor a = k::one_hot(ids({2, 0, 1}), 3);
  CHECK(a.dtype() == f32);
  CHECK(a.shape() == Shape{3, 3});
  CHECK(a.to_vector<float>() == vals<float>({0, 0, 1, 1, 0, 0, 0, 1, 0}));
  Tensor b = k::one_hot(ids({3, 0, 1, 1}, {2, 2}), 4, f64);
  CHECK(b.dtype() == f64);
  CHECK(b.shape() == Shape{2, 2, 4});
  CHECK(b.to_vector<double>() == vals<double>({0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0}));
  Tensor c = k::one_hot(k::transpose(ids({0, 1, 1, 0}, {2, 2}), 0, 1), 2, i64);  // [[0, 1], [1, 0]]
  CHECK(c.dtype() == i64);
  CHECK(c.to_vector<int64_t>() == vals<int64_t>({1, 0, 0, 1, 0, 1, 1, 0}));
  CHECK(k::one_hot(ids({}), 5).shape() == Shape{0, 5});
}

// ---- cat and stack ----

TEST_CASE_TEMPLATE("cat joins along dim, size-0 pieces included", T, float, double, int64_t) {
  Tensor a = iota<T>({2, 3});  // [[0, 1, 2], [3, 4, 5]]
  Tensor b = make<T>({6, 7}, {2, 1});
  Tensor wide = k::cat({a, b}, 1);
  CHECK(wide.shape() == Shape{2, 4});
  CHECK(wide.dtype() == dtype_of<T>());
  CHECK(wide.to_vector<T>() == vals<T>({0, 1, 2, 6, 3, 4, 5, 7}));
  CHECK(k::cat({a, b}, -1).to_vector<T>() == wide.to_vector<T>());
  Tensor tall = k::cat({make<T>({6, 7, 8}, {1, 3}), a}, 0);
  CHECK(tall.shape() == Shape{3, 3});
  CHECK(tall.to_vector<T>() == vals<T>({6, 7, 8, 0, 1, 2, 3, 4, 5}));

  Tensor empty = Tensor::empty({2, 0}, dtype_of<T>());
  CHECK(k::cat({empty, a, empty, b, empty}, 1).to_vector<T>() == wide.to_vector<T>());
  CHECK(k::cat({empty, empty}, 1).shape() == Shape{2, 0});

  Tensor copy = k::cat({a}, 0);
  CHECK(copy.storage() != a.storage());
  CHECK(copy.to_vector<T>() == a.to_vector<T>());

  // np.concatenate([np.arange(24).reshape(2, 3, 4), np.zeros((2, 1, 4))], axis=1)
  Tensor mid = k::cat({iota<T>({2, 3, 4}), zeros({2, 1, 4}, dtype_of<T>())}, 1);
  CHECK(mid.shape() == Shape{2, 4, 4});
  CHECK(mid.to_vector<T>() ==
        vals<T>({0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 0, 0, 0, 0,
                 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 0, 0, 0, 0}));
}

TEST_CASE("cat reads transposed, expanded and strided pieces into a contiguous output") {
  Tensor at = k::transpose(iota<float>({2, 3}), 0, 1);  // [[0, 3], [1, 4], [2, 5]]
  Tensor rows = k::expand(make<float>({7, 8}, {1, 2}), {2, 2});
  Tensor odd = k::slice(iota<float>({4, 2}), 0, 1, 4, 2);  // [[2, 3], [6, 7]]
  Tensor out = k::cat({at, rows, odd}, 0);
  CHECK(out.shape() == Shape{7, 2});
  CHECK(out.is_contiguous());
  CHECK(out.to_vector<float>() == vals<float>({0, 3, 1, 4, 2, 5, 7, 8, 7, 8, 2, 3, 6, 7}));
}

TEST_CASE_TEMPLATE("stack adds a new dim", T, float, double, int64_t) {
  Tensor a = make<T>({1, 2}), b = make<T>({3, 4}), c = make<T>({5, 6});
  Tensor first = k::stack({a, b, c}, 0);
  CHECK(first.shape() == Shape{3, 2});
  CHECK(first.to_vector<T>() == vals<T>({1, 2, 3, 4, 5, 6}));
  Tensor last = k::stack({a, b, c}, -1);
  CHECK(last.shape() == Shape{2, 3});
  CHECK(last.to_vector<T>() == vals<T>({1, 3, 5, 2, 4, 6}));
  CHECK(k::stack({a, b, c}, 1).to_vector<T>() == last.to_vector<T>());
}

TEST_CASE("stack of 0-d and transposed tensors") {
  Tensor s = k::stack({scalar_tensor(3, f64), scalar_tensor(4, f64)}, 0);
  CHECK(s.shape() == Shape{2});
  CHECK(s.to_vector<double>() == vals<double>({3, 4}));
  Tensor t = k::transpose(iota<float>({2, 2}), 0, 1);  // [[0, 2], [1, 3]]
  Tensor out = k::stack({t, iota<float>({2, 2})}, 1);
  CHECK(out.shape() == Shape{2, 2, 2});
  CHECK(out.to_vector<float>() == vals<float>({0, 2, 0, 1, 1, 3, 2, 3}));
}

// ---- split and chunk ----

TEST_CASE("split returns views of size along dim, the last one smaller") {
  Tensor x = iota<float>({5, 2});
  std::vector<Tensor> parts = k::split(x, 2, 0);
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].shape() == Shape{2, 2});
  CHECK(parts[1].to_vector<float>() == vals<float>({4, 5, 6, 7}));
  CHECK(parts[2].shape() == Shape{1, 2});
  CHECK(parts[2].to_vector<float>() == vals<float>({8, 9}));
  parts[1].fill_(-1);  // a view: the write lands in x
  CHECK(x.to_vector<float>() == vals<float>({0, 1, 2, 3, -1, -1, -1, -1, 8, 9}));

  std::vector<Tensor> cols = k::split(x, 1, -1);
  REQUIRE(cols.size() == 2);
  CHECK(cols[1].shape() == Shape{5, 1});
  CHECK(cols[1].to_vector<float>() == vals<float>({1, 3, -1, -1, 9}));
  cols[0].fill_(0);
  CHECK(x.to_vector<float>() == vals<float>({0, 1, 0, 3, 0, -1, 0, -1, 0, 9}));

  CHECK(k::split(x, 7, 0).size() == 1);  // a size beyond S gives x whole
  std::vector<Tensor> none = k::split(Tensor::empty({0, 2}, f32), 3, 0);
  REQUIRE(none.size() == 1);  // as in PyTorch, an empty dim still gives one (empty) piece
  CHECK(none[0].shape() == Shape{0, 2});
}

TEST_CASE("chunk returns ceil(S / chunks)-sized views, possibly fewer than asked") {
  auto sizes = [](const std::vector<Tensor>& parts) {
    std::vector<int64_t> s;
    for (const Tensor& p : parts) s.push_back(p.shape()[0]);
    return s;
  };
  Tensor five = arange(5);
  CHECK(sizes(k::chunk(five, 2, 0)) == std::vector<int64_t>{3, 2});
  CHECK(sizes(k::chunk(five, 4, 0)) == std::vector<int64_t>{2, 2, 1});
  CHECK(sizes(k::chunk(five, 10, 0)) == std::vector<int64_t>{1, 1, 1, 1, 1});
  CHECK(sizes(k::chunk(arange(6), 3, -1)) == std::vector<int64_t>{2, 2, 2});
  CHECK(k::chunk(five, 2, 0)[1].to_vector<int64_t>() == vals<int64_t>({3, 4}));
  CHECK(sizes(k::chunk(arange(0), 3, 0)) == std::vector<int64_t>{0, 0, 0});

  // Views of a transposed parent: writing through a chunk changes the parent.
  Tensor p = iota<double>({2, 3});
  std::vector<Tensor> halves = k::chunk(k::transpose(p, 0, 1), 2, 1);  // two (3, 1) columns
  REQUIRE(halves.size() == 2);
  CHECK(halves[1].shape() == Shape{3, 1});
  CHECK(halves[1].to_vector<double>() == vals<double>({3, 4, 5}));
  halves[1].fill_(7);
  CHECK(p.to_vector<double>() == vals<double>({0, 1, 2, 7, 7, 7}));
}

// ---- errors ----

TEST_CASE("index errors name the op, the bad value and the valid range") {
  Tensor x = iota<float>({2, 3});
  CHECK_THROWS_WITH_AS(k::index_select(x, 1, ids({0, 3})),
                       "index_select: index 3 out of range [0, 3) at position 1", ShapeError);
  CHECK_THROWS_WITH_AS(k::index_select(x, 0, ids({-1})),
                       "index_select: index -1 out of range [0, 2) at position 0", ShapeError);
  CHECK_THROWS_WITH_AS(k::index_select(x, 0, make<float>({0})),
                       "index_select: index tensor must be i64, got f32", DTypeError);
  CHECK_THROWS_WITH_AS(k::index_select(x, 0, ids({0}, {1, 1})),
                       "index_select: index must be 1-d, got shape [1, 1]", ShapeError);
  CHECK_THROWS_WITH_AS(k::index_select(scalar_tensor(1), 0, ids({0})),
                       "index_select: input must have at least one dim, got shape []", ShapeError);
  CHECK_THROWS_WITH_AS(k::index_select(x, 2, ids({0})),
                       "index_select: dim 2 out of range for a tensor of rank 2", ShapeError);

  CHECK_THROWS_WITH_AS(k::gather(iota<float>({3}), 0, ids({0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {2, 5})),
                       "gather: index shape [2, 5] has rank 2 but input [3] has rank 1",
                       ShapeError);
  CHECK_THROWS_WITH_AS(k::gather(x, 1, ids({0, 0, 0}, {3, 1})),
                       "gather: index shape [3, 1] is larger than input shape [2, 3] in dim 0",
                       ShapeError);
  CHECK_THROWS_WITH_AS(k::gather(x, 0, ids({0, 2}, {1, 2})),
                       "gather: index 2 out of range [0, 2) at position 1", ShapeError);
  CHECK_THROWS_WITH_AS(k::gather(x, 0, make<double>({0}, {1, 1})),
                       "gather: index tensor must be i64, got f64", DTypeError);

  Tensor w = zeros({10, 4});
  CHECK_THROWS_WITH_AS(k::embedding(w, ids({0, 1, 2, 12})),
                       "embedding: id 12 out of range [0, 10) at position 3", ShapeError);
  CHECK_THROWS_WITH_AS(k::embedding(w, ids({0, 1, 2, -5}, {2, 2})),
                       "embedding: id -5 out of range [0, 10) at position 3", ShapeError);
  CHECK_THROWS_WITH_AS(k::embedding(zeros({10, 4}, i64), ids({0})),
                       "embedding: weight must be f32 or f64, got i64", DTypeError);
  CHECK_THROWS_WITH_AS(k::embedding(zeros({10}), ids({0})),
                       "embedding: weight must be (V, C), got shape [10]", ShapeError);
  CHECK_THROWS_WITH_AS(k::embedding(w, make<float>({0})),
                       "embedding: index tensor must be i64, got f32", DTypeError);

  CHECK_THROWS_WITH_AS(k::masked_fill(iota<float>({3}), zeros({2, 3}), 1),
                       "masked_fill: mask shape [2, 3] does not broadcast to input shape [3]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(k::masked_fill(iota<float>({3}), zeros({4}), 1),
                       doctest::Contains("masked_fill: shapes [3] and [4] do not broadcast"),
                       ShapeError);

  CHECK_THROWS_WITH_AS(k::one_hot(ids({0, 3}), 3),
                       "one_hot: id 3 out of range [0, 3) at position 1", ShapeError);
  CHECK_THROWS_WITH_AS(k::one_hot(ids({0}), 0), "one_hot: num_classes must be positive, got 0",
                       ShapeError);
  CHECK_THROWS_WITH_AS(k::one_hot(make<float>({0}), 2),
                       "one_hot: index tensor must be i64, got f32", DTypeError);
}

TEST_CASE("join errors name the op and the offending tensor") {
  Tensor a = zeros({2, 2});
  CHECK_THROWS_WITH_AS(k::cat({}, 0), "cat: expected a non-empty list of tensors", Error);
  CHECK_THROWS_WITH_AS(k::cat({a, zeros({2, 2}, f64)}, 0),
                       "cat: tensor 1 has dtype f64 but tensor 0 has dtype f32", DTypeError);
  CHECK_THROWS_WITH_AS(
      k::cat({a, zeros({2, 5}), zeros({3, 2})}, 1),
      "cat: tensor 2 has shape [3, 2] but tensor 0 has shape [2, 2]; sizes must match except in "
      "dim 1",
      ShapeError);
  CHECK_THROWS_WITH_AS(k::cat({a, zeros({2})}, 0),
                       "cat: tensor 1 has shape [2] but tensor 0 has shape [2, 2]; sizes must "
                       "match except in dim 0",
                       ShapeError);
  CHECK_THROWS_WITH_AS(k::cat({scalar_tensor(1), scalar_tensor(2)}, 0),
                       "cat: cannot concatenate 0-d tensors (stack them instead)", ShapeError);
  CHECK_THROWS_WITH_AS(k::cat({a, a}, -3), "cat: dim -3 out of range for a tensor of rank 2",
                       ShapeError);

  CHECK_THROWS_WITH_AS(k::stack({}, 0), "stack: expected a non-empty list of tensors", Error);
  CHECK_THROWS_WITH_AS(
      k::stack({zeros({2}), zeros({3})}, 0),
      "stack: tensor 1 has shape [3] but tensor 0 has shape [2]; shapes must match", ShapeError);
  CHECK_THROWS_WITH_AS(k::stack({zeros({2}), zeros({2}, i64)}, 0),
                       "stack: tensor 1 has dtype i64 but tensor 0 has dtype f32", DTypeError);
  CHECK_THROWS_WITH_AS(k::stack({a, a}, 3), "stack: dim 3 out of range for a tensor of rank 3",
                       ShapeError);

  CHECK_THROWS_WITH_AS(k::split(a, 0, 0), "split: size must be positive, got 0", ShapeError);
  CHECK_THROWS_WITH_AS(k::split(a, -2, 0), "split: size must be positive, got -2", ShapeError);
  CHECK_THROWS_WITH_AS(k::split(scalar_tensor(1), 1, 0), "split: cannot split a 0-d tensor",
                       ShapeError);
  CHECK_THROWS_WITH_AS(k::chunk(a, 0, 0), "chunk: chunks must be positive, got 0", ShapeError);
  CHECK_THROWS_WITH_AS(k::chunk(a, -1, 1), "chunk: chunks must be positive, got -1", ShapeError);
  CHECK_THROWS_WITH_AS(k::chunk(scalar_tensor(1), 2, 0), "chunk: cannot chunk a 0-d tensor",
                       ShapeError);
  CHECK_THROWS_WITH_AS(k::chunk(a, 2, 2), "chunk: dim 2 out of range for a tensor of rank 2",
                       ShapeError);
}

// ---- threads ----

TEST_CASE("1 and 2 threads give bit-identical results on large inputs") {
  const int64_t V = 1000, C = 64, N = 2048;  // N * C = 131072 output elements
  Tensor w = k::reshape(linspace(-1, 1, V * C), {V, C});
  Tensor big = k::reshape(linspace(-3, 3, N * C, f64), {N, C});
  std::vector<int64_t> row_ids(N), col_ids(N * C);
  for (int64_t i = 0; i < N; ++i) row_ids[i] = (i * 7919) % V;
  for (int64_t i = 0; i < N * C; ++i) col_ids[i] = (i * 31 + 17) % C;
  std::vector<int64_t> every_third(C);
  for (int64_t c = 0; c < C; ++c) every_third[c] = c % 3 == 0;
  Tensor id = ids(row_ids, {32, 64});
  Tensor mask = ids(every_third, {1, C});  // broadcast down the N rows

  auto run = [&](int threads) {
    set_num_threads(threads);
    return std::vector<std::vector<double>>{
        k::embedding(w, id).to_vector<double>(),
        k::index_select(big, 0, k::reshape(id, {N})).to_vector<double>(),
        k::gather(big, 1, ids(col_ids, {N, C})).to_vector<double>(),
        k::masked_fill(big, mask, 5).to_vector<double>(),
        k::one_hot(k::reshape(id, {N}), V).to_vector<double>(),
        k::cat({big, big}, 1).to_vector<double>()};
  };
  const int before = get_num_threads();
  const auto one = run(1);
  const auto two = run(2);
  set_num_threads(before);
  CHECK(one == two);
  // And the results are right, not just repeatable: embedding row 5 is weight row row_ids[5].
  std::vector<float> w_all = w.to_vector<float>();
  std::vector<double> expect(w_all.begin() + row_ids[5] * C, w_all.begin() + (row_ids[5] + 1) * C);
  CHECK(std::vector<double>(one[0].begin() + 5 * C, one[0].begin() + 6 * C) == expect);
}
