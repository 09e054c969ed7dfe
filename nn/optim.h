// Optimisers, learning-rate schedules and gradient clipping, with PyTorch's semantics.
//
//   auto opt = AdamW(param_groups(model, /*weight_decay=*/0.01), AdamOptions{1e-3});
//   for (...) {
//     opt.zero_grad();
//     loss.backward();
//     clip_grad_norm_(model.parameters(), 1.0);
//     opt.set_lr(lr_at(schedule, step));
//     opt.step();
//   }
//
// State is keyed by parameter name, so an optimiser checkpoint survives reordering the model.
#pragma once
#include <string>
#include <vector>

#include "nn/module.h"
#include "tensor/safetensors.h"

namespace spear::nn {

struct ParamGroup {
  NamedTensors params;
  double weight_decay = 0.0;
  double lr_scale = 1.0;  // this group's lr = the optimiser's lr * lr_scale
};

// Two groups, as transformer recipes use: weights of 2+ dims with `weight_decay`, and biases,
// norm weights and other 1-d parameters with none.
std::vector<ParamGroup> param_groups(const Module& model, double weight_decay);

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;
  virtual void step() = 0;  // updates every parameter that has a gradient
  void zero_grad();
  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  int64_t steps() const { return steps_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }

  // Per-parameter state as "state.<param name>.<slot>" plus "step"; load checks every name and
  // shape and reports all problems in one Error.
  NamedTensors state_dict() const;
  void load_state_dict(const NamedTensors& state);

 protected:
  // The slot tensor `slot` of parameter `name` (zeros shaped like it, created on first use).
  // Returned as a handle, not a reference: creating the next slot may move the entries of state_.
  Tensor slot(const std::string& name, const std::string& slot, const Tensor& like);
  double lr_ = 1e-3;
  int64_t steps_ = 0;
  std::vector<ParamGroup> groups_;
  NamedTensors state_;  // "state.<param>.<slot>" -> tensor, in creation order
};

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
};
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions options = {});
  void step() override;

 private:
  SGDOptions options_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};
// Adam adds weight decay to the gradient (L2); AdamW decays the weights directly (decoupled).
class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions options = {}, bool decoupled = false);
  void step() override;

 private:
  AdamOptions options_;
  bool decoupled_;
};
class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamOptions options = {})
      : Adam(std::move(groups), options, true) {}
};

// Scales every gradient so their joint L2 norm is at most max_norm; returns the norm before.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

struct Schedule {
  std::string kind = "constant";  // constant | cosine | linear | inverse_sqrt
  double lr = 1e-3;               // peak learning rate
  int64_t warmup = 0;             // linear warmup from 0 over these steps
  int64_t total = 0;              // steps in all (cosine and linear decay to min_lr at total)
  double min_lr = 0.0;
};
// The learning rate at `step` (0-based) of a schedule; a pure function.
double lr_at(const Schedule& schedule, int64_t step);

}  // namespace spear::nn
