// Test helpers: tensors of small integers, exact in f32, f64 and i64, so results compare with ==.
#pragma once
#include <vector>

#include "tensor/kernels/kernels.h"
#include "tensor/tensor.h"

namespace spear::testing {

// A tensor of dtype T holding `values`.
template <typename T>
Tensor make(const std::vector<int64_t>& values, const Shape& shape = {}) {
  return tensor(std::vector<T>(values.begin(), values.end()), shape);
}

// 0, 1, ..., n-1 as a tensor of dtype T and the given shape.
template <typename T>
Tensor iota(const Shape& shape) {
  return kernels::reshape(kernels::to_dtype(arange(shape_numel(shape)), dtype_of<T>()), shape);
}

// The expected element list, in the dtype the test reads back.
template <typename T>
std::vector<T> vals(const std::vector<int64_t>& v) {
  return std::vector<T>(v.begin(), v.end());
}

inline Tensor ids(const std::vector<int64_t>& v, const Shape& shape = {}) {
  return tensor(v, shape);
}

}  // namespace spear::testing
