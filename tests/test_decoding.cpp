// Step-by-step decoding equals the parallel causal forward, for every attention kernel, and
// sampling draws from the distribution it promises.
#include <doctest/doctest.h>

#include <cmath>

#include <spear.h>

#include "nn/linear_attention.h"
#include "nn/sampling.h"
#include "nn/transformer.h"
#include "spe/spe.h"

using namespace spear;
using namespace spear::nn;

namespace {

std::shared_ptr<CausalLM> tiny_lm(const std::string& kernel, const std::string& positional) {
  TransformerConfig config;
  config.vocab_size = 11;
  config.dim = 16;
  config.heads = 2;
  config.layers = 2;
  TransformerParts parts;
  // With SPE the attention sees R = 12 wide queries and keys instead of the head width 8.
  const int64_t width = positional.find("spe") != std::string::npos ? 12 : 8;
  parts.attention = [kernel, width](int64_t layer) -> std::shared_ptr<AttentionKernel> {
    if (kernel == "softmax") return std::make_shared<SoftmaxAttention>();
    return std::make_shared<LinearAttention>(make_feature_map(kernel, width, 32, 1, 40 + layer));
  };
  if (positional == "rope") {
    parts.qk_encoding = [](int64_t) { return std::make_shared<RotaryEncoding>(); };
  } else if (positional == "sine_spe" || positional == "conv_spe") {
    // One code shared by both layers (registered by layer 0), a gate per layer.
    std::shared_ptr<spe::PositionalCode> code;
    if (positional == "sine_spe")
      code = std::make_shared<spe::SineSPE>(2, 8, 12, 3, 5);
    else
      code = std::make_shared<spe::ConvSPE>(2, 8, 12, std::vector<int64_t>{7},
                                            std::vector<int64_t>{}, 5);
    parts.qk_encoding = [code](int64_t layer) {
      return std::make_shared<spe::SPEFilter>(code, true, layer, layer == 0);
    };
  } else {
    parts.input_encoding = std::make_shared<SinusoidalEncoding>(16);
  }
  Generator gen(3);
  auto lm = std::make_shared<CausalLM>(config, parts, false, &gen);
  lm->to(f64);
  lm->eval();
  return lm;
}

}  // namespace

TEST_CASE("decoding one token at a time equals the parallel causal forward") {
  Generator gen(1);
  Tensor ids = randint(0, 11, {2, 150}, &gen);  // 150 positions: three causal chunks
  for (const char* kernel : {"softmax", "elu", "relu", "favor"})
    for (const char* positional : {"sinusoidal", "rope", "sine_spe", "conv_spe"}) {
      CAPTURE(kernel);
      CAPTURE(positional);
      auto lm = tiny_lm(kernel, positional);
      spe::set_draw(*lm, 3);  // one draw for the whole sequence, step by step or at once
      NoGradGuard no_grad;
      Tensor parallel = lm->forward(ids);  // (2, 150, 11)
      std::vector<DecodeState> states;
      std::vector<Tensor> steps;
      for (int64_t t = 0; t < 150; ++t)
        steps.push_back(lm->forward_step(ids.narrow(1, t, 1), states, t));
      Tensor recurrent = cat(steps, 1);
      double worst = (recurrent - parallel).abs().max().item<double>();
      double scale = parallel.abs().max().item<double>();
      CHECK(worst <= 1e-10 * scale);
      // Linear attention keeps O(1) state per layer: (B, H, F, M) and (B, H, F), whatever N.
      if (std::string(kernel) != "softmax") {
        CHECK(states[0].tensors.size() == 2);
        CHECK(states[0].tensors[0].dim() == 4);
        CHECK(states[0].tensors[0].size(0) == 2);
      } else {
        CHECK(states[0].tensors[0].size(1) == 150);
      }
    }
}

TEST_CASE("generate with SPE gives the tokens of the parallel forward on the growing prefix") {
  for (const char* kernel : {"elu", "softmax"}) {
    CAPTURE(kernel);
    auto lm = tiny_lm(kernel, "sine_spe");
    spe::set_draw(*lm, 11);
    Tensor prompt = tensor(std::vector<int64_t>{1, 2, 3, 4, 5, 6}, {2, 3});
    SamplingOptions greedy;
    greedy.temperature = 0;
    Tensor out = lm->generate(prompt, 6, greedy);
    NoGradGuard no_grad;
    for (int64_t t = 3; t < 9; ++t) {
      Tensor logits = lm->forward(out.narrow(1, 0, t)).narrow(1, t - 1, 1).squeeze(1);
      CHECK(argmax(logits, 1).to_vector<int64_t>() ==
            out.narrow(1, t, 1).squeeze(1).to_vector<int64_t>());
    }
  }
}

TEST_CASE("generate continues the prompt, reproducibly from the seed") {
  auto lm = tiny_lm("elu", "rope");
  Tensor prompt = tensor(std::vector<int64_t>{1, 2, 3, 4, 5, 6}, {2, 3});
  SamplingOptions options;
  options.seed = 9;
  Tensor a = lm->generate(prompt, 7, options), b = lm->generate(prompt, 7, options);
  CHECK(a.shape() == Shape{2, 10});
  CHECK(a.to_vector<int64_t>() == b.to_vector<int64_t>());
  CHECK(a.narrow(1, 0, 3).to_vector<int64_t>() == prompt.to_vector<int64_t>());
  // Greedy decoding picks the argmax of the parallel forward's last position at every step.
  options.temperature = 0;
  Tensor greedy = lm->generate(prompt, 4, options);
  NoGradGuard no_grad;
  for (int64_t t = 3; t < 7; ++t) {
    Tensor logits = lm->forward(greedy.narrow(1, 0, t)).narrow(1, t - 1, 1).squeeze(1);
    CHECK(argmax(logits, 1).to_vector<int64_t>() ==
          greedy.narrow(1, t, 1).squeeze(1).to_vector<int64_t>());
  }
  CHECK(lm->generate(prompt, 0).to_vector<int64_t>() == prompt.to_vector<int64_t>());
  CHECK_THROWS_AS(lm->generate(zeros({2, 0}, i64), 3), ShapeError);
}

TEST_CASE("sampling follows softmax(logits / T), truncated by top-k and top-p") {
  Tensor logits = tensor(std::vector<double>{2.0, 1.0, 0.0, -1.0}, {1, 4});
  const double z = std::exp(2.0) + std::exp(1.0) + 1 + std::exp(-1.0);
  const std::vector<double> p = {std::exp(2.0) / z, std::exp(1.0) / z, 1 / z, std::exp(-1.0) / z};
  Generator gen(17);
  const int draws = 20000;
  auto counts = [&](const SamplingOptions& options) {
    std::vector<double> c(4, 0);
    Tensor many = expand(logits, {draws, 4}).contiguous();
    for (int64_t t : sample_tokens(many, options, gen).to_vector<int64_t>()) c[t] += 1;
    return c;
  };
  // Chi-square with 3 degrees of freedom: 21.1 is the p = 1e-4 quantile, so the test is seeded
  // and would fail by chance once in ten thousand seeds.
  std::vector<double> c = counts({});
  double chi2 = 0;
  for (int i = 0; i < 4; ++i)
    chi2 += (c[i] - draws * p[i]) * (c[i] - draws * p[i]) / (draws * p[i]);
  CHECK(chi2 < 21.1);
  SamplingOptions top2;
  top2.top_k = 2;
  c = counts(top2);
  CHECK(c[2] + c[3] == 0);
  // Each kept token's share is within 5 binomial standard errors of p_i / (p_0 + p_1).
  const double share = p[0] / (p[0] + p[1]);
  CHECK(std::fabs(c[0] / draws - share) < 5 * std::sqrt(share * (1 - share) / draws));
  SamplingOptions nucleus;
  nucleus.top_p = 0.5;  // p[0] = 0.64 alone reaches 0.5
  c = counts(nucleus);
  CHECK(c[0] == draws);
  SamplingOptions greedy;
  greedy.temperature = 0;
  CHECK(sample_tokens(logits, greedy, gen).item<int64_t>() == 0);
  SamplingOptions bad;
  bad.top_p = 0;
  CHECK_THROWS_AS(sample_tokens(logits, bad, gen), ConfigError);
}
