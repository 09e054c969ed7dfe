#include "autograd/node.h"

#include <iostream>
#include <sstream>
#include <unordered_set>
#include <utility>

#include "tensor/kernels/kernels.h"

namespace spear {

SavedTensor::SavedTensor(const Tensor& t)
    : data_(t.defined() ? t.detach() : Tensor()),
      version_(t.defined() ? t.storage()->version() : 0) {}

Tensor SavedTensor::get(const char* op) const {
  if (!data_.defined()) return data_;  // an optional input that was not given
  SPEAR_CHECK_T(AutogradError, data_.storage()->version() == version_, op,
                ": a tensor saved for backward was modified in place after it was saved (version ",
                data_.storage()->version(), ", saved at version ", version_,
                "); clone() it before changing it");
  return data_;
}

Node::~Node() {
  // Freeing a node frees the nodes only it points to, and so on down the graph. Done by plain
  // recursion, a long chain (an RNN unrolled over 100 000 steps) would overflow the stack, so
  // the nodes this one owns alone are queued and freed by a loop in the outermost destructor.
  thread_local std::vector<std::shared_ptr<Node>> orphans;
  thread_local bool draining = false;
  for (Edge& e : next_edges)
    if (e.node && e.node.use_count() == 1) orphans.push_back(std::move(e.node));
  if (draining) return;
  draining = true;
  while (!orphans.empty()) {
    std::shared_ptr<Node> last = std::move(orphans.back());
    orphans.pop_back();
    last.reset();  // its destructor queues its own orphans
  }
  draining = false;
}

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor> grad_outputs) {
  const Tensor& grad_output = grad_outputs[0];
  AutogradMeta& meta = *leaf_->autograd;
  // The first gradient is copied: the tensor handed in may be shared with other parts of the
  // graph, and the optimiser later scales .grad() in place.
  meta.grad = meta.grad.defined() ? kernels::binary(kernels::BinaryOp::add, meta.grad, grad_output)
                                  : kernels::clone(grad_output);
  for (const auto& hook : meta.post_accumulate_grad_hooks) hook(Tensor(leaf_));
  return {};
}

void register_post_accumulate_grad_hook(const Tensor& leaf,
                                        std::function<void(const Tensor& leaf)> hook) {
  SPEAR_CHECK_T(AutogradError, leaf.is_leaf() && leaf.requires_grad(),
                "register_post_accumulate_grad_hook: the tensor must be a leaf that requires grad");
  leaf.impl().autograd->post_accumulate_grad_hooks.push_back(std::move(hook));
}

void clear_post_accumulate_grad_hooks(const Tensor& leaf) {
  if (leaf.impl().autograd) leaf.impl().autograd->post_accumulate_grad_hooks.clear();
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined()) return {};
  AutogradMeta* meta = t.impl().autograd.get();
  if (!meta || !meta->requires_grad) return {};
  if (meta->grad_fn) return {meta->grad_fn, meta->output_nr};
  std::shared_ptr<Node> acc = meta->grad_accumulator.lock();
  if (!acc) {
    // The accumulator holds the leaf's impl (not the handle), so the leaf lives as long as the
    // graph; the leaf holds only a weak reference back, so there is no cycle.
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    acc->output_shapes = {t.shape()};
    acc->output_dtypes = {t.dtype()};
    meta->grad_accumulator = acc;
  }
  return {acc};
}

void set_history(Tensor& out, const std::shared_ptr<Node>& node, uint32_t output_nr) {
  auto& meta = out.impl().autograd;
  if (!meta) meta = std::make_shared<AutogradMeta>();
  meta->requires_grad = true;
  meta->grad_fn = node;
  meta->output_nr = output_nr;
}

void print_graph(const Tensor& t, std::ostream& os) {
  if (!t.grad_fn()) {
    os << (t.requires_grad() ? "leaf " : "constant ") << t.shape() << "\n";
    return;
  }
  // Depth-first with an explicit stack; a node reached again is printed once and then referred to.
  std::vector<std::pair<Node*, int>> stack{{t.grad_fn().get(), 0}};
  std::unordered_set<Node*> printed;
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    os << std::string(2 * depth, ' ') << node->name();
    for (const Shape& shape : node->output_shapes) os << ' ' << shape;
    if (!printed.insert(node).second) {
      os << " (shown above)\n";
      continue;
    }
    os << "\n";
    for (size_t i = node->next_edges.size(); i-- > 0;)
      if (node->next_edges[i].node) stack.push_back({node->next_edges[i].node.get(), depth + 1});
  }
}

std::string graph_string(const Tensor& t) {
  std::ostringstream os;
  print_graph(t, os);
  return os.str();
}

}  // namespace spear
