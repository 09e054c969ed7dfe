// Threading: one knob. spear::set_num_threads(n) sets how many threads every kernel may use.
// Kernels parallelise through parallel_for, which runs inside one TBB arena of that size.
// OpenBLAS runs single-threaded inside; large GEMMs are split by TBB instead (see
// kernels/matmul.cpp), so TBB and BLAS never fight over the cores.
#pragma once
#include <cstdint>
#include <functional>

namespace spear {

// Default: SPEAR_NUM_THREADS if set, else every core.
void set_num_threads(int n);
int get_num_threads();

// How a large GEMM uses the threads: `tbb` splits it into row blocks, one single-threaded BLAS
// call per block inside the arena; `blas` makes one call and lets OpenBLAS use the threads.
// Default: tbb (env SPEAR_GEMM_POLICY=tbb|blas overrides).
enum class GemmPolicy { tbb, blas };
void set_gemm_policy(GemmPolicy policy);
GemmPolicy get_gemm_policy();

// Calls fn(lo, hi) on disjoint sub-ranges covering [begin, end). A range no longer than `grain`
// runs on the calling thread, so tiny tensors pay no threading cost.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

// Work below this many elements is not worth a thread.
inline constexpr int64_t kMinParallelElements = 32768;

// The grain, in items, for items that each touch `work_per_item` elements.
inline int64_t grain_for(int64_t work_per_item) {
  return work_per_item >= kMinParallelElements ? 1 : kMinParallelElements / (work_per_item + 1) + 1;
}

// A short description of the BLAS library in use ("OpenBLAS 0.3.21 ... (pthreads)").
const char* blas_info();

}  // namespace spear
