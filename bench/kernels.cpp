// spear-bench matmul and elementwise: spear's kernels next to the raw library they stand on.
#include <cblas.h>

#include <cstring>
#include <vector>

#include <spear.h>

#include "bench/harness.h"

namespace spear::bench {
namespace {

// GFLOP/s of spear::matmul under both GEMM policies, and of one raw cblas_sgemm call with
// OpenBLAS's own threads (same thread count), on the same data.
void bench_matmul_shape(const Options& opt, int64_t m, int64_t k, int64_t n) {
  Tensor a = randn({m, k}), b = randn({k, n}), c = empty({m, n});
  const double gflop = 2.0 * m * n * k * 1e-9;
  set_gemm_policy(GemmPolicy::tbb);
  double t_tbb = best_seconds([&] { matmul(a, b); });
  set_gemm_policy(GemmPolicy::blas);  // OpenBLAS now runs get_num_threads() threads
  double t_blas_policy = best_seconds([&] { matmul(a, b); });
  double t_raw = best_seconds([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data_ptr<float>(), k,
                b.data_ptr<float>(), n, 0.0f, c.data_ptr<float>(), n);
  });
  set_gemm_policy(GemmPolicy::tbb);
  emit(opt, {{"bench", "matmul"},
             {"size", m == k && k == n ? m : 0},
             {"m", m},
             {"k", k},
             {"n", n},
             {"threads", get_num_threads()},
             {"spear_gflops", round2(gflop / t_tbb)},
             {"spear_blas_policy_gflops", round2(gflop / t_blas_policy)},
             {"sgemm_gflops", round2(gflop / t_raw)},
             {"ratio", round2(t_raw / t_tbb)}});
}

}  // namespace

void bench_matmul(const Options& opt) {
  for (int64_t s : {256, 512, 1024, 2048}) bench_matmul_shape(opt, s, s, s);
  // Transformer shapes: activations (B*N, C) times a small weight, and the weight gradient
  // (out, B*N) @ (B*N, in) with its long inner dim.
  bench_matmul_shape(opt, 16384, 64, 64);
  bench_matmul_shape(opt, 16384, 64, 256);
  bench_matmul_shape(opt, 64, 16384, 64);
}

// GB/s moved by add, gelu and memcpy on 16M f32 elements (64 MiB per tensor).
void bench_elementwise(const Options& opt) {
  const int64_t n = int64_t(1) << 24;
  Tensor a = randn({n}), b = randn({n});
  std::vector<float> dst(static_cast<size_t>(n));
  const double bytes = 4.0 * n;
  double t_copy = best_seconds([&] { std::memcpy(dst.data(), a.data_ptr<float>(), 4 * n); });
  const double copy_gbps = 2 * bytes / t_copy * 1e-9;
  double t_add = best_seconds([&] { add(a, b); });
  double t_gelu = best_seconds([&] { gelu(a); });
  for (auto [name, gbps] : {std::pair<const char*, double>{"memcpy", copy_gbps},
                            {"add", 3 * bytes / t_add * 1e-9},
                            {"gelu", 2 * bytes / t_gelu * 1e-9}})
    emit(opt, {{"bench", "elementwise"},
               {"op", name},
               {"n", n},
               {"threads", get_num_threads()},
               {"gbps", round2(gbps)},
               {"memcpy_gbps", round2(copy_gbps)}});
}

}  // namespace spear::bench
