#include "nn/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace spear::nn {

Tensor sample_tokens(const Tensor& logits, const SamplingOptions& options, Generator& gen) {
  SPEAR_CHECK_SHAPE(logits.dim() == 2 && logits.size(1) > 0,
                    "sample_tokens: expected logits (B, V), got ", logits.shape());
  SPEAR_CHECK_T(ConfigError, options.temperature >= 0,
                "sample_tokens: temperature must be >= 0, got ", options.temperature);
  SPEAR_CHECK_T(ConfigError, options.top_p > 0 && options.top_p <= 1,
                "sample_tokens: top_p must be in (0, 1], got ", options.top_p);
  SPEAR_CHECK_T(ConfigError, options.top_k >= 0, "sample_tokens: top_k must be >= 0, got ",
                options.top_k);
  const int64_t B = logits.size(0), V = logits.size(1);
  std::vector<double> values = logits.to_vector<double>();
  std::vector<double> uniforms = rand({B}, f64, &gen).to_vector<double>();
  std::vector<int64_t> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const double* row = &values[b * V];
    // Candidates from most to least likely (ties: the smaller id first).
    std::vector<int64_t> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t i, int64_t j) { return row[i] > row[j]; });
    if (options.temperature == 0) {
      out[b] = order[0];
      continue;
    }
    int64_t keep = options.top_k > 0 ? std::min(options.top_k, V) : V;
    std::vector<double> p(static_cast<size_t>(keep));
    for (int64_t i = 0; i < keep; ++i)
      p[i] = std::exp((row[order[i]] - row[order[0]]) / options.temperature);
    double total = std::accumulate(p.begin(), p.end(), 0.0);
    if (options.top_p < 1) {
      // The smallest prefix whose probability reaches top_p (always at least one token).
      double mass = 0;
      int64_t n = 0;
      while (n < keep && mass < options.top_p * total) mass += p[n++];
      keep = std::max<int64_t>(n, 1);
      total = std::accumulate(p.begin(), p.begin() + keep, 0.0);
    }
    double target = uniforms[b] * total, mass = 0;
    out[b] = order[keep - 1];
    for (int64_t i = 0; i < keep; ++i) {
      mass += p[i];
      if (target < mass) {
        out[b] = order[i];
        break;
      }
    }
  }
  return tensor(out);
}

}  // namespace spear::nn
