// spear-bench attention: one forward + backward of the attention kernel alone, batch 8, 4 heads,
// head width 32, for N = 256 .. 16384. Reports milliseconds run after run on the same inputs
// (ms: up to N ~ 1024 they stay in cache between runs) and with the caches emptied before each
// run (ms_cold: as inside a model), and the peak of live tensor memory during the step
// (spear::memory_stats), above what existed before it.
//
// FLOPs per (batch, head), F = M = 32: softmax ~ 4 N^2 D forward and twice that backward;
// linear ~ 4 N F M forward (+ the chunked causal part, 2 N C (F + M) with C = 64).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <spear.h>

#include "bench/harness.h"
#include "nn/attention.h"
#include "nn/linear_attention.h"

namespace spear::bench {
namespace {

struct Kind {
  std::string name;
  bool causal;
  int64_t max_n;  // beyond this the O(N^2) or O(N F M) memory of the method is the point
  std::function<std::shared_ptr<nn::AttentionKernel>()> make;
};

}  // namespace

void bench_attention(const Options& opt) {
  const int64_t B = 8, H = 4, D = 32;
  auto linear = [](const char* map, bool fused) {
    return [=] {
      return std::make_shared<nn::LinearAttention>(nn::make_feature_map(map, D, D, 0, 1), 1e-6,
                                                   fused);
    };
  };
  const std::vector<Kind> kinds = {
      {"softmax", false, 4096, [] { return std::make_shared<nn::SoftmaxAttention>(); }},
      {"softmax", true, 4096, [] { return std::make_shared<nn::SoftmaxAttention>(); }},
      {"linear", false, 16384, linear("elu", true)},
      {"linear", true, 16384, linear("elu", true)},
      {"linear_composed", false, 16384, linear("elu", false)},
      {"linear_composed", true, 4096, linear("elu", false)},
      {"favor", false, 16384, linear("favor", true)},
      {"favor", true, 16384, linear("favor", true)},
  };
  for (const Kind& kind : kinds) {
    if (!opt.only.empty() && opt.only != kind.name) continue;
    std::shared_ptr<nn::AttentionKernel> kernel = kind.make();
    for (int64_t n = 256; n <= kind.max_n; n *= 2) {
      // Queries and keys of moderate size, as a layer norm and projection give.
      Tensor q = (randn({B, n, H, D}) * 0.3).detach().requires_grad_();
      Tensor k = (randn({B, n, H, D}) * 0.3).detach().requires_grad_();
      Tensor v = randn({B, n, H, D}).requires_grad_();
      Tensor g = randn({B, n, H, D});
      auto step = [&] {
        kernel->forward(q, k, v, Tensor(), kind.causal).backward(g);
        q.zero_grad();
        k.zero_grad();
        v.zero_grad();
      };
      const int64_t before = memory_stats().current_bytes;
      reset_peak_memory();
      step();
      const double peak_mib = static_cast<double>(memory_stats().peak_bytes - before) / (1 << 20);
      const double ms = best_seconds(step, 1.0, 2) * 1e3;
      const double ms_cold = best_seconds(step, 1.0, 2, flush_caches) * 1e3;
      emit(opt, {{"bench", "attention"},
                 {"kind", kind.name},
                 {"causal", kind.causal},
                 {"n", n},
                 {"batch", B},
                 {"heads", H},
                 {"head_dim", D},
                 {"threads", get_num_threads()},
                 {"ms", round2(ms)},
                 {"ms_cold", round2(ms_cold)},
                 {"peak_mib", round2(peak_mib)},
                 {"tokens_per_s", round2(B * n / (ms * 1e-3))}});
    }
  }
}

}  // namespace spear::bench
