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
