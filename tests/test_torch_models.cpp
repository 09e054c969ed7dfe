// Whole models against PyTorch: tests/tools/torch_model.py builds four small transformers in
// PyTorch (nn.TransformerEncoderLayer where PyTorch has the block, a hand-written block for RoPE)
// and saves their weights, inputs and float32 outputs. Here spear builds the same configurations,
// loads the weights with load_state_dict(strict) and must reproduce the logits (and, for the
// language models, the loss and every parameter gradient) in f32.
//
// Tolerance: both sides compute in f32, in different orders (PyTorch packs q, k, v into one
// matmul, rotates in double, ...), so values of size ~1 differ by a few ulp per op: |diff| is
// ~1e-6 after two layers. 1e-4 * max(1, |want|) leaves a wide margin while a wrong mask, scale or
// rotation moves logits by 1e-2 or more.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include <spear.h>

#include "nn/transformer.h"

using namespace spear;
using namespace spear::nn;

namespace {

const SafetensorsFile& fixture() {
  static const SafetensorsFile file =
      load_safetensors(SPEAR_TEST_DATA_DIR "/models/models.safetensors");
  return file;
}

// The entries "<model>.<group>.<name>" as {name, tensor}.
NamedTensors group(const std::string& model, const std::string& what) {
  const std::string prefix = model + "." + what + ".";
  NamedTensors out;
  for (const auto& [name, t] : fixture().tensors)
    if (name.compare(0, prefix.size(), prefix) == 0)
      out.emplace_back(name.substr(prefix.size()), t);
  return out;
}

const Tensor& get(const std::string& model, const std::string& name) {
  return fixture().at(model + "." + name);
}

// Checks |got - want| <= 1e-4 * max(1, |want|) everywhere and reports the largest difference.
void check_close(const Tensor& got, const Tensor& want, const std::string& what) {
  CAPTURE(what);
  REQUIRE(got.defined());
  REQUIRE(got.shape() == want.shape());
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double worst = 0, worst_rel = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double diff = std::fabs(g[i] - w[i]);
    worst = std::max(worst, diff);
    worst_rel = std::max(worst_rel, diff / std::max(1.0, std::fabs(w[i])));
  }
  MESSAGE(what << ": max abs diff " << worst);
  CHECK(worst_rel <= 1e-4);
}

TransformerConfig config(int64_t vocab, int64_t heads, int64_t hidden, Activation activation) {
  TransformerConfig c;
  c.vocab_size = vocab;
  c.dim = 16;
  c.heads = heads;
  c.layers = 2;
  c.ffn_hidden = hidden;
  c.activation = activation;
  return c;
}

TransformerParts parts(std::shared_ptr<PositionalEncoding> input, bool rope) {
  TransformerParts p;
  p.attention = [](int64_t) { return std::make_shared<SoftmaxAttention>(); };
  if (rope) p.qk_encoding = [](int64_t) { return std::make_shared<RotaryEncoding>(); };
  p.input_encoding = std::move(input);
  return p;
}

void check_classifier(const std::string& name, EncoderClassifier& model) {
  model.load_state_dict(group(name, "state"), true);
  model.eval();
  check_close(model.forward(get(name, "ids"), get(name, "mask")), get(name, "logits"),
              name + ".logits");
}

void check_lm(const std::string& name, CausalLM& model) {
  model.load_state_dict(group(name, "state"), true);
  model.eval();
  Tensor logits = model.forward(get(name, "ids"));
  check_close(logits, get(name, "logits"), name + ".logits");
  check_close(model.forward(get(name, "ids"), 3), get(name, "logits_offset"),
              name + ".logits_offset");
  Tensor loss = cross_entropy(logits, get(name, "targets"));
  check_close(loss, get(name, "loss"), name + ".loss");
  loss.backward();
  NamedTensors params = model.named_parameters();
  NamedTensors grads = group(name, "grad");
  REQUIRE(grads.size() == params.size());
  for (const auto& [pname, p] : params) {
    auto it =
        std::find_if(grads.begin(), grads.end(), [&](const auto& g) { return g.first == pname; });
    REQUIRE_MESSAGE(it != grads.end(), pname);
    check_close(p.grad(), it->second, name + ".grad." + pname);
  }
}

}  // namespace

TEST_CASE("encoder classifier: mean pooling, sinusoidal positions, padding mask") {
  EncoderClassifier model(config(20, 2, 40, Activation::gelu),
                          parts(std::make_shared<SinusoidalEncoding>(16), false), 3, Pooling::mean);
  check_classifier("classifier_mean", model);
}

TEST_CASE("encoder classifier: CLS pooling, learned positions, ReLU, padding mask") {
  EncoderClassifier model(config(20, 4, 64, Activation::relu),
                          parts(std::make_shared<LearnedEncoding>(16, 16), false), 5, Pooling::cls);
  check_classifier("classifier_cls", model);
}

TEST_CASE("causal LM: RoPE, tied embeddings") {
  CausalLM model(config(23, 4, 64, Activation::gelu), parts(nullptr, true), true);
  check_lm("lm_rope_tied", model);
}

TEST_CASE("causal LM: learned positions, untied head, ReLU") {
  CausalLM model(config(23, 2, 24, Activation::relu),
                 parts(std::make_shared<LearnedEncoding>(16, 16), false), false);
  check_lm("lm_learned", model);
}
