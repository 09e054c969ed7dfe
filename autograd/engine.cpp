// backward(): reverse-mode differentiation over the recorded graph.
//
// 1. Count, for every node reachable from the root, how many edges point at it (its users).
// 2. Run nodes in topological order: a node runs once every user has handed it its gradient,
//    so gradients from all uses are summed first. Both walks use explicit stacks, never
//    recursion, so a graph of a million chained ops cannot overflow the C++ stack.
// 3. Each gradient is checked against its input: a broadcast gradient is summed down to the
//    input's shape here, once for every op, and converted to the input's dtype.
#include <unordered_map>
#include <unordered_set>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "tensor/kernels/kernels.h"

namespace spear {
namespace {

std::unordered_map<Node*, int> count_users(Node* root) {
  std::unordered_map<Node*, int> users{{root, 0}};
  std::vector<Node*> stack{root};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Edge& e : node->next_edges) {
      if (!e.node) continue;
      auto [it, first_visit] = users.emplace(e.node.get(), 0);
      ++it->second;
      if (first_visit) stack.push_back(e.node.get());
    }
  }
  return users;
}

// The gradient for input i of `node`, brought to that input's shape and dtype.
Tensor fit_to_input(const Node& node, size_t i, Tensor grad) {
  const Shape& shape = node.input_shapes[i];
  if (grad.shape() != shape) {
    SPEAR_CHECK_T(AutogradError, broadcast_shapes(grad.shape(), shape, node.name()) == grad.shape(),
                  node.name(), ": backward returned a gradient of shape ", grad.shape(),
                  " for input ", i, " of shape ", shape);
    grad = kernels::sum_to(grad, shape);
  }
  if (grad.dtype() != node.input_dtypes[i]) grad = kernels::to_dtype(grad, node.input_dtypes[i]);
  return grad;
}

void run_backward(const Tensor& root, Tensor grad, bool retain_graph) {
  SPEAR_CHECK_T(AutogradError, root.requires_grad(),
                "backward: the tensor does not require grad (no input of the computation that made "
                "it has requires_grad set)");
  if (!grad.defined()) {
    SPEAR_CHECK_T(AutogradError, root.numel() == 1,
                  "backward: a gradient can be created implicitly only for a one-element output; "
                  "got shape ",
                  root.shape(), ", pass backward(grad)");
    grad = ones_like(root);
  }
  SPEAR_CHECK_T(AutogradError, grad.shape() == root.shape(), "backward: grad shape ", grad.shape(),
                " does not match the output shape ", root.shape());
  if (grad.dtype() != root.dtype()) grad = kernels::to_dtype(grad, root.dtype());

  NoGradGuard no_grad;
  const Edge root_edge = gradient_edge(root);
  Node* root_node = root_edge.node.get();
  std::unordered_map<Node*, int> users = count_users(root_node);
  // The gradients received so far, one slot per output of each node.
  std::unordered_map<Node*, std::vector<Tensor>> pending;
  auto slots_of = [&](Node* node) -> std::vector<Tensor>& {
    std::vector<Tensor>& slots = pending[node];
    slots.resize(node->output_shapes.size());
    return slots;
  };
  slots_of(root_node)[root_edge.output_nr] = grad;
  std::vector<Node*> ready{root_node};
  while (!ready.empty()) {
    Node* node = ready.back();
    ready.pop_back();
    std::vector<Tensor> grad_outputs = std::move(slots_of(node));
    pending.erase(node);
    // A node whose users sent no gradient still passes on "nothing" so its inputs can count down.
    std::vector<Tensor> grads(node->next_edges.size());
    bool any = false;
    for (const Tensor& g : grad_outputs) any = any || g.defined();
    if (any) {
      grads = node->apply(std::move(grad_outputs));
      if (!retain_graph) node->release_saved();
      SPEAR_CHECK_T(AutogradError, grads.size() == node->next_edges.size(), node->name(),
                    ": backward returned ", grads.size(), " gradients for ",
                    node->next_edges.size(), " inputs");
    }
    for (size_t i = 0; i < grads.size(); ++i) {
      const Edge& edge = node->next_edges[i];
      Node* next = edge.node.get();
      if (!next) continue;
      if (grads[i].defined()) {
        Tensor g = fit_to_input(*node, i, std::move(grads[i]));
        Tensor& slot = slots_of(next)[edge.output_nr];
        slot = slot.defined() ? kernels::binary(kernels::BinaryOp::add, slot, g) : g;
      }
      if (--users[next] == 0) ready.push_back(next);
    }
  }
}

AutogradMeta& meta_of(const Tensor& t) {
  auto& meta = t.impl().autograd;
  if (!meta) meta = std::make_shared<AutogradMeta>();
  return *meta;
}

}  // namespace

bool Tensor::requires_grad() const {
  const auto& meta = impl().autograd;
  return meta && meta->requires_grad;
}

Tensor& Tensor::requires_grad_(bool requires) {
  SPEAR_CHECK_T(AutogradError, is_leaf(),
                "requires_grad_: only leaf tensors can change requires_grad; use detach() first");
  SPEAR_CHECK_T(AutogradError, !requires || is_floating_point(),
                "requires_grad_: only f32/f64 tensors can require gradients, got ", dtype());
  meta_of(*this).requires_grad = requires;
  return *this;
}

bool Tensor::is_leaf() const {
  const auto& meta = impl().autograd;
  return !meta || !meta->grad_fn;
}

Tensor Tensor::grad() const {
  const auto& meta = impl().autograd;
  return meta ? meta->grad : Tensor();
}

void Tensor::set_grad(const Tensor& grad) {
  SPEAR_CHECK_T(AutogradError, !grad.defined() || grad.shape() == shape(),
                "set_grad: gradient shape ", grad.shape(), " does not match the tensor's shape ",
                shape());
  meta_of(*this).grad = grad;
}

void Tensor::zero_grad() {
  if (impl().autograd) impl().autograd->grad = Tensor();
}

std::shared_ptr<Node> Tensor::grad_fn() const {
  const auto& meta = impl().autograd;
  return meta ? meta->grad_fn : nullptr;
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  run_backward(*this, grad, retain_graph);
}

Tensor Tensor::detach() const {
  return make_view(storage(), shape(), strides(), offset(), dtype());
}

}  // namespace spear
