// spear in one file: build a causal language model with linear attention and stochastic
// positional encoding from the C++ API, train it, save it; then add a new layer of your own (a
// feature map with a hand-written backward), check its gradient, and plug it into the model.
//
//   build/bin/spear-tutorial [--steps N]
//
// docs/tutorial.md walks through this file.
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>

#include <spear.h>

using namespace spear;

// ---------------------------------------------------------------------------------------------
// Part 1. A model from parts
// ---------------------------------------------------------------------------------------------

// A CausalLM whose attention layers use `feature_map` and one shared, gated SineSPE code.
std::shared_ptr<nn::CausalLM> make_model(
    const std::function<std::shared_ptr<nn::FeatureMap>()>& feature_map, Generator& gen) {
  nn::TransformerConfig config;
  config.vocab_size = 8;
  config.dim = 32;
  config.heads = 2;
  config.layers = 2;
  const int64_t head_dim = config.dim / config.heads, realizations = 32;

  // SPE replaces the absolute positional encoding: each layer filters its queries and keys with
  // the code (R = 32 realizations of 4 sinusoids per feature), so attention sees 32-wide q and k.
  auto code = std::make_shared<spe::SineSPE>(config.heads, head_dim, realizations, 4,
                                             /*seed=*/gen.seed(), &gen);
  nn::TransformerParts parts;
  parts.qk_encoding = [code](int64_t layer) {
    return std::make_shared<spe::SPEFilter>(code, /*gated=*/true, layer, /*owns_code=*/layer == 0);
  };
  parts.attention = [feature_map](int64_t) {
    return std::make_shared<nn::LinearAttention>(feature_map());
  };
  return std::make_shared<nn::CausalLM>(config, parts, /*tie_embeddings=*/false, &gen);
}

// Sequences with relative structure: a random motif of 4 tokens repeated, so the token at
// position n equals the one at n - 4. Predicting it needs to look exactly 4 positions back: a
// job for a relative positional encoding. Batch row b of step s is drawn from counters only.
Tensor motif_batch(int64_t step, int64_t batch, int64_t length) {
  Generator gen(1000 + static_cast<uint64_t>(step));
  Tensor motifs = randint(0, 8, {batch, 4}, &gen);
  std::vector<Tensor> repeats(static_cast<size_t>(length / 4), motifs);
  return cat(repeats, 1);  // (batch, length)
}

// Trains `model` for `steps` steps of next-token prediction; returns the last loss.
double train(nn::CausalLM& model, int64_t steps) {
  nn::AdamW optimizer(nn::param_groups(model, 0.01), nn::AdamOptions{3e-3});
  nn::Schedule schedule{"cosine", 3e-3, steps / 10, steps, 3e-4};
  double loss_value = 0;
  for (int64_t step = 0; step < steps; ++step) {
    spe::set_draw(model, step);  // SPE draws new codes every step
    Tensor ids = motif_batch(step, 16, 32);
    Tensor inputs = ids.narrow(1, 0, 31), targets = ids.narrow(1, 1, 31);
    Tensor loss = cross_entropy(model.forward(inputs), targets);
    optimizer.zero_grad();
    loss.backward();
    nn::clip_grad_norm_(model.parameters(), 1.0);
    optimizer.set_lr(nn::lr_at(schedule, step));
    optimizer.step();
    loss_value = loss.item<double>();
    if (step % 50 == 0 || step + 1 == steps)
      std::cout << "  step " << step << "  loss " << loss_value << "\n";
  }
  return loss_value;
}

// ---------------------------------------------------------------------------------------------
// Part 2. A new layer: the "squareplus" feature map, phi(x) = (x + sqrt(x^2 + 4)) / 2
// ---------------------------------------------------------------------------------------------
// Smooth and strictly positive like elu + 1, but with no exp. We write it as a Function: forward
// and backward side by side, the derivative in one line above the backward.

// x: S -> phi(x): S
struct SquareplusFn : Function<SquareplusFn> {
  static constexpr const char* name = "tutorial_squareplus";
  static Tensor forward(Context& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return (x + sqrt(x * x + 4.0)) * 0.5;  // ops inside forward are not recorded
  }
  // dphi/dx = (1 + x / sqrt(x^2 + 4)) / 2
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    Tensor x = ctx.saved(0);
    return {g * ((x / sqrt(x * x + 4.0) + 1.0) * 0.5)};
  }
};

// The Module that plugs it into LinearAttention.
class SquareplusFeatureMap : public nn::FeatureMap {
 public:
  SquareplusFeatureMap() : nn::FeatureMap("SquareplusFeatureMap") {}
  Tensor forward(const Tensor& x, bool /*is_query*/) const override {
    return SquareplusFn::apply(x);
  }
};

int main(int argc, char** argv) {
  int64_t steps = 300;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--steps" && i + 1 < argc) {
      steps = std::atoll(argv[++i]);
    } else {
      std::cerr << "usage: spear-tutorial [--steps N]   (default 300)\n";
      return arg == "--help" ? 0 : 2;
    }
  }
  try {
    Generator gen(0);
    const double chance = std::log(8.0);  // the loss of a uniform guess over 8 tokens

    std::cout << "Part 1: elu + 1 linear attention with gated SineSPE\n";
    auto model = make_model([] { return std::make_shared<nn::EluFeatureMap>(); }, gen);
    std::cout << *model;
    double loss = train(*model, steps);
    save_safetensors("tutorial_model.safetensors", model->state_dict(), {{"format", "pt"}});
    std::cout << "  saved tutorial_model.safetensors; final loss " << loss << " (chance " << chance
              << ")\n\n";
    if (!(loss < 0.75 * chance)) {
      std::cerr << "spear-tutorial: the model did not learn (loss " << loss << ")\n";
      return 1;
    }

    std::cout << "Part 2: a new feature map, checked by gradcheck, then trained\n";
    GradcheckResult check =
        gradcheck([](const std::vector<Tensor>& in) { return SquareplusFn::apply(in[0]); },
                  {randn({3, 4}, f64, &gen).requires_grad_()});
    std::cout << "  gradcheck: " << (check.ok ? "ok" : check.report) << "\n";
    if (!check.ok) return 1;
    auto custom = make_model([] { return std::make_shared<SquareplusFeatureMap>(); }, gen);
    loss = train(*custom, steps);
    std::cout << "  final loss with squareplus features " << loss << "\n";
    return loss < 0.75 * chance ? 0 : 1;
  } catch (const Error& e) {
    std::cerr << "spear-tutorial: " << e.what() << "\n";
    return 1;
  }
}
