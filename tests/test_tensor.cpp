// The Tensor handle: creation, geometry, views, copies, printing.
#include <doctest/doctest.h>

#include <sstream>

#include "tensor/kernels/kernels.h"
#include "tensor/tensor.h"

using namespace spear;

TEST_CASE("creation functions fill shape, dtype and values") {
  Tensor z = zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.dtype() == f32);
  CHECK(z.to_vector<float>() == std::vector<float>(6, 0.0f));
  CHECK(ones({4}, f64).to_vector<double>() == std::vector<double>(4, 1.0));
  CHECK(full({2}, 7, i64).to_vector<int64_t>() == std::vector<int64_t>{7, 7});
  CHECK(arange(5).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(arange(1.0, 2.0, 0.25, f64).to_vector<double>() ==
        std::vector<double>{1.0, 1.25, 1.5, 1.75});
  CHECK(linspace(0, 1, 5, f64).to_vector<double>() ==
        std::vector<double>{0.0, 0.25, 0.5, 0.75, 1.0});
  Tensor t = tensor(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.dtype() == f64);
  CHECK_THROWS_AS(t.item<double>(), ShapeError);
  CHECK(scalar_tensor(2.5).item<float>() == 2.5f);
}

TEST_CASE("views share storage and follow PyTorch geometry") {
  Tensor x = arange(0.0, 24.0, 1.0, f32);
  Tensor v = kernels::view(x, {2, 3, 4});
  CHECK(v.storage() == x.storage());
  CHECK(v.strides() == Shape{12, 4, 1});
  CHECK(kernels::view(x, {4, -1}).shape() == Shape{4, 6});

  Tensor p = kernels::permute(v, {2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Shape{1, 12, 4});
  CHECK(!p.is_contiguous());
  CHECK(kernels::contiguous(p).to_vector<float>()[0 + 1] == 4.0f);  // p[0, 0, 1] = v[0, 1, 0]

  Tensor t = kernels::transpose(v, 0, -1);
  CHECK(t.shape() == Shape{4, 3, 2});
  // slice with a step, negative start; narrow; python-style clamping.
  Tensor s = kernels::slice(x, 0, -6, 100, 2);
  CHECK(s.to_vector<float>() == std::vector<float>{18, 20, 22});
  CHECK(kernels::narrow(v, 2, 1, 2).to_vector<float>() ==
        std::vector<float>{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22});
  CHECK(kernels::unsqueeze(v, -1).shape() == Shape{2, 3, 4, 1});
  CHECK(kernels::unsqueeze(v, 0).shape() == Shape{1, 2, 3, 4});
  CHECK(kernels::squeeze(kernels::view(x, {1, 24, 1})).shape() == Shape{24});
  CHECK(kernels::squeeze(kernels::view(x, {1, 24, 1}), 1).shape() == Shape{1, 24, 1});
  CHECK(kernels::flatten(v, 1).shape() == Shape{2, 12});
  CHECK(kernels::flatten(scalar_tensor(1)).shape() == Shape{1});

  Tensor e = kernels::expand(tensor({1, 2, 3}, {3, 1}), {2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(kernels::contiguous(e).to_vector<float>()[13] == 1.0f);  // e[1, 0, 1]
  CHECK(kernels::expand(tensor({1, 2, 3}, {3, 1}), {-1, 2}).shape() == Shape{3, 2});
}

TEST_CASE("reshape views when it can and copies when it must") {
  Tensor v = kernels::view(arange(0.0, 24.0, 1.0, f64), {2, 3, 4});
  // Splitting and merging dims that are contiguous with each other: still a view.
  Tensor sliced = kernels::slice(v, 2, 0, 2);  // (2, 3, 2), not contiguous
  Tensor r = kernels::reshape(kernels::unsqueeze(sliced, 1), {2, 3, 2});
  CHECK(r.storage() == v.storage());
  // A transpose cannot be flattened without a copy.
  Tensor t = kernels::transpose(v, 1, 2);
  CHECK_THROWS_AS(kernels::view(t, {2, 12}), ShapeError);
  Tensor flat = kernels::reshape(t, {2, 12});
  CHECK(flat.storage() != v.storage());
  CHECK(flat.to_vector<double>()[1] == 4.0);  // t[0, 0, 1] = v[0, 1, 0]
  // Merging the two leading dims of a permuted tensor that stay adjacent is a view.
  Tensor q = kernels::permute(v, {1, 2, 0});  // (3, 4, 2) strides (4, 1, 12)
  CHECK(kernels::view(q, {12, 2}).storage() == v.storage());
  CHECK(kernels::view(q, {12, 2}).to_vector<double>() ==
        kernels::contiguous(q).to_vector<double>());
}

TEST_CASE("view and shape errors name the op and the shapes") {
  Tensor x = zeros({2, 3});
  try {
    kernels::reshape(x, {4, 2});
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()) == "reshape: shape [4, 2] is invalid for input of size 6");
  }
  CHECK_THROWS_AS(kernels::reshape(x, {-1, -1}), ShapeError);
  CHECK_THROWS_AS(kernels::permute(x, {0, 0}), ShapeError);
  CHECK_THROWS_AS(kernels::permute(x, {0}), ShapeError);
  CHECK_THROWS_AS(kernels::transpose(x, 0, 2), ShapeError);
  CHECK_THROWS_AS(kernels::narrow(x, 1, 2, 2), ShapeError);
  CHECK_THROWS_AS(kernels::expand(x, {3, 3}), ShapeError);
  CHECK_THROWS_AS(kernels::slice(x, 0, 0, 1, 0), ShapeError);
  CHECK_THROWS_AS(zeros({2, -1}), ShapeError);
  CHECK_THROWS_AS(x.data_ptr<double>(), DTypeError);
  CHECK_THROWS_AS(Tensor().shape(), Error);
}

TEST_CASE("copy_, fill_ and dtype conversion work on strided views") {
  Tensor x = zeros({3, 4}, f64);
  Tensor col = kernels::slice(x, 1, 1, 2);  // a column view
  col.copy_(tensor(std::vector<int64_t>{7, 8, 9}, {3, 1}));
  CHECK(x.to_vector<double>() == std::vector<double>{0, 7, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0});
  uint64_t before = x.storage()->version();
  kernels::slice(x, 0, 2, 3).fill_(-1);
  CHECK(x.storage()->version() > before);
  CHECK(x.to_vector<double>()[8] == -1.0);
  Tensor as_int = kernels::to_dtype(tensor({1.9f, -2.5f}), i64);
  CHECK(as_int.to_vector<int64_t>() == std::vector<int64_t>{1, -2});
  Tensor c = kernels::clone(col);
  CHECK(c.is_contiguous());
  CHECK(c.storage() != x.storage());
  CHECK_THROWS_AS(x.copy_(zeros({2})), ShapeError);
}

TEST_CASE("printing shows values, shape and dtype, eliding big tensors") {
  std::ostringstream small;
  small << tensor(std::vector<double>{1, -2.5, 3, 4}, {2, 2});
  CHECK(small.str() ==
        "tensor([[ 1.0000, -2.5000],\n        [ 3.0000,  4.0000]], shape=[2, 2], dtype=f64)");
  std::ostringstream ints;
  ints << arange(3);
  CHECK(ints.str() == "tensor([0, 1, 2], shape=[3], dtype=i64)");
  std::ostringstream big;
  big << arange(0.0, 2000.0, 1.0, f32);
  CHECK(big.str() ==
        "tensor([   0.0000,    1.0000,    2.0000, ..., 1997.0000, 1998.0000, 1999.0000], "
        "shape=[2000], dtype=f32)");
  std::ostringstream scalar;
  scalar << scalar_tensor(0.5);
  CHECK(scalar.str() == "tensor(0.5000, shape=[], dtype=f32)");
  std::ostringstream empty;
  empty << zeros({0, 3});
  CHECK(empty.str() == "tensor([], shape=[0, 3], dtype=f32)");
}

TEST_CASE("memory stats count live tensor bytes and their peak") {
  MemoryStats before = memory_stats();
  reset_peak_memory();
  {
    Tensor a = empty({1024, 256});  // 1 MiB of f32
    CHECK(memory_stats().current_bytes == before.current_bytes + (1 << 20));
    Tensor b = empty({512}, f64);
    CHECK(memory_stats().peak_bytes == before.current_bytes + (1 << 20) + 4096);
  }
  CHECK(memory_stats().current_bytes == before.current_bytes);
  CHECK(memory_stats().peak_bytes == before.current_bytes + (1 << 20) + 4096);
  reset_peak_memory();
  CHECK(memory_stats().peak_bytes == before.current_bytes);
}

TEST_CASE("large freed blocks are reused, and empty_cache gives them back") {
#if defined(__SANITIZE_ADDRESS__)
  // The cache is off under AddressSanitizer so that use-after-free is still caught.
  Tensor a = empty({1 << 20});
  CHECK(a.numel() == 1 << 20);
#else
  empty_cache();
  const int64_t before = memory_stats().current_bytes;
  void* first = nullptr;
  {
    Tensor a = empty({1 << 20});  // 4 MiB
    first = a.raw_data();
  }
  Tensor b = empty({(1 << 20) - 100});  // the same size class
  CHECK(b.raw_data() == first);
  Tensor c = empty({1 << 20});  // b holds the block: a fresh one
  CHECK(c.raw_data() != first);
  // Memory statistics count the bytes asked for, not the size class handed out.
  CHECK(memory_stats().current_bytes == before + ((1 << 20) - 100) * 4 + (1 << 22));
  empty_cache();
#endif
}
