#include "tensor/parallel.h"

#include <cblas.h>
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "tensor/error.h"

namespace spear {
namespace {

struct ThreadState {
  int num_threads = 0;
  GemmPolicy gemm_policy = GemmPolicy::tbb;
  std::unique_ptr<tbb::task_arena> arena;
  std::unique_ptr<tbb::global_control> control;
};

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  SPEAR_CHECK_T(ConfigError, *end == '\0' && n > 0, name, " must be a positive integer, got '", v,
                "'");
  return static_cast<int>(n);
}

void configure(ThreadState& s, int n) {
  s.num_threads = n;
  s.control.reset();
  s.control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    static_cast<size_t>(n));
  s.arena = std::make_unique<tbb::task_arena>(n);
  // Under the tbb policy every BLAS call is already one of n parallel tasks.
  openblas_set_num_threads(s.gemm_policy == GemmPolicy::blas ? n : 1);
}

ThreadState& state() {
  static ThreadState s;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* policy = std::getenv("SPEAR_GEMM_POLICY");
    if (policy && *policy) {
      std::string p = policy;
      SPEAR_CHECK_T(ConfigError, p == "tbb" || p == "blas",
                    "SPEAR_GEMM_POLICY must be 'tbb' or 'blas', got '", p, "'");
      s.gemm_policy = p == "tbb" ? GemmPolicy::tbb : GemmPolicy::blas;
    }
    configure(s, env_int("SPEAR_NUM_THREADS", tbb::info::default_concurrency()));
  });
  return s;
}

}  // namespace

void set_num_threads(int n) {
  SPEAR_CHECK_T(ConfigError, n > 0, "set_num_threads: need at least 1 thread, got ", n);
  configure(state(), n);
}

int get_num_threads() {
  return state().num_threads;
}

void set_gemm_policy(GemmPolicy policy) {
  ThreadState& s = state();
  s.gemm_policy = policy;
  configure(s, s.num_threads);
}

GemmPolicy get_gemm_policy() {
  return state().gemm_policy;
}

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (end <= begin) return;
  ThreadState& s = state();
  grain = grain < 1 ? 1 : grain;
  if (s.num_threads == 1 || end - begin <= grain) {
    fn(begin, end);
    return;
  }
  s.arena->execute([&] {
    tbb::parallel_for(tbb::blocked_range<int64_t>(begin, end, static_cast<size_t>(grain)),
                      [&](const tbb::blocked_range<int64_t>& r) { fn(r.begin(), r.end()); });
  });
}

const char* blas_info() {
  return openblas_get_config();
}

}  // namespace spear
