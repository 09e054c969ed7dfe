// spear-spe-variance: how far one draw of SPE's attention logits lies from their expectation, as
// the number of realizations R grows (docs/results.md).
//
//   build/bin/spear-spe-variance > variance.jsonl
//
// For a gated SineSPE and a gated ConvSPE at the reference's initialisation, with the study's
// shapes (H 4 heads of D 16 features, N 64 positions) and fixed random queries and keys, each R
// of 8, 16, ..., 512 and each of kDraws draws of the codes:
//   logits[h, m, n]   = qhat_m . khat_n                               (SPEFilter::forward)
//   expected[h, m, n] = sqrt(R / D) sum_d q_md k_nd Pt_hd(m - n)      (spec 1.4, gate included)
//   error             = |logits - expected| / |expected|              (Frobenius, all h, m, n)
// Every R sees the same parameters, queries and keys; only R changes. One JSON line per (code,
// R): the mean and std of the error over the draws and the filter's time per draw. Spec 1.5
// predicts error ~ 1/sqrt(R): the logit's variance does not depend on R while its mean grows as
// sqrt(R).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

#include <spear.h>

namespace {

using namespace spear;

constexpr int64_t kHeads = 4, kFeatures = 16, kLength = 64, kSines = 10, kTaps = 32;
constexpr int kDraws = 50;
constexpr uint64_t kSeed = 7;

// A gated filter in f64 whose parameters depend only on kSeed, not on R.
std::shared_ptr<spe::SPEFilter> make_filter(const std::string& kind, int64_t R) {
  Generator init(kSeed);
  std::shared_ptr<spe::PositionalCode> code;
  if (kind == "sine")
    code = std::make_shared<spe::SineSPE>(kHeads, kFeatures, R, kSines, kSeed, &init);
  else
    code = std::make_shared<spe::ConvSPE>(kHeads, kFeatures, R, std::vector<int64_t>{kTaps},
                                          std::vector<int64_t>{}, kSeed, &init);
  manual_seed(kSeed);  // the gate's N(0, 1) init comes from the default generator
  auto filter = std::make_shared<spe::SPEFilter>(code, /*gated=*/true, /*layer=*/0,
                                                 /*owns_code=*/true);
  filter->to(f64);
  return filter;
}

// q, k: (1, N, H, D) -> expected logits (H, N, N).
Tensor expected_logits(const spe::SPEFilter& filter, const Tensor& q, const Tensor& k) {
  std::vector<int64_t> lags;  // m - n for every (m, n), row-major
  for (int64_t m = 0; m < kLength; ++m)
    for (int64_t n = 0; n < kLength; ++n) lags.push_back(m - n);
  const Tensor kernel =
      filter.expected_kernel(tensor(lags)).reshape({kHeads, kFeatures, kLength, kLength});
  const Tensor qh = q.squeeze(0).permute({1, 2, 0}), kh = k.squeeze(0).permute({1, 2, 0});
  const double R = static_cast<double>(filter.code->realizations());
  return sum(qh.unsqueeze(3) * kh.unsqueeze(2) * kernel, {1}) * std::sqrt(R / kFeatures);
}

double frobenius(const Tensor& x) {
  return std::sqrt(sum(x * x).item<double>());
}

void measure(const std::string& kind, int64_t R, const Tensor& q, const Tensor& k) {
  NoGradGuard no_grad;
  const auto filter = make_filter(kind, R);
  const Tensor expected = expected_logits(*filter, q, k);
  double sum_error = 0, sum_error2 = 0, seconds = 0;
  for (int draw = 0; draw < kDraws; ++draw) {
    filter->code->set_draw(draw);
    const auto start = std::chrono::steady_clock::now();
    const auto [qhat, khat] = filter->forward(q, k, 0);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // (1, N, H, R) -> (H, N, N)
    const Tensor logits =
        matmul(qhat.squeeze(0).transpose(0, 1), khat.squeeze(0).permute({1, 2, 0}));
    const double error = frobenius(logits - expected) / frobenius(expected);
    sum_error += error;
    sum_error2 += error * error;
  }
  const double mean = sum_error / kDraws;
  const double std = std::sqrt((sum_error2 - kDraws * mean * mean) / (kDraws - 1));
  std::printf(
      "{\"code\": \"%s\", \"R\": %lld, \"heads\": %lld, \"features\": %lld, \"length\": %lld, "
      "\"draws\": %d, \"rel_error\": %.6g, \"rel_error_std\": %.6g, \"ms_per_draw\": %.4g}\n",
      kind.c_str(), static_cast<long long>(R), static_cast<long long>(kHeads),
      static_cast<long long>(kFeatures), static_cast<long long>(kLength), kDraws, mean, std,
      1e3 * seconds / kDraws);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    std::cerr << "usage: " << argv[0]
              << " (no arguments): one JSON line per SPE code and R on stdout\n";
    return std::string(argv[1]) == "--help" ? 0 : 2;
  }
  try {
    Generator gen(kSeed + 1);
    const Tensor q = randn({1, kLength, kHeads, kFeatures}, f64, &gen);
    const Tensor k = randn({1, kLength, kHeads, kFeatures}, f64, &gen);
    for (const std::string kind : {"sine", "conv"})
      for (int64_t R = 8; R <= 512; R *= 2) measure(kind, R, q, k);
  } catch (const spear::Error& e) {
    std::cerr << "spear-spe-variance: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
