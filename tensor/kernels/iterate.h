// Walking strided tensors. Every elementwise kernel is "for each index of the output shape, read
// K operands at their own strides". Adjacent dims that are laid out back to back in every operand
// are merged first, so a contiguous tensor becomes one long run whatever its rank.
#pragma once
#include <array>
#include <cstdint>

#include "tensor/parallel.h"
#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace spear::kernels {

template <size_t K>
struct StridedLoop {
  Shape shape;
  std::array<Shape, K> strides;
};

// Drops size-1 dims and merges dim d into d+1 when every operand has stride[d] ==
// stride[d+1]*size[d+1].
template <size_t K>
StridedLoop<K> coalesce(const Shape& shape, const std::array<Shape, K>& strides) {
  StridedLoop<K> loop;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !loop.shape.empty();
    for (size_t k = 0; k < K && merge; ++k)
      merge = loop.strides[k].back() == strides[k][d] * shape[d];
    if (merge) {
      loop.shape.back() *= shape[d];
      for (size_t k = 0; k < K; ++k) loop.strides[k].back() = strides[k][d];
    } else {
      loop.shape.push_back(shape[d]);
      for (size_t k = 0; k < K; ++k) loop.strides[k].push_back(strides[k][d]);
    }
  }
  if (loop.shape.empty()) {  // a scalar (or all-ones shape) is one run of length 1
    loop.shape.push_back(1);
    for (size_t k = 0; k < K; ++k) loop.strides[k].push_back(0);
  }
  return loop;
}

// Visits the flat row-major indices [begin, end) of loop.shape as runs along the last dim:
// run(n, offsets, inner_strides) handles n elements starting at offsets[k] in operand k.
template <size_t K, typename Run>
void for_each_run(const StridedLoop<K>& loop, int64_t begin, int64_t end, Run&& run) {
  if (begin >= end) return;
  const int64_t rank = static_cast<int64_t>(loop.shape.size());
  const int64_t last = loop.shape[rank - 1];
  std::array<int64_t, K> inner{};
  for (size_t k = 0; k < K; ++k) inner[k] = loop.strides[k][rank - 1];
  // Unravel `begin` into a multi-index and the operands' offsets.
  Shape index(rank);
  std::array<int64_t, K> offsets{};
  int64_t rest = begin;
  for (int64_t d = rank - 1; d >= 0; --d) {
    index[d] = rest % loop.shape[d];
    rest /= loop.shape[d];
    for (size_t k = 0; k < K; ++k) offsets[k] += index[d] * loop.strides[k][d];
  }
  for (int64_t i = begin; i < end;) {
    int64_t n = std::min(last - index[rank - 1], end - i);
    run(n, offsets, inner);
    i += n;
    // Advance the multi-index by n along the last dim, carrying into outer dims.
    index[rank - 1] += n;
    for (size_t k = 0; k < K; ++k) offsets[k] += n * inner[k];
    for (int64_t d = rank - 1; d > 0 && index[d] == loop.shape[d]; --d) {
      index[d] = 0;
      ++index[d - 1];
      for (size_t k = 0; k < K; ++k)
        offsets[k] += loop.strides[k][d - 1] - loop.shape[d] * loop.strides[k][d];
    }
  }
}

// for_each_run over the whole shape, split across threads when it is large enough.
template <size_t K, typename Run>
void parallel_runs(const Shape& shape, const std::array<Shape, K>& strides, Run&& run) {
  StridedLoop<K> loop = coalesce<K>(shape, strides);
  parallel_for(0, shape_numel(shape), kMinParallelElements,
               [&](int64_t lo, int64_t hi) { for_each_run<K>(loop, lo, hi, run); });
}

// Calls fn(offset) for every element of a strided view, in row-major order, on this thread.
template <typename Fn>
void for_each_offset(const Shape& shape, const Shape& strides, Fn&& fn) {
  StridedLoop<1> loop = coalesce<1>(shape, {strides});
  for_each_run<1>(
      loop, 0, shape_numel(shape),
      [&](int64_t n, const std::array<int64_t, 1>& off, const std::array<int64_t, 1>& st) {
        for (int64_t j = 0; j < n; ++j) fn(off[0] + j * st[0]);
      });
}

// Strides that read a tensor of shape `from` as if it had the broadcast shape `to` (stride 0 on
// broadcast dims). The caller has already checked that the shapes broadcast.
Shape broadcast_strides(const Tensor& t, const Shape& to);

// Writes src (broadcast to dst's shape, converted to dst's dtype) into dst.
void copy_into(const Tensor& dst, const Tensor& src);

}  // namespace spear::kernels
