// Optimisers against PyTorch 1.13 (fixture by tests/tools/make_optim_fixtures.py), parameter
// groups, state_dict round trips, gradient clipping and learning-rate schedules.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>

#include <spear.h>

#include "nn/layers.h"
#include "nn/optim.h"

using namespace spear;
using namespace spear::nn;

namespace {

// ---- The PyTorch fixture ----

const SafetensorsFile& fixture() {
  static const SafetensorsFile file =
      load_safetensors(SPEAR_TEST_DATA_DIR "/optim/fixtures.safetensors");
  return file;
}

// Fresh copies of the fixture's initial parameters w (3, 4), b (4), u (2, 3), in f64.
NamedTensors fixture_params() {
  NamedTensors out;
  for (const char* name : {"w", "b", "u"})
    out.emplace_back(name, fixture().at(std::string("init.") + name).clone().requires_grad_());
  return out;
}

// The fixture's groups: {w, u} with `weight_decay`, {b} with none at half the lr.
std::vector<ParamGroup> fixture_groups(const NamedTensors& p, double weight_decay) {
  return {ParamGroup{{p[0], p[2]}, weight_decay, 1.0}, ParamGroup{{p[1]}, 0.0, 0.5}};
}

// Largest |got - want| / max(1, |want|) over the elements.
double max_rel_diff(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i)
    worst = std::max(worst, std::fabs(g[i] - w[i]) / std::max(1.0, std::fabs(w[i])));
  return worst;
}

// Replays the fixture's five steps of `run` and returns the largest difference from PyTorch over
// every parameter after every step and every state tensor at the end.
double replay(const std::string& run, Optimizer& opt, const NamedTensors& params,
              const std::function<double(int)>& lr_at_step = nullptr) {
  double worst = 0;
  for (int k = 1; k <= 5; ++k) {
    if (lr_at_step) opt.set_lr(lr_at_step(k));
    for (auto [name, p] : params) p.set_grad(fixture().at(str_cat("grad.", k, ".", name)));
    opt.step();
    for (const auto& [name, p] : params)
      worst = std::max(worst, max_rel_diff(p, fixture().at(str_cat(run, ".step", k, ".", name))));
  }
  size_t expected_state = 0;
  for (const auto& [key, t] : fixture().tensors)
    if (key.rfind(run + ".state.", 0) == 0) ++expected_state;
  NamedTensors state = opt.state_dict();
  CHECK(state.size() == expected_state + 1);  // + "step"
  for (const auto& [key, t] : state)
    if (key != "step") worst = std::max(worst, max_rel_diff(t, fixture().at(run + "." + key)));
  return worst;
}

// f64 steps follow PyTorch's formulas in PyTorch's order; what remains is rounding of a few ulps.
constexpr double kTorchTolerance = 1e-12;

// ---- Helpers for the other tests ----

// Gradients that depend only on the step and the parameter's position, not on any state.
void set_grads(const NamedTensors& params, int step) {
  Generator gen(1000 + static_cast<uint64_t>(step));
  for (auto [name, p] : params) p.set_grad(randn(p.shape(), p.dtype(), &gen));
}

NamedTensors small_params(DType dtype) {
  Generator gen(7);
  return {{"layer.weight", randn({3, 4}, dtype, &gen).requires_grad_()},
          {"layer.bias", randn({4}, dtype, &gen).requires_grad_()}};
}

NamedTensors copy_params(const NamedTensors& params) {
  NamedTensors out;
  for (const auto& [name, p] : params) out.emplace_back(name, p.clone().detach().requires_grad_());
  return out;
}

template <typename T>
bool same_bits(const Tensor& a, const Tensor& b) {
  std::vector<T> x = a.to_vector<T>(), y = b.to_vector<T>();
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  switch (a.dtype()) {
    case f32:
      return same_bits<float>(a, b);
    case f64:
      return same_bits<double>(a, b);
    default:
      return same_bits<int64_t>(a, b);
  }
}

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(const NamedTensors&)>;

std::unique_ptr<Optimizer> make_adamw(const NamedTensors& p) {
  return std::make_unique<AdamW>(std::vector<ParamGroup>{{p, 0.1, 1.0}}, AdamOptions{0.01});
}
std::unique_ptr<Optimizer> make_nesterov(const NamedTensors& p) {
  return std::make_unique<SGD>(std::vector<ParamGroup>{{p, 0.01, 1.0}},
                               SGDOptions{0.05, 0.9, 0.0, true});
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() / str_cat("spear_optim_", getpid());
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// ---- Against PyTorch ----

TEST_CASE("SGD with momentum, nesterov, dampening and weight decay matches PyTorch") {
  SUBCASE("momentum 0.9, weight decay 0.01") {
    NamedTensors p = fixture_params();
    SGD opt(fixture_groups(p, 0.01), {0.1, 0.9});
    CHECK(replay("sgd", opt, p) <= kTorchTolerance);
  }
  SUBCASE("nesterov") {
    NamedTensors p = fixture_params();
    SGD opt(fixture_groups(p, 0.01), {0.1, 0.9, 0.0, true});
    CHECK(replay("sgd_nesterov", opt, p) <= kTorchTolerance);
  }
  SUBCASE("dampening: the first step's buffer is the gradient itself") {
    NamedTensors p = fixture_params();
    SGD opt(fixture_groups(p, 0.0), {0.1, 0.9, 0.1});
    CHECK(replay("sgd_dampening", opt, p) <= kTorchTolerance);
  }
}

TEST_CASE("Adam (L2 weight decay) and AdamW (decoupled, lr changed every step) match PyTorch") {
  SUBCASE("Adam") {
    NamedTensors p = fixture_params();
    Adam opt(fixture_groups(p, 0.1), {0.01});
    CHECK(replay("adam", opt, p) <= kTorchTolerance);
  }
  SUBCASE("AdamW") {
    NamedTensors p = fixture_params();
    AdamW opt(fixture_groups(p, 0.01), {0.01});
    CHECK(replay("adamw", opt, p, [](int k) { return 0.01 * k / 5; }) <= kTorchTolerance);
  }
}

// ---- Groups and bookkeeping ----

namespace {
struct Tiny : Module {
  std::shared_ptr<Linear> fc;
  std::shared_ptr<LayerNorm> norm;
  Tensor frozen;
  Tiny() : Module("Tiny") {
    fc = register_module("fc", std::make_shared<Linear>(4, 3));
    norm = register_module("norm", std::make_shared<LayerNorm>(3));
    frozen = register_parameter("frozen", ones({2, 2}), /*requires_grad=*/false);
  }
};

std::vector<std::string> names(const ParamGroup& g) {
  std::vector<std::string> out;
  for (const auto& [name, t] : g.params) out.push_back(name);
  return out;
}
}  // namespace

TEST_CASE("param_groups puts 2+-d weights in the decayed group and skips frozen parameters") {
  Tiny model;
  std::vector<ParamGroup> groups = param_groups(model, 0.1);
  REQUIRE(groups.size() == 2);
  CHECK(names(groups[0]) == std::vector<std::string>{"fc.weight"});
  CHECK(groups[0].weight_decay == 0.1);
  CHECK(names(groups[1]) == std::vector<std::string>{"fc.bias", "norm.weight", "norm.bias"});
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(groups[0].params[0].second.is_same(model.fc->weight));  // the module's own tensors
  CHECK(groups[0].lr_scale == 1.0);
  CHECK(groups[1].lr_scale == 1.0);
}

TEST_CASE("step skips parameters without a gradient, and zero_grad drops the gradients") {
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype);
    NamedTensors p = small_params(dtype);
    Tensor bias_before = p[1].second.clone();
    const uint64_t weight_version = p[0].second.storage()->version();
    const uint64_t bias_version = p[1].second.storage()->version();
    AdamW opt({{p, 0.0, 1.0}});
    p[0].second.set_grad(ones({3, 4}, dtype));
    opt.step();
    CHECK(opt.steps() == 1);
    CHECK(same_bits(p[1].second, bias_before));
    CHECK(p[0].second.storage()->version() > weight_version);  // autograd sees the write
    CHECK(p[1].second.storage()->version() == bias_version);
    std::vector<std::string> keys;
    for (const auto& [key, t] : opt.state_dict()) keys.push_back(key);
    CHECK(keys == std::vector<std::string>{"step", "state.layer.weight.exp_avg",
                                           "state.layer.weight.exp_avg_sq"});
    CHECK(opt.state_dict()[1].second.dtype() == dtype);

    opt.zero_grad();
    CHECK_FALSE(p[0].second.grad().defined());
  }
}

TEST_CASE("SGD without momentum keeps no state, and its update is p -= lr * (g + wd * p)") {
  Tensor w = tensor(std::vector<double>{1.0, -2.0}).requires_grad_();
  SGD opt({{{{"w", w}}, 0.5, 2.0}}, {0.1});
  w.set_grad(tensor(std::vector<double>{0.25, 1.0}));
  opt.step();
  // lr = 0.1 * lr_scale 2 = 0.2; d = g + 0.5 p = [0.75, 0]
  std::vector<double> got = w.to_vector<double>();
  CHECK(got[0] == doctest::Approx(1.0 - 0.2 * 0.75).epsilon(1e-15));
  CHECK(got[1] == -2.0);
  CHECK(opt.state_dict().size() == 1);
}

TEST_CASE("bad parameters and options are rejected with messages naming them") {
  Tensor a = zeros({2}).requires_grad_(), b = zeros({2}).requires_grad_();
  CHECK(error_of([&] {
          SGD({{{{"x", a}}}, {{{"x", b}}}});
        }).find("'x' appears more than once") != std::string::npos);
  CHECK_THROWS_AS(SGD({{{{"x", a}}}}, {0.1, 0.0, 0.0, true}), ConfigError);
  CHECK_THROWS_AS(Adam({{{{"x", a}}}}, {0.1, 1.0}), ConfigError);
  CHECK_THROWS_AS(SGD({{{{"x", a}}, -1.0}}), ConfigError);

  // A non-contiguous parameter cannot be updated in place element by element.
  Tensor t = zeros({3, 2}).transpose(0, 1);
  t.set_grad(zeros({2, 3}));
  SGD opt({{{{"t", t}}}});
  std::string message = error_of([&] { opt.step(); });
  CHECK(message.find("SGD: parameter 't'") != std::string::npos);
  CHECK(message.find("not contiguous") != std::string::npos);
}

// ---- State ----

TEST_CASE("state_dict: save, load into a fresh optimiser and continue, bit for bit") {
  for (const MakeOptimizer& make : {MakeOptimizer(make_adamw), MakeOptimizer(make_nesterov)})
    for (DType dtype : {f32, f64}) {
      CAPTURE(dtype);
      // Six steps straight.
      NamedTensors straight = small_params(dtype);
      std::unique_ptr<Optimizer> a = make(straight);
      for (int s = 0; s < 6; ++s) {
        set_grads(straight, s);
        a->step();
      }
      // Three steps, a checkpoint through a file, three more in a new optimiser.
      NamedTensors first = small_params(dtype);
      std::unique_ptr<Optimizer> b = make(first);
      for (int s = 0; s < 3; ++s) {
        set_grads(first, s);
        b->step();
      }
      TempDir dir;
      const std::string path = (dir.path / "optim.safetensors").string();
      save_safetensors(path, b->state_dict());
      NamedTensors resumed = copy_params(first);
      std::unique_ptr<Optimizer> c = make(resumed);
      c->load_state_dict(load_safetensors(path).tensors);
      CHECK(c->steps() == 3);
      for (int s = 3; s < 6; ++s) {
        set_grads(resumed, s);
        c->step();
      }
      for (size_t i = 0; i < straight.size(); ++i)
        CHECK(same_bits(resumed[i].second, straight[i].second));
      NamedTensors sa = a->state_dict(), sc = c->state_dict();
      REQUIRE(sa.size() == sc.size());
      for (size_t i = 0; i < sa.size(); ++i) {
        CHECK(sa[i].first == sc[i].first);
        CHECK(same_bits(sa[i].second, sc[i].second));
      }
      CHECK(sa[0].first == "step");
      CHECK(sa[0].second.dtype() == i64);
      CHECK(sa[0].second.dim() == 0);
      CHECK(sa[0].second.item<int64_t>() == 6);
    }
}

TEST_CASE("load_state_dict copies into the parameters' dtype and owns its tensors") {
  NamedTensors p = small_params(f32);
  Tensor m = full({4}, 0.5, f64);
  AdamW opt({{p, 0.0, 1.0}});
  opt.load_state_dict({{"step", scalar_tensor(2, i64)}, {"state.layer.bias.exp_avg", m}});
  m.fill_(9.0);
  NamedTensors state = opt.state_dict();
  REQUIRE(state.size() == 2);
  CHECK(state[1].second.dtype() == f32);
  CHECK(state[1].second.to_vector<float>() == std::vector<float>(4, 0.5f));
  CHECK(opt.steps() == 2);
}

TEST_CASE("load_state_dict reports every problem at once and changes nothing") {
  NamedTensors p = small_params(f64);
  AdamW opt({{p, 0.0, 1.0}});
  set_grads(p, 0);
  opt.step();
  NamedTensors before = opt.state_dict();

  NamedTensors bad{{"step", scalar_tensor(5, i64)},
                   {"state.layer.gone.exp_avg", zeros({4}, f64)},
                   {"state.layer.weight.exp_avg", zeros({2}, f64)},
                   {"bogus", zeros({1}, f64)}};
  std::string message = error_of([&] { opt.load_state_dict(bad); });
  CHECK(message.find("load_state_dict") != std::string::npos);
  CHECK(message.find("unknown parameters: state.layer.gone.exp_avg;") != std::string::npos);
  CHECK(message.find("state.layer.weight.exp_avg (checkpoint [2], parameter [3, 4])") !=
        std::string::npos);
  CHECK(message.find("bogus") != std::string::npos);
  CHECK_THROWS_AS(opt.load_state_dict(bad), Error);

  CHECK(error_of([&] { opt.load_state_dict({}); }).find("missing key: step") != std::string::npos);

  CHECK(opt.steps() == 1);
  NamedTensors after = opt.state_dict();
  REQUIRE(after.size() == before.size());
  for (size_t i = 1; i < after.size(); ++i) CHECK(same_bits(after[i].second, before[i].second));
}

// ---- Threads ----

TEST_CASE("an update of a large parameter is bit-identical on 1 and 2 threads") {
  const int threads = get_num_threads();
  for (const MakeOptimizer& make : {MakeOptimizer(make_adamw), MakeOptimizer(make_nesterov)})
    for (DType dtype : {f32, f64}) {
      CAPTURE(dtype);
      std::vector<Tensor> results;
      for (int n : {1, 2}) {
        set_num_threads(n);
        Generator gen(3);
        NamedTensors p{{"big", randn({150001}, dtype, &gen).requires_grad_()}};
        std::unique_ptr<Optimizer> opt = make(p);
        for (int s = 0; s < 2; ++s) {
          set_grads(p, s);
          opt->step();
        }
        results.push_back(p[0].second);
      }
      CHECK(same_bits(results[0], results[1]));
    }
  set_num_threads(threads);
}

// ---- Gradient clipping ----

TEST_CASE("clip_grad_norm_ returns the total norm and scales by max_norm / (norm + 1e-6)") {
  SUBCASE("f64") {
    Tensor a = zeros({2}, f64).requires_grad_(), b = zeros({1}, f64).requires_grad_();
    Tensor no_grad = zeros({3}, f64).requires_grad_();
    a.set_grad(tensor(std::vector<double>{3, 4}));
    b.set_grad(tensor(std::vector<double>{12}));
    CHECK(clip_grad_norm_({a, b, no_grad}, 20.0) == 13.0);  // below max_norm: unchanged
    CHECK(a.grad().to_vector<double>() == std::vector<double>{3, 4});
    const double coef = 1.0 / (13.0 + 1e-6);
    CHECK(clip_grad_norm_({a, b, no_grad}, 1.0) == 13.0);
    CHECK(a.grad().to_vector<double>() == std::vector<double>{3 * coef, 4 * coef});
    CHECK(b.grad().to_vector<double>() == std::vector<double>{12 * coef});
    CHECK_FALSE(no_grad.grad().defined());
  }
  SUBCASE("f32, and PyTorch's 1e-6 makes a norm equal to max_norm scale slightly") {
    Tensor a = zeros({3}).requires_grad_();
    a.set_grad(tensor({3.0f, 4.0f, 12.0f}));
    CHECK(clip_grad_norm_({a}, 13.0) == 13.0);
    const float coef = static_cast<float>(13.0 / (13.0 + 1e-6));
    CHECK(a.grad().to_vector<float>() == std::vector<float>{3 * coef, 4 * coef, 12 * coef});
  }
  SUBCASE("strided and expanded gradients are replaced by scaled contiguous copies") {
    Tensor p = zeros({2, 3}).requires_grad_(), q = zeros({4}).requires_grad_();
    p.set_grad(tensor({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}, {3, 2}).transpose(0, 1));
    q.set_grad(full({1}, 2.0).expand({4}));
    const double norm = std::sqrt(91.0 + 16.0);
    CHECK(clip_grad_norm_({p, q}, 1.0) == doctest::Approx(norm).epsilon(1e-15));
    const float coef = static_cast<float>(1.0 / (norm + 1e-6));
    CHECK(p.grad().is_contiguous());
    CHECK(p.grad().to_vector<float>() ==
          std::vector<float>{1 * coef, 3 * coef, 5 * coef, 2 * coef, 4 * coef, 6 * coef});
    CHECK(q.grad().to_vector<float>() == std::vector<float>(4, 2 * coef));
  }
  SUBCASE("a non-finite norm is returned and the gradients are left alone") {
    Tensor a = zeros({2}, f64).requires_grad_();
    a.set_grad(tensor(std::vector<double>{std::numeric_limits<double>::infinity(), 1.0}));
    CHECK(std::isinf(clip_grad_norm_({a}, 1.0)));
    CHECK(a.grad().to_vector<double>()[1] == 1.0);
    a.set_grad(tensor(std::vector<double>{std::nan(""), 1.0}));
    CHECK(std::isnan(clip_grad_norm_({a}, 1.0)));
    CHECK(a.grad().to_vector<double>()[1] == 1.0);
  }
  SUBCASE("the norm of a large gradient is bit-identical on 1 and 2 threads") {
    const int threads = get_num_threads();
    std::vector<double> norms;
    std::vector<Tensor> grads;
    for (int n : {1, 2}) {
      set_num_threads(n);
      Generator gen(5);
      Tensor p = zeros({200003}).requires_grad_();
      p.set_grad(randn({200003}, f32, &gen));
      norms.push_back(clip_grad_norm_({p}, 1.0));
      grads.push_back(p.grad());
    }
    set_num_threads(threads);
    CHECK(std::memcmp(&norms[0], &norms[1], sizeof(double)) == 0);
    CHECK(norms[0] == doctest::Approx(std::sqrt(200003.0)).epsilon(0.01));  // E[g^2] = 1
    CHECK(same_bits(grads[0], grads[1]));
  }
  CHECK_THROWS_AS(clip_grad_norm_({}, -1.0), Error);
}

// ---- Schedules ----

TEST_CASE("lr_at: linear warmup, then constant, cosine, linear or inverse square root") {
  // Warmup: lr * (step + 1) / warmup.
  Schedule constant{"constant", 0.5, 5};
  CHECK(lr_at(constant, 0) == doctest::Approx(0.1).epsilon(1e-15));
  CHECK(lr_at(constant, 4) == 0.5);
  CHECK(lr_at(constant, 1000) == 0.5);
  CHECK(lr_at(Schedule{"constant", 0.5}, 0) == 0.5);

  Schedule cosine{"cosine", 1.0, 4, 14, 0.1};
  CHECK(lr_at(cosine, 0) == 0.25);
  CHECK(lr_at(cosine, 3) == 1.0);
  CHECK(lr_at(cosine, 4) == 1.0);
  // 0.1 + 0.9 * (1 + cos(0.2 pi)) / 2, from python's math module
  CHECK(lr_at(cosine, 6) == doctest::Approx(0.9140576474687263).epsilon(1e-15));
  CHECK(lr_at(cosine, 9) == doctest::Approx(0.55).epsilon(1e-15));
  CHECK(lr_at(cosine, 14) == doctest::Approx(0.1).epsilon(1e-15));
  CHECK(lr_at(cosine, 100) == doctest::Approx(0.1).epsilon(1e-15));

  Schedule linear{"linear", 2.0, 2, 12, 0.0};
  CHECK(lr_at(linear, 0) == 1.0);
  CHECK(lr_at(linear, 2) == 2.0);
  CHECK(lr_at(linear, 7) == 1.0);
  CHECK(lr_at(linear, 12) == 0.0);
  CHECK(lr_at(linear, 50) == 0.0);
  CHECK(lr_at(Schedule{"linear", 2.0, 3, 3, 0.5}, 3) == 0.5);  // no decay phase: straight to min

  Schedule inv{"inverse_sqrt", 1.0, 4};
  CHECK(lr_at(inv, 3) == 1.0);
  CHECK(lr_at(inv, 4) == doctest::Approx(0.8944271909999159).epsilon(1e-15));  // sqrt(4/5)
  CHECK(lr_at(inv, 15) == 0.5);
  CHECK(lr_at(Schedule{"inverse_sqrt", 1.0}, 0) == 1.0);
  CHECK(lr_at(Schedule{"inverse_sqrt", 1.0}, 3) == 0.5);
}

TEST_CASE("lr_at rejects unknown kinds and impossible settings with a ConfigError") {
  std::string message = error_of([] { lr_at(Schedule{"cosin"}, 0); });
  CHECK(message.find("'cosin'") != std::string::npos);
  CHECK(message.find("constant, cosine, linear or inverse_sqrt") != std::string::npos);
  CHECK_THROWS_AS(lr_at(Schedule{"cosin"}, 0), ConfigError);
  CHECK_THROWS_AS(lr_at(Schedule{"cosine", 1.0, 10, 5}, 0), ConfigError);
  CHECK(error_of([] {
          lr_at(Schedule{"linear", 1.0, 10, 5}, 0);
        }).find("total >= warmup") != std::string::npos);
  CHECK_THROWS_AS(lr_at(Schedule{"constant"}, -1), ConfigError);
  CHECK(lr_at(Schedule{"constant", 1.0, 10, 0}, 20) == 1.0);  // total is unused without decay
}
