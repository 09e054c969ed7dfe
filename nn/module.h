// Module: the base of every layer and model, after torch::nn::Module.
//
// A module owns named parameters (tensors the optimiser trains), named buffers (state that is
// saved but not trained) and named child modules. Names join with dots, so a model's
// state_dict() keys are PyTorch's: "blocks.0.attn.q_proj.weight".
//
//   struct Affine : Module {
//     Tensor weight, bias;
//     Affine(int64_t n) : Module("Affine") {
//       weight = register_parameter("weight", ones({n}));
//       bias = register_parameter("bias", zeros({n}));
//     }
//     Tensor forward(const Tensor& x) { return x * weight + bias; }
//   };
//
// The member (`weight`) and the registered entry are the same tensor: never assign a new tensor
// to a registered member (it would silently stop being the one that is trained and saved);
// change its values with copy_() or its dtype with Module::to().
#pragma once
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "tensor/safetensors.h"
#include "tensor/tensor.h"

namespace spear::nn {

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- Registration (names: non-empty, no '.', unique within the module) ----
  Tensor register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // ---- Introspection (dotted names, registration order, children after own entries) ----
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const {
    return children_;
  }
  // Every module below this one (not this one), with dotted names, depth first.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules() const;
  int64_t num_parameters() const;
  const std::string& type_name() const { return type_name_; }

  // ---- State ----
  // Parameters and buffers, in the order above: what a checkpoint holds.
  NamedTensors state_dict() const;
  // Copies values in by name (converting dtype when needed). With `strict`, every missing and
  // unexpected key is an error; a shape mismatch is always one. All problems are reported
  // together in one Error, and nothing is changed when there are any.
  void load_state_dict(const NamedTensors& state, bool strict = true);

  // ---- Modes and conversions ----
  void train(bool on = true);  // recursive, like PyTorch
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void to(DType dtype);  // converts parameters and buffers in place; gradients are dropped
  void zero_grad();

  // The module tree with each module's settings and parameter count.
  void pretty_print(std::ostream& os) const;

 protected:
  // One line of settings shown by pretty_print, e.g. "in_features=4, out_features=8".
  virtual std::string extra_repr() const { return ""; }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name) const;
  void print_tree(std::ostream& os, const std::string& name, int depth) const;

  std::string type_name_;
  bool training_ = true;
  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

std::ostream& operator<<(std::ostream& os, const Module& module);

// A list of modules named "0", "1", ... (PyTorch's nn.ModuleList, so checkpoint keys match).
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  template <typename M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    items_.push_back(module);
    return register_module(std::to_string(items_.size() - 1), module);
  }
  size_t size() const { return items_.size(); }
  template <typename M>
  M& at(size_t i) const {
    return dynamic_cast<M&>(*items_.at(i));
  }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

}  // namespace spear::nn
