// SGD, Adam and AdamW, gradient clipping and learning-rate schedules, following PyTorch 1.13
// (torch.optim.SGD / Adam / AdamW, torch.nn.utils.clip_grad_norm_) formula for formula.
//
// Each update is one fused loop over a parameter's elements: read the gradient and the state,
// write the new state and the new weight. The loop writes through raw pointers, which autograd
// never records, so no NoGradGuard is needed; it bumps the storage version instead, so a graph
// that saved the old weights refuses to back-propagate through the new ones. Elements are
// independent, so the split across threads never changes the result.
//
// One difference from PyTorch: the step count used for Adam's bias correction is the
// optimiser's (steps()), not a count per parameter. They agree unless a parameter goes without
// a gradient for some steps.
#include "nn/optim.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"

namespace spear::nn {
namespace {

std::string state_key(const std::string& param, const std::string& slot) {
  return "state." + param + "." + slot;
}

Tensor* find_entry(NamedTensors& entries, const std::string& key) {
  for (auto& [name, t] : entries)
    if (name == key) return &t;
  return nullptr;
}

// Runs body(i) for every i in [0, n), split across threads when n is large enough.
template <typename Body>
void for_each_element(int64_t n, const Body& body) {
  parallel_for(0, n, grain_for(1), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) body(i);
  });
}

// Calls update(name, param, grad, lr, weight_decay) for every parameter that has a gradient, with
// the gradient contiguous and in the parameter's dtype and the group's lr and weight decay.
template <typename Update>
void for_each_update(const std::vector<ParamGroup>& groups, double lr, const char* op,
                     const Update& update) {
  for (const ParamGroup& group : groups)
    for (const auto& [name, p] : group.params) {
      if (!p.grad().defined()) continue;
      SPEAR_CHECK(p.is_contiguous(), op, ": parameter '", name, "' of shape ", p.shape(),
                  " is not contiguous; the update writes its elements in place");
      Tensor grad = kernels::contiguous(kernels::to_dtype(p.grad(), p.dtype()));
      update(name, p, grad, lr * group.lr_scale, group.weight_decay);
      p.storage()->bump_version();
    }
}

// The sum of squares of g's elements in double, in fixed chunks added in index order, so the
// result does not depend on the thread count. g: contiguous.
double sum_of_squares(const Tensor& g) {
  constexpr int64_t kChunk = 4096;
  const int64_t n = g.numel(), chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  SPEAR_DISPATCH_FLOAT(g.dtype(), "clip_grad_norm_", [&] {
    const scalar_t* x = g.data_ptr<scalar_t>();
    parallel_for(0, chunks, grain_for(kChunk), [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        double s = 0;
        for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i)
          s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
        partial[static_cast<size_t>(c)] = s;
      }
    });
  });
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace

std::vector<ParamGroup> param_groups(const Module& model, double weight_decay) {
  std::vector<ParamGroup> groups(2);
  groups[0].weight_decay = weight_decay;
  for (const auto& [name, p] : model.named_parameters())
    if (p.requires_grad()) groups[p.dim() >= 2 ? 0 : 1].params.emplace_back(name, p);
  return groups;
}

// ---- Optimizer ----

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  std::set<std::string> seen;
  for (const ParamGroup& group : groups_) {
    SPEAR_CHECK_T(ConfigError, group.weight_decay >= 0 && group.lr_scale >= 0,
                  "Optimizer: a group's weight_decay and lr_scale must be >= 0, got ",
                  group.weight_decay, " and ", group.lr_scale);
    for (const auto& [name, p] : group.params) {
      SPEAR_CHECK(p.defined() && p.is_floating_point(), "Optimizer: parameter '", name,
                  "' must be a defined f32 or f64 tensor");
      // The state is keyed by name, so two parameters of one name would share it.
      SPEAR_CHECK(seen.insert(name).second, "Optimizer: parameter name '", name,
                  "' appears more than once");
    }
  }
}

void Optimizer::zero_grad() {
  for (ParamGroup& group : groups_)
    for (auto& [name, p] : group.params) p.zero_grad();
}

Tensor Optimizer::slot(const std::string& name, const std::string& slot, const Tensor& like) {
  const std::string key = state_key(name, slot);
  Tensor* found = find_entry(state_, key);
  if (!found) {
    state_.emplace_back(key, zeros(like.shape(), like.dtype()));
    return state_.back().second;
  }
  SPEAR_CHECK(found->shape() == like.shape(), "Optimizer: state ", key, " has shape ",
              found->shape(), " but the parameter has ", like.shape());
  // The model may have been converted (Module::to) since the state was made.
  if (found->dtype() != like.dtype()) *found = kernels::to_dtype(*found, like.dtype());
  return *found;
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out{{"step", scalar_tensor(static_cast<double>(steps_), i64)}};
  out.insert(out.end(), state_.begin(), state_.end());
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  std::map<std::string, Tensor> params;
  for (const ParamGroup& group : groups_) params.insert(group.params.begin(), group.params.end());

  std::vector<std::string> malformed, unknown, mismatched;
  NamedTensors loaded;
  int64_t steps = 0;
  bool has_step = false;
  const std::string prefix = "state.";
  for (const auto& [key, t] : state) {
    if (key == "step") {
      has_step = true;
      if (t.numel() == 1 && t.item<int64_t>() >= 0)
        steps = t.item<int64_t>();
      else
        malformed.push_back(str_cat("step (must hold one count >= 0, got shape ", t.shape(), ")"));
      continue;
    }
    // "state.<param name>.<slot>": the parameter name may itself contain dots, the slot not.
    const size_t dot = key.rfind('.');
    if (key.compare(0, prefix.size(), prefix) != 0 || dot == std::string::npos ||
        dot <= prefix.size() || dot + 1 == key.size()) {
      malformed.push_back(key);
      continue;
    }
    auto it = params.find(key.substr(prefix.size(), dot - prefix.size()));
    if (it == params.end()) {
      unknown.push_back(key);
    } else if (t.shape() != it->second.shape()) {
      mismatched.push_back(
          str_cat(key, " (checkpoint ", t.shape(), ", parameter ", it->second.shape(), ")"));
    } else {
      // A copy in the parameter's dtype: the optimiser owns its state.
      Tensor copy = Tensor::empty(t.shape(), it->second.dtype());
      copy.copy_(t);
      loaded.emplace_back(key, copy);
    }
  }

  std::ostringstream problems;
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    problems << "\n  " << what << ":";
    for (const std::string& n : names) problems << " " << n << ";";
  };
  if (!has_step) problems << "\n  missing key: step;";
  list("malformed keys (expected step or state.<parameter>.<slot>)", malformed);
  list("unknown parameters", unknown);
  list("shape mismatches", mismatched);
  SPEAR_CHECK(problems.str().empty(),
              "load_state_dict: the optimiser state does not fit its parameters", problems.str());
  state_ = std::move(loaded);
  steps_ = steps;
}

// ---- SGD ----

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options)
    : Optimizer(std::move(groups)), options_(options) {
  SPEAR_CHECK_T(ConfigError, options.lr >= 0 && options.momentum >= 0,
                "SGD: lr and momentum must be >= 0, got ", options.lr, " and ", options.momentum);
  SPEAR_CHECK_T(ConfigError, !options.nesterov || (options.momentum > 0 && options.dampening == 0),
                "SGD: nesterov needs a momentum > 0 and no dampening");
  lr_ = options.lr;
}

// d = g + wd * p;  buf = d on the first step, else momentum * buf + (1 - dampening) * d;
// d = nesterov ? d + momentum * buf : buf;  p -= lr * d.
void SGD::step() {
  ++steps_;
  const SGDOptions o = options_;
  for_each_update(
      groups_, lr_, "SGD",
      [&](const std::string& name, const Tensor& p, const Tensor& grad, double lr, double wd) {
        Tensor buf;
        bool first = false;
        if (o.momentum != 0) {
          first = find_entry(state_, state_key(name, "momentum_buffer")) == nullptr;
          buf = slot(name, "momentum_buffer", p);
        }
        SPEAR_DISPATCH_FLOAT(p.dtype(), "SGD", [&] {
          scalar_t* w = p.data_ptr<scalar_t>();
          const scalar_t* g = grad.data_ptr<scalar_t>();
          scalar_t* b = buf.defined() ? buf.data_ptr<scalar_t>() : nullptr;
          const auto rate = static_cast<scalar_t>(lr), decay = static_cast<scalar_t>(wd);
          const auto mu = static_cast<scalar_t>(o.momentum);
          const auto keep = static_cast<scalar_t>(1 - o.dampening);
          for_each_element(p.numel(), [&](int64_t i) {
            scalar_t d = g[i];
            if (decay != 0) d += decay * w[i];
            if (b) {
              b[i] = first ? d : b[i] * mu + keep * d;
              d = o.nesterov ? d + mu * b[i] : b[i];
            }
            w[i] -= rate * d;
          });
        });
      });
}

// ---- Adam and AdamW ----

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options, bool decoupled)
    : Optimizer(std::move(groups)), options_(options), decoupled_(decoupled) {
  SPEAR_CHECK_T(ConfigError, options.lr >= 0 && options.eps >= 0,
                "Adam: lr and eps must be >= 0, got ", options.lr, " and ", options.eps);
  SPEAR_CHECK_T(ConfigError,
                options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1,
                "Adam: betas must be in [0, 1), got ", options.beta1, " and ", options.beta2);
  lr_ = options.lr;
}

// t = steps();  g += wd * p (Adam)  or  p *= 1 - lr * wd (AdamW);
// m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2;
// p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
void Adam::step() {
  ++steps_;
  const AdamOptions o = options_;
  const double t = static_cast<double>(steps_);
  const double correction1 = 1 - std::pow(o.beta1, t);
  const double correction2_sqrt = std::sqrt(1 - std::pow(o.beta2, t));
  const char* op = decoupled_ ? "AdamW" : "Adam";
  for_each_update(
      groups_, lr_, op,
      [&](const std::string& name, const Tensor& p, const Tensor& grad, double lr, double wd) {
        Tensor exp_avg = slot(name, "exp_avg", p), exp_avg_sq = slot(name, "exp_avg_sq", p);
        SPEAR_DISPATCH_FLOAT(p.dtype(), op, [&] {
          scalar_t* w = p.data_ptr<scalar_t>();
          const scalar_t* g = grad.data_ptr<scalar_t>();
          scalar_t* m = exp_avg.data_ptr<scalar_t>();
          scalar_t* v = exp_avg_sq.data_ptr<scalar_t>();
          const auto l2 = static_cast<scalar_t>(decoupled_ ? 0.0 : wd);
          const auto shrink = static_cast<scalar_t>(decoupled_ ? 1 - lr * wd : 1.0);
          const auto b1 = static_cast<scalar_t>(o.beta1), b2 = static_cast<scalar_t>(o.beta2);
          const auto c1 = static_cast<scalar_t>(1 - o.beta1),
                     c2 = static_cast<scalar_t>(1 - o.beta2);
          const auto step_size = static_cast<scalar_t>(lr / correction1);
          const auto root2 = static_cast<scalar_t>(correction2_sqrt);
          const auto eps = static_cast<scalar_t>(o.eps);
          for_each_element(p.numel(), [&](int64_t i) {
            scalar_t d = g[i];
            if (l2 != 0) d += l2 * w[i];
            w[i] *= shrink;
            m[i] = m[i] * b1 + c1 * d;
            v[i] = v[i] * b2 + c2 * d * d;
            w[i] -= step_size * m[i] / (std::sqrt(v[i]) / root2 + eps);
          });
        });
      });
}

// ---- Gradient clipping ----

// PyTorch's coefficient: grads *= max_norm / (norm + 1e-6) when that is below 1. A non-finite
// norm (an inf or NaN gradient) is returned with the gradients left as they are, so the caller
// can log it and skip the step.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  SPEAR_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  std::vector<Tensor> grads;
  for (Tensor p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    // A gradient set by hand may be a strided view (an expanded one even aliases its elements);
    // a contiguous copy of it can be scaled in place.
    if (!g.is_contiguous()) {
      g = kernels::clone(g);
      p.set_grad(g);
    }
    grads.push_back(g);
  }
  double sum_sq = 0;
  for (const Tensor& g : grads) sum_sq += sum_of_squares(g);
  const double norm = std::sqrt(sum_sq);
  const double coef = max_norm / (norm + 1e-6);
  if (!std::isfinite(norm) || coef >= 1) return norm;
  for (const Tensor& g : grads) {
    SPEAR_DISPATCH_FLOAT(g.dtype(), "clip_grad_norm_", [&] {
      scalar_t* x = g.data_ptr<scalar_t>();
      const auto c = static_cast<scalar_t>(coef);
      for_each_element(g.numel(), [&](int64_t i) { x[i] *= c; });
    });
    g.storage()->bump_version();
  }
  return norm;
}

// ---- Schedules ----

// Warmup (every kind): step s < warmup gives lr * (s + 1) / warmup, so the first step already
// moves and step warmup - 1 reaches lr. After it, with p = (s - warmup) / (total - warmup)
// clamped to [0, 1] (1 when total == warmup):
//   constant      lr
//   cosine        min_lr + (lr - min_lr) * (1 + cos(pi p)) / 2
//   linear        min_lr + (lr - min_lr) * (1 - p)
//   inverse_sqrt  lr * sqrt(max(warmup, 1) / (s + 1))   (continuous with the warmup's end)
double lr_at(const Schedule& s, int64_t step) {
  const bool decays = s.kind == "cosine" || s.kind == "linear";
  SPEAR_CHECK_T(ConfigError, decays || s.kind == "constant" || s.kind == "inverse_sqrt",
                "lr_at: unknown schedule kind '", s.kind,
                "' (expected constant, cosine, linear or inverse_sqrt)");
  SPEAR_CHECK_T(ConfigError, s.warmup >= 0 && step >= 0, "lr_at: warmup (", s.warmup,
                ") and step (", step, ") must be >= 0");
  SPEAR_CHECK_T(ConfigError, !decays || s.total >= s.warmup, "lr_at: a ", s.kind,
                " schedule needs total >= warmup, got total ", s.total, " and warmup ", s.warmup);
  if (step < s.warmup) return s.lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup);
  if (s.kind == "constant") return s.lr;
  if (s.kind == "inverse_sqrt")
    return s.lr * std::sqrt(static_cast<double>(std::max<int64_t>(s.warmup, 1)) /
                            static_cast<double>(step + 1));
  const double progress = s.total == s.warmup
                              ? 1.0
                              : std::clamp(static_cast<double>(step - s.warmup) /
                                               static_cast<double>(s.total - s.warmup),
                                           0.0, 1.0);
  constexpr double kPi = 3.14159265358979323846;
  const double fraction = s.kind == "cosine" ? 0.5 * (1 + std::cos(kPi * progress)) : 1 - progress;
  return s.min_lr + (s.lr - s.min_lr) * fraction;
}

}  // namespace spear::nn
