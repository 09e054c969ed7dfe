// Indexing with integer ids: pick slices (index_select, embedding) or elements (gather), and write
// a value where a mask or an id says so (masked_fill, one_hot). Every id is checked before any
// output is written, so a bad id throws instead of reading or writing outside a tensor.
//
// index_add and scatter_add run a selection backwards: they add slices or elements back to where
// the ids point, which is the gradient of index_select/embedding and of gather. An id that
// repeats makes several sources add into one output element; each kernel gives every output
// element to exactly one thread and adds its sources in increasing position, so the sum is
// bit-identical whatever the thread count.
#include <algorithm>
#include <cstring>

#include "tensor/kernels/iterate.h"
#include "tensor/kernels/kernels.h"

namespace spear::kernels {
namespace {

// The product of shape[begin:end].
int64_t prod(const Shape& shape, int64_t begin, int64_t end) {
  int64_t n = 1;
  for (int64_t d = begin; d < end; ++d) n *= shape[d];
  return n;
}

// ids as a contiguous i64 tensor whose every value lies in [0, size), so the kernels can read
// them as a flat row-major array without further checks. The message names the first bad id and
// its row-major position.
Tensor checked_ids(const Tensor& ids, int64_t size, const char* op, const char* noun) {
  SPEAR_CHECK_DTYPE(ids.dtype() == i64, op, ": index tensor must be i64, got ", ids.dtype());
  Tensor flat = contiguous(ids);
  const int64_t* p = flat.data_ptr<int64_t>();
  for (int64_t i = 0; i < flat.numel(); ++i)
    SPEAR_CHECK_SHAPE(p[i] >= 0 && p[i] < size, op, ": ", noun, " ", p[i], " out of range [0, ",
                      size, ") at position ", i);
  return flat;
}

// x: (outer, S, inner) contiguous, ids: L checked ids -> out: (outer, L, inner) contiguous.
// out row (o, l) is x row (o, ids[l]): one memcpy of `inner` elements, whatever the dtype.
void take_rows(const Tensor& x, int64_t outer, int64_t S, int64_t inner, const Tensor& ids,
               const Tensor& out) {
  if (out.numel() == 0) return;  // also keeps null pointers of empty storages away from memcpy
  const int64_t L = ids.numel();
  const auto row_bytes = static_cast<int64_t>(inner * itemsize(x.dtype()));
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  const int64_t* id = ids.data_ptr<int64_t>();
  parallel_for(0, outer * L, grain_for(inner), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      int64_t o = r / L, l = r % L;
      std::memcpy(dst + r * row_bytes, src + (o * S + id[l]) * row_bytes,
                  static_cast<size_t>(row_bytes));
    }
  });
}

}  // namespace

// x: (.., S, ..) along dim, index: (L) i64 -> (.., L, ..)
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  SPEAR_CHECK_SHAPE(x.dim() > 0, "index_select: input must have at least one dim, got shape ",
                    x.shape());
  dim = wrap_dim(dim, x.dim(), "index_select");
  SPEAR_CHECK_SHAPE(index.dim() == 1, "index_select: index must be 1-d, got shape ", index.shape());
  Tensor ids = checked_ids(index, x.shape()[dim], "index_select", "index");
  Shape shape = x.shape();
  shape[dim] = ids.numel();
  Tensor out = Tensor::empty(shape, x.dtype());
  take_rows(contiguous(x), prod(x.shape(), 0, dim), x.shape()[dim],
            prod(x.shape(), dim + 1, x.dim()), ids, out);
  return out;
}

// x: (..), index: same rank, i64, index.size(d) <= x.size(d) for d != dim -> index's shape;
// for dim=1: out[i][j][k] = x[i][index[i][j][k]][k].
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  SPEAR_CHECK_SHAPE(index.dim() == x.dim(), "gather: index shape ", index.shape(), " has rank ",
                    index.dim(), " but input ", x.shape(), " has rank ", x.dim());
  SPEAR_CHECK_SHAPE(x.dim() > 0, "gather: input must have at least one dim, got shape ", x.shape());
  dim = wrap_dim(dim, x.dim(), "gather");
  for (int64_t d = 0; d < x.dim(); ++d)
    SPEAR_CHECK_SHAPE(d == dim || index.shape()[d] <= x.shape()[d], "gather: index shape ",
                      index.shape(), " is larger than input shape ", x.shape(), " in dim ", d);
  Tensor ids = checked_ids(index, x.shape()[dim], "gather", "index");
  Tensor out = Tensor::empty(index.shape(), x.dtype());
  // Walk out (and ids, laid out alike) together with x, whose stride along dim is zeroed: the
  // index supplies that coordinate instead.
  Shape x_strides = x.strides();
  const int64_t dim_stride = x_strides[dim];
  x_strides[dim] = 0;
  SPEAR_DISPATCH_ALL(x.dtype(), "gather", [&] {
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int64_t* id = ids.data_ptr<int64_t>();
    parallel_runs<2>(
        out.shape(), {out.strides(), x_strides},
        [&](int64_t n, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& st) {
          for (int64_t j = 0; j < n; ++j) {
            int64_t at = off[0] + j * st[0];
            o[at] = in[off[1] + j * st[1] + id[at] * dim_stride];
          }
        });
  });
  return out;
}

// weight: (V, C) float, ids: any shape, i64 in [0, V) -> ids.shape + (C)
Tensor embedding(const Tensor& weight, const Tensor& ids) {
  SPEAR_CHECK_SHAPE(weight.dim() == 2, "embedding: weight must be (V, C), got shape ",
                    weight.shape());
  SPEAR_CHECK_DTYPE(weight.is_floating_point(), "embedding: weight must be f32 or f64, got ",
                    weight.dtype());
  Tensor flat = checked_ids(ids, weight.shape()[0], "embedding", "id");
  Shape shape = ids.shape();
  shape.push_back(weight.shape()[1]);
  Tensor out = Tensor::empty(shape, weight.dtype());
  take_rows(contiguous(weight), 1, weight.shape()[0], weight.shape()[1], flat, out);
  return out;
}

// x: S, mask: broadcastable to S, any dtype -> S; out = mask != 0 ? value : x.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  SPEAR_CHECK_SHAPE(broadcast_shapes(x.shape(), mask.shape(), "masked_fill") == x.shape(),
                    "masked_fill: mask shape ", mask.shape(), " does not broadcast to input shape ",
                    x.shape());
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const Shape mask_strides = broadcast_strides(mask, x.shape());
  SPEAR_DISPATCH_ALL(x.dtype(), "masked_fill", [&] {
    using x_t = scalar_t;
    const auto fill = static_cast<x_t>(value);
    const x_t* in = x.data_ptr<x_t>();
    x_t* o = out.data_ptr<x_t>();
    SPEAR_DISPATCH_ALL(mask.dtype(), "masked_fill", [&] {
      const scalar_t* m = mask.data_ptr<scalar_t>();
      parallel_runs<3>(
          x.shape(), {out.strides(), x.strides(), mask_strides},
          [&](int64_t n, const std::array<int64_t, 3>& off, const std::array<int64_t, 3>& st) {
            for (int64_t j = 0; j < n; ++j)
              o[off[0] + j * st[0]] =
                  m[off[2] + j * st[2]] != scalar_t(0) ? fill : in[off[1] + j * st[1]];
          });
    });
  });
  return out;
}

// ids: any shape, i64 in [0, num_classes) -> ids.shape + (num_classes) of 0s with a 1 at each id
Tensor one_hot(const Tensor& ids, int64_t num_classes, DType dtype) {
  SPEAR_CHECK_SHAPE(num_classes > 0, "one_hot: num_classes must be positive, got ", num_classes);
  Tensor flat = checked_ids(ids, num_classes, "one_hot", "id");
  Shape shape = ids.shape();
  shape.push_back(num_classes);
  Tensor out = Tensor::empty(shape, dtype);
  SPEAR_DISPATCH_ALL(dtype, "one_hot", [&] {
    scalar_t* o = out.data_ptr<scalar_t>();
    const int64_t* id = flat.data_ptr<int64_t>();
    parallel_for(0, flat.numel(), grain_for(num_classes), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        scalar_t* row = o + i * num_classes;
        std::fill_n(row, num_classes, scalar_t(0));
        row[id[i]] = scalar_t(1);
      }
    });
  });
  return out;
}

namespace {

// The positions of each id: for every s in [0, S), the l with ids[l] == s, in increasing l, are
// order[start[s]] .. order[start[s + 1] - 1]. A counting sort, O(L + S).
struct IdGroups {
  std::vector<int64_t> start, order;
};

IdGroups group_by_id(const Tensor& ids, int64_t S) {
  const int64_t* id = ids.data_ptr<int64_t>();
  const int64_t L = ids.numel();
  IdGroups g{std::vector<int64_t>(S + 1, 0), std::vector<int64_t>(L)};
  for (int64_t l = 0; l < L; ++l) ++g.start[id[l] + 1];
  for (int64_t s = 0; s < S; ++s) g.start[s + 1] += g.start[s];
  std::vector<int64_t> next(g.start.begin(), g.start.end() - 1);
  for (int64_t l = 0; l < L; ++l) g.order[next[id[l]]++] = l;
  return g;
}

}  // namespace

// src: (.., L, ..) along dim, index: (L) i64 in [0, S) -> shape (.., S, ..);
// out = zeros with out[.., index[l], ..] += src[.., l, ..].
Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  const auto rank = static_cast<int64_t>(shape.size());
  SPEAR_CHECK_SHAPE(rank > 0, "index_add: output must have at least one dim, got shape ", shape);
  dim = wrap_dim(dim, rank, "index_add");
  SPEAR_CHECK_SHAPE(index.dim() == 1, "index_add: index must be 1-d, got shape ", index.shape());
  Shape src_shape = shape;
  src_shape[dim] = index.numel();
  SPEAR_CHECK_SHAPE(src.shape() == src_shape, "index_add: src shape ", src.shape(),
                    " does not match output shape ", shape, " with ", index.numel(), " ids in dim ",
                    dim, ", i.e. ", src_shape);
  const int64_t S = shape[dim], L = index.numel();
  Tensor ids = checked_ids(index, S, "index_add", "index");
  const IdGroups groups = group_by_id(ids, S);
  const int64_t outer = prod(shape, 0, dim), inner = prod(shape, dim + 1, rank);
  Tensor in = contiguous(src);
  Tensor out = zeros(shape, src.dtype());
  // One item per output row (b, s): it sums the source rows (b, l) whose id is s, so no two
  // threads write one row. An item's work is about inner times the mean number of ids per row.
  const int64_t hits_per_row = std::max<int64_t>(1, L / std::max<int64_t>(S, 1));
  SPEAR_DISPATCH_ALL(src.dtype(), "index_add", [&] {
    const scalar_t* from = in.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    parallel_for(0, outer * S, grain_for(inner * hits_per_row), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const int64_t b = r / S, s = r % S;
        scalar_t* row = o + r * inner;
        for (int64_t k = groups.start[s]; k < groups.start[s + 1]; ++k) {
          const scalar_t* src_row = from + (b * L + groups.order[k]) * inner;
          for (int64_t i = 0; i < inner; ++i) row[i] += src_row[i];
        }
      }
    });
  });
  return out;
}

// index, src: I with the rank of shape and I[d] <= shape[d] for d != dim -> shape;
// out = zeros with, for dim=1, out[i][index[i][j][k]][k] += src[i][j][k].
Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  const auto rank = static_cast<int64_t>(shape.size());
  SPEAR_CHECK_SHAPE(index.dim() == rank, "scatter_add: index shape ", index.shape(), " has rank ",
                    index.dim(), " but output ", shape, " has rank ", rank);
  SPEAR_CHECK_SHAPE(rank > 0, "scatter_add: output must have at least one dim, got shape ", shape);
  dim = wrap_dim(dim, rank, "scatter_add");
  SPEAR_CHECK_SHAPE(src.shape() == index.shape(), "scatter_add: src shape ", src.shape(),
                    " differs from index shape ", index.shape());
  for (int64_t d = 0; d < rank; ++d)
    SPEAR_CHECK_SHAPE(d == dim || index.shape()[d] <= shape[d], "scatter_add: index shape ",
                      index.shape(), " is larger than output shape ", shape, " in dim ", d);
  Tensor ids = checked_ids(index, shape[dim], "scatter_add", "index");
  Tensor out = zeros(shape, src.dtype());
  // A line is the J = I[dim] positions of index that differ only in dim. Two lines differ outside
  // dim, so they write disjoint output elements: threads split the lines, and every line adds
  // its sources in increasing j.
  const int64_t J = index.shape()[dim];
  Shape lines = index.shape(), out_strides = out.strides(), id_strides = ids.strides(),
        src_strides = src.strides();
  const int64_t out_step = out_strides[dim], id_step = id_strides[dim], src_step = src_strides[dim];
  for (Shape* s : {&lines, &out_strides, &id_strides, &src_strides}) s->erase(s->begin() + dim);
  const StridedLoop<3> loop = coalesce<3>(lines, {out_strides, id_strides, src_strides});
  SPEAR_DISPATCH_ALL(src.dtype(), "scatter_add", [&] {
    const scalar_t* from = src.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int64_t* id = ids.data_ptr<int64_t>();
    parallel_for(0, shape_numel(lines), grain_for(J), [&](int64_t lo, int64_t hi) {
      for_each_run<3>(
          loop, lo, hi,
          [&](int64_t n, const std::array<int64_t, 3>& off, const std::array<int64_t, 3>& st) {
            // j outermost walks neighbouring lines together; each line still sees j in order.
            for (int64_t j = 0; j < J; ++j)
              for (int64_t e = 0; e < n; ++e) {
                const int64_t to = id[off[1] + e * st[1] + j * id_step];
                o[off[0] + e * st[0] + to * out_step] += from[off[2] + e * st[2] + j * src_step];
              }
          });
    });
  });
  return out;
}

}  // namespace spear::kernels
