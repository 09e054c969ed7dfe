// Shapes and strides are plain vectors of int64 (strides count elements, not bytes).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "tensor/error.h"

namespace spear {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3]"

// Wraps a possibly negative dimension index into [0, rank); throws naming `op` when out of range.
int64_t wrap_dim(int64_t dim, int64_t rank, const char* op);

// NumPy broadcasting: align from the right, sizes must match or be 1.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace spear
