// spear-bench spe: forward + backward of SPE feeding linear attention, vs sequence length.
// B 8, H 4, D 32, R 64 realizations, K 10 sines, P 128 taps; gated filters; elu+1 linear
// attention, non-causal. `none` is the same attention fed R-wide queries and keys directly, so
// peak_mib(sine or conv) - peak_mib(none) is what SPE itself costs in memory. One whole
// batch-shared (N, H, D, R) code in f32 for q and k would take 2 N H D R 4 bytes; the fused
// filters never hold it.
#include <memory>
#include <string>

#include <spear.h>

#include "bench/harness.h"

namespace spear::bench {

void bench_spe(const Options& opt) {
  const int64_t B = 8, H = 4, D = 32, R = 64, K = 10, P = 128;
  for (const std::string kind : {"none", "sine", "conv"}) {
    if (!opt.only.empty() && opt.only != kind) continue;
    std::shared_ptr<spe::SPEFilter> filter;
    if (kind != "none") {
      std::shared_ptr<spe::PositionalCode> code;
      if (kind == "sine")
        code = std::make_shared<spe::SineSPE>(H, D, R, K, 1);
      else
        code = std::make_shared<spe::ConvSPE>(H, D, R, std::vector<int64_t>{P},
                                              std::vector<int64_t>{}, 1);
      filter = std::make_shared<spe::SPEFilter>(code, true, 0, true);
    }
    nn::LinearAttention attention(std::make_shared<nn::EluFeatureMap>());
    for (int64_t n = 256; n <= 16384; n *= 2) {
      const int64_t width = filter ? D : R;  // `none` gets R-wide q and k directly
      Tensor q = (randn({B, n, H, width}) * 0.3).detach().requires_grad_();
      Tensor k = (randn({B, n, H, width}) * 0.3).detach().requires_grad_();
      Tensor v = randn({B, n, H, D}).requires_grad_();
      Tensor g = randn({B, n, H, D});
      auto step = [&] {
        Tensor qh = q, kh = k;
        if (filter) std::tie(qh, kh) = filter->forward(q, k, 0);
        attention.forward(qh, kh, v, Tensor(), false).backward(g);
        q.zero_grad();
        k.zero_grad();
        v.zero_grad();
        if (filter) filter->zero_grad();
      };
      const int64_t before = memory_stats().current_bytes;
      reset_peak_memory();
      step();
      const double peak_mib = static_cast<double>(memory_stats().peak_bytes - before) / (1 << 20);
      const double ms = best_seconds(step, 1.0, 2) * 1e3;
      emit(opt, {{"bench", "spe"},
                 {"spe", kind},
                 {"n", n},
                 {"batch", B},
                 {"heads", H},
                 {"features", D},
                 {"realizations", R},
                 {"sines", K},
                 {"kernel_size", P},
                 {"threads", get_num_threads()},
                 {"ms", round2(ms)},
                 {"peak_mib", round2(peak_mib)},
                 {"code_mib", round2(2.0 * n * H * D * R * 4 / (1 << 20))}});
    }
  }
}

}  // namespace spear::bench
