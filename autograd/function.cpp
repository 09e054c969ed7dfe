#include "autograd/function.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>

namespace spear {

void Context::save_for_backward(std::vector<Tensor> tensors) {
  if (!recording_) return;
  saved_.clear();
  for (const Tensor& t : tensors) saved_.emplace_back(t);
}

Tensor Context::saved(size_t i) const {
  SPEAR_CHECK_T(AutogradError, i < saved_.size(), op_, ": saved tensor ", i, " was never saved");
  return saved_[i].get(op_);
}

namespace {
std::vector<std::string>& registry() {
  static std::vector<std::string> names;
  return names;
}
}  // namespace

bool register_function(const char* name) {
  registry().emplace_back(name);
  return true;
}

std::vector<std::string> registered_functions() {
  std::vector<std::string> names = registry();
  std::sort(names.begin(), names.end());
  return names;
}

namespace detail {

bool debug_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SPEAR_DEBUG");
    return v && std::string(v) != "0" && *v;
  }();
  return enabled;
}

void debug_log(const char* op, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outs) {
  std::cerr << "[spear] " << op << '(';
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::cerr << (i ? ", " : "");
    if (inputs[i].defined())
      std::cerr << inputs[i].shape() << ' ' << inputs[i].dtype();
    else
      std::cerr << "none";
  }
  std::cerr << ") ->";
  for (const Tensor& out : outs)
    std::cerr << ' ' << out.shape() << (out.requires_grad() ? " requires_grad" : "");
  std::cerr << '\n';
}

Tensor fresh_alias(const Tensor& t) {
  return Tensor::make_view(t.storage(), t.shape(), t.strides(), t.offset(), t.dtype());
}

}  // namespace detail
}  // namespace spear
