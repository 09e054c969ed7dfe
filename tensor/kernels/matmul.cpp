// Matrix products on OpenBLAS.
// a: (..., M, K), b: (..., K, N) -> (..., M, N), batch dims broadcast.
//
// Threading follows the GEMM policy (parallel.h). Under `tbb`, BLAS is single-threaded and we
// split the work into tasks: whole products when there are many, otherwise one big block of
// rows (or columns) of each product per thread — coarse on purpose, since many small BLAS calls
// are slower than a few. Each output element is computed with the same register tile and K loop
// as in one whole call, so the result is bit-identical for any number of threads (the tests
// check it). Under `blas`, one multi-threaded call per product.
#include <algorithm>
#include <vector>

#include "tensor/kernels/blas.h"
#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"

namespace spear::kernels {
namespace {

// Products under kMinFlopsToSplit are not worth splitting. Blocks start at multiples of
// kBlockAlign rows (or columns): a multiple of the register-tile sizes of OpenBLAS's x86 kernels
// (powers of two up to 32), so a block boundary is also a tile boundary of the whole product.
constexpr int64_t kMinFlopsToSplit = int64_t(1) << 22;
constexpr int64_t kBlockAlign = 64;
// A product too narrow to cut into row or column blocks but with a long inner dim (a weight
// gradient: (out, tokens) @ (tokens, in)) is cut along K into chunks of this many, summed in order.
constexpr int64_t kSplitK = 4096;

// One operand of a GEMM: a pointer per batch entry, plus how BLAS should read the matrix.
struct GemmOperand {
  Tensor t;                 // (batch..., rows, cols) with BLAS-compatible matrix strides
  bool transposed = false;  // stored column-major (stride(-2) == 1)
  int64_t ld = 0;           // leading dimension for BLAS
};

// BLAS reads a matrix with unit stride along one axis and a leading dimension along the other.
// Views that already look like that (including transposes and broadcast batches) are used in
// place; anything else is copied.
GemmOperand as_gemm_operand(const Tensor& x) {
  int64_t rows = x.size(-2), cols = x.size(-1), rs = x.stride(-2), cs = x.stride(-1);
  if ((cs == 1 || cols == 1) && rs >= std::max<int64_t>(cols, 1)) return {x, false, rs};
  if ((rs == 1 || rows == 1) && cs >= std::max<int64_t>(rows, 1)) return {x, true, cs};
  Tensor c = clone(x);
  return {c, false, std::max<int64_t>(cols, 1)};
}

// Row i of a matrix operand starts at i * (transposed ? 1 : ld); column j at j * (transposed ? ld :
// 1).
int64_t row_step(const GemmOperand& x) {
  return x.transposed ? 1 : x.ld;
}
int64_t col_step(const GemmOperand& x) {
  return x.transposed ? x.ld : 1;
}

// Offset of batch entry `b` (row-major over `batch`) in a tensor with the given batch strides.
int64_t batch_offset(int64_t b, const Shape& batch, const Shape& strides) {
  int64_t off = 0;
  for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
    off += (b % batch[d]) * strides[d];
    b /= batch[d];
  }
  return off;
}

// c = a @ b for one product, as the sum over fixed K-chunks of a[:, chunk] @ b[chunk, :]. The
// chunks depend only on K, and their partial products are added in chunk order, so the result
// does not depend on the thread count (it differs from one whole BLAS call in the last bits).
template <typename T>
void split_k_gemm(const GemmOperand& a, const GemmOperand& b, Tensor& c) {
  const int64_t m = c.size(-2), n = c.size(-1), k = a.t.size(-1);
  const int64_t chunks = (k + kSplitK - 1) / kSplitK;
  std::vector<T> partial(static_cast<size_t>(chunks * m * n));
  const T* pa = a.t.data_ptr<T>();
  const T* pb = b.t.data_ptr<T>();
  parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t ch = lo; ch < hi; ++ch) {
      const int64_t k0 = ch * kSplitK, kn = std::min(kSplitK, k - k0);
      gemm<T>(a.transposed, b.transposed, m, n, kn, T(1), pa + k0 * col_step(a), a.ld,
              pb + k0 * row_step(b), b.ld, T(0), partial.data() + ch * m * n, n);
    }
  });
  T* pc = c.data_ptr<T>();
  parallel_for(0, m * n, kMinParallelElements, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T acc = partial[i];
      for (int64_t ch = 1; ch < chunks; ++ch) acc += partial[ch * m * n + i];
      pc[i] = acc;
    }
  });
}

// c[batch] = a[batch] @ b[batch] for every batch entry; a, b already expanded to `batch`.
template <typename T>
void batched_gemm(const GemmOperand& a, const GemmOperand& b, Tensor& c, const Shape& batch) {
  const int64_t m = c.size(-2), n = c.size(-1), k = a.t.size(-1);
  const int64_t count = shape_numel(batch);
  Shape sa(a.t.strides().begin(), a.t.strides().end() - 2);
  Shape sb(b.t.strides().begin(), b.t.strides().end() - 2);
  const T* pa = a.t.data_ptr<T>();
  const T* pb = b.t.data_ptr<T>();
  T* pc = c.data_ptr<T>();
  // A block [lo, hi) of rows (or columns) of one product.
  auto product = [&](int64_t i, int64_t lo, int64_t hi, bool by_rows) {
    const T* ai = pa + batch_offset(i, batch, sa);
    const T* bi = pb + batch_offset(i, batch, sb);
    T* ci = pc + i * m * n;
    if (by_rows)
      gemm<T>(a.transposed, b.transposed, hi - lo, n, k, T(1), ai + lo * row_step(a), a.ld, bi,
              b.ld, T(0), ci + lo * n, n);
    else
      gemm<T>(a.transposed, b.transposed, m, hi - lo, k, T(1), ai, a.ld, bi + lo * col_step(b),
              b.ld, T(0), ci + lo, n);
  };
  if (get_gemm_policy() == GemmPolicy::blas) {
    for (int64_t i = 0; i < count; ++i) product(i, 0, m, true);
    return;
  }
  // With fewer products than threads, each product is cut into one block of rows (or columns)
  // per thread. Cuts fall on multiples of kBlockAlign, where OpenBLAS's micro-kernels tile the
  // same way as in one whole call, so the bits do not depend on how many blocks there are.
  const int64_t flops = 2 * m * n * k;
  const bool by_rows = m >= n;
  const int64_t extent = by_rows ? m : n;
  const int64_t threads = get_num_threads();
  int64_t blocks = 1;
  if (count < threads && flops >= kMinFlopsToSplit)
    blocks = std::min(threads, (extent + kBlockAlign - 1) / kBlockAlign);
  auto cut = [&](int64_t blk) {
    return std::min(extent, (extent * blk / blocks + kBlockAlign / 2) / kBlockAlign * kBlockAlign);
  };
  // (The choice depends on the shape only, never on the thread count.)
  if (count == 1 && extent < 2 * kBlockAlign && k >= 2 * kSplitK && flops >= kMinFlopsToSplit) {
    split_k_gemm<T>(a, b, c);
    return;
  }
  const int64_t task_flops = std::max<int64_t>(1, flops / blocks);
  parallel_for(0, count * blocks, std::max<int64_t>(1, kMinFlopsToSplit / task_flops),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t t = lo; t < hi; ++t) {
                   int64_t i = t / blocks, blk = t % blocks;
                   if (blk == blocks - 1)
                     product(i, cut(blk), extent, by_rows);
                   else
                     product(i, cut(blk), cut(blk + 1), by_rows);
                 }
               });
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  SPEAR_CHECK_DTYPE(a_in.dtype() == b_in.dtype(), "matmul: dtypes differ: ", a_in.dtype(), " @ ",
                    b_in.dtype());
  SPEAR_CHECK_DTYPE(a_in.is_floating_point(), "matmul: expected f32 or f64, got ", a_in.dtype());
  SPEAR_CHECK_SHAPE(a_in.dim() >= 1 && b_in.dim() >= 1,
                    "matmul: both operands need at least 1 dim, got ", a_in.shape(), " @ ",
                    b_in.shape());
  // Vectors become 1-row / 1-column matrices, and that dim is dropped again at the end.
  Tensor a = a_in.dim() == 1 ? unsqueeze(a_in, 0) : a_in;
  Tensor b = b_in.dim() == 1 ? unsqueeze(b_in, 1) : b_in;
  SPEAR_CHECK_SHAPE(a.size(-1) == b.size(-2), "matmul: inner dims differ: ", a_in.shape(), " @ ",
                    b_in.shape());
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);

  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                 Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
  Tensor out;
  if (b.dim() == 2 && a.dim() > 2) {
    // (..., M, K) @ (K, N): one (prod(...) * M, K) @ (K, N) product, the Linear-layer case.
    Tensor rows = reshape(a, {-1, k});
    out = reshape(matmul(rows, b), [&] {
      Shape s(a.shape().begin(), a.shape().end() - 1);
      s.push_back(n);
      return s;
    }());
  } else {
    Shape sa = batch, sb = batch, so = batch;
    sa.insert(sa.end(), {m, k});
    sb.insert(sb.end(), {k, n});
    so.insert(so.end(), {m, n});
    out = Tensor::empty(so, a.dtype());
    if (k == 0) {
      out.fill_(0.0);
    } else if (out.numel() > 0) {
      GemmOperand ga = as_gemm_operand(expand(a, sa)), gb = as_gemm_operand(expand(b, sb));
      SPEAR_DISPATCH_FLOAT(a.dtype(), "matmul",
                           [&] { batched_gemm<scalar_t>(ga, gb, out, batch); });
    }
  }
  if (a_in.dim() == 1) out = squeeze(out, -2);
  if (b_in.dim() == 1) out = squeeze(out, -1);
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  SPEAR_CHECK_SHAPE(
      a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
      "bmm: expected (B, M, K) @ (B, K, N), got ", a.shape(), " @ ", b.shape());
  return matmul(a, b);
}

}  // namespace spear::kernels
