// The one door to BLAS: a row-major GEMM templated over float and double.
//   c = alpha * op(a) @ op(b) + beta * c, op(x) = x or x^T;  op(a): (m, k), op(b): (k, n), c: (m,
//   n)
// Called from inside TBB tasks, so OpenBLAS must be (and is, see parallel.cpp) single-threaded.
#pragma once
#include <cblas.h>

#include <cstdint>
#include <type_traits>

namespace spear::kernels {

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace spear::kernels
