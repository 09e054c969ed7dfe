#include "nn/module.h"

#include <map>
#include <set>
#include <sstream>

#include "autograd/grad_mode.h"
#include "tensor/kernels/kernels.h"

namespace spear::nn {

void Module::check_new_name(const std::string& name) const {
  SPEAR_CHECK(!name.empty(), type_name_, ": a parameter, buffer or module name cannot be empty");
  SPEAR_CHECK(name.find('.') == std::string::npos, type_name_, ": name '", name,
              "' contains '.', which separates the parts of dotted names");
  auto taken = [&](const auto& list) {
    for (const auto& entry : list)
      if (entry.first == name) return true;
    return false;
  };
  SPEAR_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), type_name_, ": name '",
              name, "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  check_new_name(name);
  SPEAR_CHECK(value.defined(), type_name_, ": parameter '", name, "' is undefined");
  SPEAR_CHECK(value.is_leaf(), type_name_, ": parameter '", name,
              "' was computed by an op; pass a leaf (detach() it)");
  if (requires_grad) value.requires_grad_();
  parameters_.emplace_back(name, value);
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name);
  SPEAR_CHECK(value.defined(), type_name_, ": buffer '", name, "' is undefined");
  buffers_.emplace_back(name, value);
  return value;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name);
  SPEAR_CHECK(module != nullptr, type_name_, ": module '", name, "' is null");
  children_.emplace_back(name, std::move(module));
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out = parameters_;
  if (recurse)
    for (const auto& [name, child] : children_)
      for (auto& [sub, t] : child->named_parameters(true)) out.emplace_back(name + "." + sub, t);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out = buffers_;
  if (recurse)
    for (const auto& [name, child] : children_)
      for (auto& [sub, t] : child->named_buffers(true)) out.emplace_back(name + "." + sub, t);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (const auto& [name, child] : children_) {
    out.emplace_back(name, child);
    for (auto& [sub, m] : child->named_modules()) out.emplace_back(name + "." + sub, m);
  }
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& p : parameters()) n += p.numel();
  return n;
}

NamedTensors Module::state_dict() const {
  // Own parameters, own buffers, then each child's state, as PyTorch orders it.
  NamedTensors out = parameters_;
  out.insert(out.end(), buffers_.begin(), buffers_.end());
  for (const auto& [name, child] : children_)
    for (auto& [sub, t] : child->state_dict()) out.emplace_back(name + "." + sub, t);
  return out;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  NamedTensors mine = state_dict();
  std::map<std::string, Tensor> given(state.begin(), state.end());
  std::set<std::string> known;
  std::vector<std::string> missing, unexpected, mismatched;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  for (const auto& [name, dst] : mine) {
    known.insert(name);
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
    } else if (it->second.shape() != dst.shape()) {
      mismatched.push_back(
          str_cat(name, " (checkpoint ", it->second.shape(), ", model ", dst.shape(), ")"));
    } else {
      copies.emplace_back(dst, it->second);
    }
  }
  for (const auto& [key, t] : state)
    if (!known.count(key)) unexpected.push_back(key);

  std::ostringstream problems;
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    problems << "\n  " << what << ":";
    for (const std::string& n : names) problems << " " << n << ";";
  };
  if (strict) {
    list("missing keys", missing);
    list("unexpected keys", unexpected);
  }
  list("shape mismatches", mismatched);
  SPEAR_CHECK(problems.str().empty(), "load_state_dict: the state does not fit ", type_name_,
              problems.str());
  NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(DType dtype) {
  for (auto& [name, t] : named_parameters())
    if (t.is_floating_point() && t.dtype() != dtype) {
      t.set_data(kernels::to_dtype(t, dtype));
      t.zero_grad();
    }
  for (auto& [name, t] : named_buffers())
    if (t.is_floating_point() && t.dtype() != dtype) t.set_data(kernels::to_dtype(t, dtype));
}

void Module::zero_grad() {
  for (Tensor& t : parameters()) t.zero_grad();
}

void Module::print_tree(std::ostream& os, const std::string& name, int depth) const {
  std::string indent(2 * depth, ' ');
  os << indent << (name.empty() ? "" : "(" + name + "): ") << type_name_ << "(" << extra_repr()
     << ")  # " << num_parameters() << " parameters\n";
  for (const auto& [child_name, child] : children_) child->print_tree(os, child_name, depth + 1);
}

void Module::pretty_print(std::ostream& os) const {
  print_tree(os, "", 0);
}

std::ostream& operator<<(std::ostream& os, const Module& module) {
  module.pretty_print(os);
  return os;
}

}  // namespace spear::nn
