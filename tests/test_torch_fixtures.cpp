// Composite functions rebuilt from spear's ops must match PyTorch's values and gradients to 1e-10
// in f64. The fixture is made by tests/tools/make_autograd_fixtures.py; the three functions below
// mirror the ones there line by line.
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include <spear.h>

using namespace spear;

namespace {

struct Fixture {
  SafetensorsFile file = load_safetensors(SPEAR_TEST_DATA_DIR "/autograd/fixtures.safetensors");
  Tensor get(const std::string& name) const { return file.at(name); }
  // Fresh leaves for the inputs of one function, by short name.
  std::map<std::string, Tensor> leaves(const std::string& fn,
                                       std::vector<std::string> names) const {
    std::map<std::string, Tensor> out;
    for (const std::string& n : names) out[n] = get(fn + ".input." + n).clone().requires_grad_();
    return out;
  }
};

void check_close(const Tensor& got, const Tensor& want, const std::string& what) {
  CAPTURE(what);
  REQUIRE(got.defined());
  REQUIRE(got.shape() == want.shape());
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::fabs(g[i] - w[i]));
  CHECK(worst <= 1e-10);
}

void check_function(const Fixture& fx, const std::string& fn, const Tensor& loss,
                    std::map<std::string, Tensor>& in) {
  check_close(loss, fx.get(fn + ".loss"), fn + ".loss");
  loss.backward();
  for (auto& [name, t] : in)
    check_close(t.grad(), fx.get(fn + ".grad." + name), fn + ".grad." + name);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  return matmul(x, w.transpose(0, 1)) + b;
}

}  // namespace

TEST_CASE("MLP with layer norm, GELU and cross-entropy matches PyTorch") {
  Fixture fx;
  auto in = fx.leaves("mlp", {"x", "w1", "b1", "ln_w", "ln_b", "w2", "b2"});
  Tensor h = gelu(layer_norm(linear(in["x"], in["w1"], in["b1"]), in["ln_w"], in["ln_b"], 1e-5));
  Tensor loss =
      cross_entropy(linear(h, in["w2"], in["b2"]), fx.get("mlp.const.targets"), -100, 0.1);
  check_function(fx, "mlp", loss, in);
}

TEST_CASE("causal softmax attention block matches PyTorch") {
  Fixture fx;
  auto in = fx.leaves("attention", {"x", "wq", "wk", "wv"});
  auto heads = [](const Tensor& t) { return t.reshape({2, 5, 2, 4}).transpose(1, 2); };
  Tensor q = heads(matmul(in["x"], in["wq"].transpose(0, 1)));
  Tensor k = heads(matmul(in["x"], in["wk"].transpose(0, 1)));
  Tensor v = heads(matmul(in["x"], in["wv"].transpose(0, 1)));
  Tensor scores = matmul(q, k.transpose(-1, -2)) / 2.0;
  Tensor rows = arange(5).reshape({5, 1}), cols = arange(5).reshape({1, 5});
  Tensor att = softmax(masked_fill(scores, cols > rows, -1e9), -1);
  Tensor out = matmul(att, v).transpose(1, 2).reshape({2, 5, 8});
  check_function(fx, "attention", (out * out).mean(), in);
}

TEST_CASE("cumsum-based causal linear attention matches PyTorch") {
  Fixture fx;
  auto in = fx.leaves("causal", {"q", "k", "v"});
  Tensor phi_q = elu(in["q"]) + 1.0, phi_k = elu(in["k"]) + 1.0;
  Tensor kv = cumsum(phi_k.unsqueeze(-1) * in["v"].unsqueeze(-2), 1);  // (B, N, D, M)
  Tensor num = sum(phi_q.unsqueeze(-1) * kv, {-2});
  Tensor den = sum(phi_q * cumsum(phi_k, 1), {-1}, true);
  Tensor loss = (num / den * fx.get("causal.const.w")).sum();
  check_function(fx, "causal", loss, in);
}
