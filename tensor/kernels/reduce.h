// Rows: the layout shared by reductions (reduce.cpp, logsumexp), softmax and scans.
//
// A reduction over some dims is seen as `outer` rows of `inner` elements: the kept dims move to
// the front, the reduced dims to the end, and the result is made contiguous, so row r is
// data[r * inner, (r + 1) * inner).
//
// The order of additions is fixed, so a result never depends on the thread count: each row is cut
// into chunks of kReduceChunk elements, each chunk is summed left to right, then the chunk sums
// are added left to right. Threads only decide who computes which chunk. Sums accumulate in
// acc_t: double for f32 and f64 (an f32 result is the double result rounded once), int64 for i64.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <vector>

#include "tensor/parallel.h"
#include "tensor/tensor.h"

namespace spear::kernels {

inline constexpr int64_t kReduceChunk = 4096;
// Rows that lie side by side in memory (one element of each per cache line) are walked together
// in bundles of this many, so each cache line is read once instead of once per row.
inline constexpr int64_t kBundle = 16;

template <typename T>
using acc_t = std::conditional_t<std::is_integral_v<T>, int64_t, double>;

struct ReductionRows {
  Tensor data;           // contiguous, outer * inner elements
  int64_t outer = 1;     // one output value per row
  int64_t inner = 1;     // elements reduced into each value
  bool columns = false;  // data is (inner, outer) instead: row r is the column data[r::outer]
  Shape out_shape;       // x's shape with the reduced dims removed, or kept as 1 with keepdim
};

// Checks `dims` (errors name `op`) and lays x out as rows. With allow_columns, a contiguous x
// whose reduced dims all come first (a sum over the batch dims, say) is used as columns instead
// of being copied. Defined in reduce.cpp.
ReductionRows reduction_rows(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim,
                             const char* op, bool allow_columns = false);

// Reduces each of `rows` rows of `n` elements. chunk(row, begin, end) reduces elements
// [begin, end) of one row; combine(left, right) merges neighbouring partial results. A row of
// zero elements gives `empty`.
template <typename Acc, typename Chunk, typename Combine>
std::vector<Acc> reduce_rows(int64_t rows, int64_t n, Acc empty, const Chunk& chunk,
                             const Combine& combine) {
  const int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
  std::vector<Acc> partial(static_cast<size_t>(rows * chunks));
  parallel_for(0, rows * chunks, grain_for(std::min(n, kReduceChunk)), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t begin = (i % chunks) * kReduceChunk;
      partial[i] = chunk(i / chunks, begin, std::min(n, begin + kReduceChunk));
    }
  });
  if (chunks == 1) return partial;
  std::vector<Acc> out(static_cast<size_t>(rows), empty);
  if (chunks == 0) return out;
  parallel_for(0, rows, grain_for(chunks), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      Acc acc = partial[r * chunks];
      for (int64_t c = 1; c < chunks; ++c) acc = combine(acc, partial[r * chunks + c]);
      out[r] = acc;
    }
  });
  return out;
}

// The sum of f(row, x) over every x of each row, in either layout.
template <typename T, typename F>
std::vector<acc_t<T>> sum_rows(const ReductionRows& rows, const F& f) {
  using Acc = acc_t<T>;
  const T* data = rows.data.data_ptr<T>();
  const int64_t outer = rows.outer, n = rows.inner;
  if (!rows.columns)
    return reduce_rows<Acc>(
        outer, n, Acc(0),
        [&](int64_t r, int64_t begin, int64_t end) {
          const T* row = data + r * n;
          Acc s = 0;
          for (int64_t i = begin; i < end; ++i) s += f(r, row[i]);
          return s;
        },
        std::plus<>());
  // Columns: a bundle of neighbouring rows adds one chunk into its running sums, element by
  // element in the same order as the row layout, so both layouts give the same bits.
  const int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
  const int64_t bundles = (outer + kBundle - 1) / kBundle;
  std::vector<Acc> partial(static_cast<size_t>(chunks * outer), Acc(0));
  const int64_t work = std::min(n, kReduceChunk) * std::min(outer, kBundle);
  parallel_for(0, chunks * bundles, grain_for(work), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t c = i / bundles, r0 = (i % bundles) * kBundle;
      const int64_t r1 = std::min(outer, r0 + kBundle);
      Acc* sums = partial.data() + c * outer;
      for (int64_t k = c * kReduceChunk; k < std::min(n, (c + 1) * kReduceChunk); ++k)
        for (int64_t r = r0; r < r1; ++r) sums[r] += f(r, data[k * outer + r]);
    }
  });
  if (chunks == 1) return partial;
  std::vector<Acc> out(static_cast<size_t>(outer), Acc(0));
  for (int64_t r = 0; r < outer && chunks > 0; ++r) {
    Acc acc = partial[r];
    for (int64_t c = 1; c < chunks; ++c) acc += partial[c * outer + r];
    out[r] = acc;
  }
  return out;
}

// The rows along one dim of a contiguous tensor, seen as (outer, n, inner): a row has n elements
// `inner` apart. Softmax and cumsum walk these rows where they lie, so the output keeps x's
// layout without a permute, and walk them in bundles of up to kBundle neighbours (a bundle never
// crosses an outer index): bundle b starts at start(b) and holds width(b) rows. `dim` is wrapped.
struct DimRows {
  int64_t outer = 1, n = 1, inner = 1;

  DimRows(const Shape& shape, int64_t dim) {
    for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
      if (d < dim) outer *= shape[d];
      if (d == dim) n = shape[d];
      if (d > dim) inner *= shape[d];
    }
  }
  int64_t bundles_per_outer() const { return (inner + kBundle - 1) / kBundle; }
  int64_t bundles() const { return outer * bundles_per_outer(); }
  int64_t start(int64_t b) const {
    return (b / bundles_per_outer()) * n * inner + (b % bundles_per_outer()) * kBundle;
  }
  int64_t width(int64_t b) const {
    return std::min(kBundle, inner - (b % bundles_per_outer()) * kBundle);
  }
};

}  // namespace spear::kernels
