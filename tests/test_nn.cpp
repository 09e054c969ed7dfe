// Module bookkeeping (names, state_dict, strict loading, modes, dtype), initialisation
// statistics and the basic layers.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include <spear.h>

#include "nn/init.h"
#include "nn/layers.h"

using namespace spear;
using namespace spear::nn;

namespace {

// A two-level model: its names must come out dotted, in registration order.
struct Tiny : Module {
  std::shared_ptr<Linear> fc;
  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<ModuleList> layers;
  Tensor running;
  Tiny() : Module("Tiny") {
    fc = register_module("fc", std::make_shared<Linear>(3, 4));
    norm = register_module("norm", std::make_shared<LayerNorm>(4));
    layers = register_module("layers", std::make_shared<ModuleList>());
    layers->push_back(std::make_shared<Linear>(4, 2, false));
    running = register_buffer("running", zeros({2}));
  }
};

std::vector<std::string> names(const NamedTensors& ts) {
  std::vector<std::string> out;
  for (const auto& [name, t] : ts) out.push_back(name);
  return out;
}

}  // namespace

TEST_CASE("parameters and state_dict have dotted names in registration order") {
  Tiny m;
  CHECK(names(m.named_parameters()) == std::vector<std::string>{"fc.weight", "fc.bias",
                                                                "norm.weight", "norm.bias",
                                                                "layers.0.weight"});
  CHECK(names(m.state_dict()) == std::vector<std::string>{"running", "fc.weight", "fc.bias",
                                                          "norm.weight", "norm.bias",
                                                          "layers.0.weight"});
  CHECK(m.num_parameters() == 3 * 4 + 4 + 4 + 4 + 4 * 2);
  for (const Tensor& p : m.parameters()) CHECK(p.requires_grad());
  CHECK(!m.running.requires_grad());
  // The member and the registered entry are one tensor.
  CHECK(m.named_parameters()[0].second.is_same(m.fc->weight));
  std::vector<std::string> modules;
  for (const auto& [name, mod] : m.named_modules())
    modules.push_back(name + ":" + mod->type_name());
  CHECK(modules == std::vector<std::string>{"fc:Linear", "norm:LayerNorm", "layers:ModuleList",
                                            "layers.0:Linear"});
}

TEST_CASE("registration rejects bad and duplicate names") {
  Module m("M");
  m.register_parameter("w", zeros({2}));
  CHECK_THROWS_AS(m.register_parameter("w", zeros({2})), Error);
  CHECK_THROWS_AS(m.register_buffer("a.b", zeros({2})), Error);
  CHECK_THROWS_AS(m.register_parameter("", zeros({2})), Error);
  Tensor x = zeros({2});
  x.requires_grad_();
  CHECK_THROWS_AS(m.register_parameter("computed", x * 2.0), Error);
}

TEST_CASE("load_state_dict copies values and reports every problem at once") {
  Tiny a, b;
  b.load_state_dict(a.state_dict());
  for (size_t i = 0; i < a.parameters().size(); ++i)
    CHECK(b.parameters()[i].to_vector<float>() == a.parameters()[i].to_vector<float>());
  // The handles are unchanged: the copy went into the existing tensors.
  CHECK(b.named_parameters()[0].second.is_same(b.fc->weight));

  NamedTensors bad = a.state_dict();
  bad.erase(bad.begin() + 1);                    // drop fc.weight
  bad.emplace_back("extra.weight", zeros({1}));  // unexpected
  bad[1].second = zeros({5});                    // fc.bias with the wrong shape
  Tensor before = b.fc->bias.clone();
  try {
    b.load_state_dict(bad);
    FAIL("expected an Error");
  } catch (const Error& e) {
    std::string msg = e.what();
    CHECK(msg.find("missing keys: fc.weight;") != std::string::npos);
    CHECK(msg.find("unexpected keys: extra.weight;") != std::string::npos);
    CHECK(msg.find("shape mismatches: fc.bias (checkpoint [5], model [4]);") != std::string::npos);
  }
  CHECK(b.fc->bias.to_vector<float>() == before.to_vector<float>());  // nothing changed
  // Non-strict loading ignores missing and unexpected keys, never a shape mismatch.
  NamedTensors partial = {{"norm.weight", full({4}, 2.0)}, {"other", zeros({1})}};
  b.load_state_dict(partial, false);
  CHECK(b.norm->weight.to_vector<float>() == std::vector<float>(4, 2.0f));
  CHECK_THROWS_AS(b.load_state_dict({{"norm.weight", zeros({3})}}, false), Error);
}

TEST_CASE("state_dict round-trips through safetensors") {
  Tiny a, b;
  std::string path = "test_nn_state.safetensors";
  save_safetensors(path, a.state_dict());
  b.load_state_dict(load_safetensors(path).tensors);
  std::remove(path.c_str());
  for (size_t i = 0; i < a.state_dict().size(); ++i)
    CHECK(b.state_dict()[i].second.to_vector<double>() ==
          a.state_dict()[i].second.to_vector<double>());
}

TEST_CASE("train/eval, zero_grad and to(dtype) reach every submodule") {
  Tiny m;
  m.eval();
  CHECK(!m.is_training());
  CHECK(!m.layers->at<Linear>(0).is_training());
  m.train();
  CHECK(m.fc->is_training());
  Tensor x = randn({2, 3});
  m.layers->at<Linear>(0).forward(m.norm->forward(m.fc->forward(x))).sum().backward();
  CHECK(m.fc->weight.grad().defined());
  m.zero_grad();
  CHECK(!m.fc->weight.grad().defined());
  Tensor handle = m.fc->weight;
  m.to(f64);
  CHECK(handle.dtype() == f64);  // converted in place: every handle sees it
  CHECK(m.running.dtype() == f64);
  CHECK(m.fc->forward(randn({2, 3}, f64)).dtype() == f64);
}

TEST_CASE("pretty_print shows the tree with settings and parameter counts") {
  Tiny m;
  std::ostringstream os;
  os << m;
  CHECK(os.str() ==
        "Tiny()  # 32 parameters\n"
        "  (fc): Linear(in_features=3, out_features=4, bias=true)  # 16 parameters\n"
        "  (norm): LayerNorm(4, eps=1e-05)  # 8 parameters\n"
        "  (layers): ModuleList()  # 8 parameters\n"
        "    (0): Linear(in_features=4, out_features=2, bias=false)  # 8 parameters\n");
}

TEST_CASE("init schemes have the variance their formulas promise") {
  // For n draws, the sample variance has relative standard error sqrt(2 / n) (normal) or
  // sqrt(4 / (5 n)) (uniform); 5 standard errors never fail by chance.
  Generator gen(7);
  Tensor w = empty({256, 512});
  const double n = static_cast<double>(w.numel());
  auto var_of = [](const Tensor& t) { return spear::var(t.to(f64)).item<double>(); };
  auto mean_of = [](const Tensor& t) { return t.to(f64).mean().item<double>(); };
  init::kaiming_uniform_(w, std::sqrt(5.0), &gen);
  double want = 1.0 / (3.0 * 512);  // U(-b, b) with b = 1/sqrt(fan_in) has variance b^2 / 3
  CHECK(std::fabs(var_of(w) / want - 1) < 5 * std::sqrt(4 / (5 * n)));
  CHECK(w.abs().max().item<float>() <= 1.0 / std::sqrt(512.0));
  init::xavier_normal_(w, 1.0, &gen);
  want = 2.0 / (256 + 512);
  CHECK(std::fabs(var_of(w) / want - 1) < 5 * std::sqrt(2 / n));
  CHECK(std::fabs(mean_of(w)) < 5 * std::sqrt(want / n));
  init::xavier_uniform_(w, 2.0, &gen);
  want = 4.0 * 6.0 / (256 + 512) / 3.0;
  CHECK(std::fabs(var_of(w) / want - 1) < 5 * std::sqrt(4 / (5 * n)));
  init::kaiming_normal_(w, 0.0, &gen);
  want = 2.0 / 512;
  CHECK(std::fabs(var_of(w) / want - 1) < 5 * std::sqrt(2 / n));
  CHECK_THROWS_AS(init::fan_in(zeros({3})), ShapeError);
}

TEST_CASE("Linear, Embedding, LayerNorm, Dropout and FeedForward compute what they say") {
  Linear fc(3, 2);
  fc.weight.copy_(tensor({1, 2, 3, 4, 5, 6}, {2, 3}));
  fc.bias.copy_(tensor({0.5f, -1}));
  CHECK(fc.forward(tensor({1, 0, -1}, {1, 3})).to_vector<float>() == std::vector<float>{-1.5f, -3});
  try {
    fc.forward(zeros({4, 11}));
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()) ==
          "linear: input last dim 11 != in_features 3 (input [4, 11], weight [2, 3])");
  }
  Embedding emb(5, 2);
  Tensor ids = tensor(std::vector<int64_t>{4, 0, 4}, {1, 3});
  Tensor e = emb.forward(ids);
  CHECK(e.shape() == Shape{1, 3, 2});
  CHECK(e.to_vector<float>()[0] == emb.weight.to_vector<float>()[8]);
  LayerNorm ln(4);
  Tensor y = ln.forward(randn({3, 4}));
  CHECK(std::fabs(y.mean({1}).abs().max().item<float>()) < 1e-6);
  Dropout drop(0.5);
  Tensor ones4 = ones({1000});
  CHECK(drop.forward(ones4).sum().item<float>() != 1000.0f);  // training: some zeroed
  drop.eval();
  CHECK(drop.forward(ones4).is_same(ones4));
  CHECK_THROWS_AS(Dropout(1.0), ConfigError);
  FeedForward ff(4, 8, Activation::relu);
  CHECK(ff.forward(randn({2, 5, 4})).shape() == Shape{2, 5, 4});
  CHECK(names(ff.named_parameters()) ==
        std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"});
  CHECK(mse_loss(tensor({1, 2}), tensor({3, 2})).item<float>() == 2.0f);
  CHECK_THROWS_AS(activation_from_name("swish"), ConfigError);
}

TEST_CASE("a Linear layer's gradients pass gradcheck") {
  Linear fc(4, 3);
  fc.to(f64);
  Tensor x = randn({2, 4}, f64).requires_grad_();
  auto result = gradcheck(
      [&](const std::vector<Tensor>& in) { return gelu(fc.forward(in[0])) * fc.forward(in[0]); },
      {x, fc.weight, fc.bias});
  CHECK_MESSAGE(result.ok, result.report);
}
