// The graph that backward() walks. Every op that runs while some input requires grad creates a
// Node; the Node points at the Nodes of its inputs (its "next edges"), so the graph runs from the
// loss back to the leaves. A leaf (a parameter) is reached through its AccumulateGrad node, which
// adds the incoming gradient into the leaf's .grad().
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace spear {

// Autograd's state of one tensor (TensorImpl::autograd).
struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;                           // leaves: the accumulated gradient
  std::shared_ptr<Node> grad_fn;         // op outputs: the node that made them
  uint32_t output_nr = 0;                // op outputs: which of grad_fn's outputs this is
  std::weak_ptr<Node> grad_accumulator;  // leaves: shared by every use of the leaf
  std::vector<std::function<void(const Tensor&)>> post_accumulate_grad_hooks;  // leaves
};

// A tensor kept for the backward pass. It is stored detached (so the graph holds no cycle through
// it) together with its storage version: if the data is changed in place before backward, using
// it would give a silently wrong gradient, so get() throws instead.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  Tensor get(const char* op) const;

 private:
  Tensor data_;
  uint64_t version_ = 0;
};

class Node;
// An input of a node: output `output_nr` of `node`, which is null when that input needs no
// gradient.
struct Edge {
  std::shared_ptr<Node> node;
  uint32_t output_nr = 0;
};

class Node {
 public:
  virtual ~Node();
  virtual const char* name() const = 0;
  // The gradients w.r.t. each input, given the gradients w.r.t. each output (most ops have one;
  // an output nothing used gets an undefined Tensor, and at least one is defined). An input
  // that needs no gradient may get an undefined Tensor. A gradient may have the output's
  // broadcast shape; the engine sums it down to the input's shape.
  virtual std::vector<Tensor> apply(std::vector<Tensor> grad_outputs) = 0;
  // Frees what forward saved; after this, apply throws (backward ran once without retain_graph).
  virtual void release_saved() {}

  std::vector<Edge> next_edges;     // one per tensor input of the op, in order
  std::vector<Shape> input_shapes;  // the inputs' shapes and dtypes, to check and reduce grads
  std::vector<DType> input_dtypes;
  std::vector<Shape> output_shapes;  // one per output
  std::vector<DType> output_dtypes;
};

// The end of the graph for a leaf: adds the gradient into leaf.grad().
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  const char* name() const override { return "AccumulateGrad"; }
  std::vector<Tensor> apply(std::vector<Tensor> grad_outputs) override;

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// The edge that leads to `t`'s gradient: its grad_fn, its AccumulateGrad if it is a leaf that
// requires grad, or an empty edge.
Edge gradient_edge(const Tensor& t);

// Runs hook(leaf) each time backward has added the leaf's gradient of that pass into .grad(),
// after PyTorch's register_post_accumulate_grad_hook. Every use of a leaf feeds one
// AccumulateGrad node, which the engine runs once all its uses have sent their part, so
// leaf.grad() is final for the pass when the hook runs: data-parallel training starts sending it
// then, while backward goes on with the rest of the graph (examples/train/distributed.h). A leaf
// that gets no gradient in a pass does not run its hooks.
void register_post_accumulate_grad_hook(const Tensor& leaf,
                                        std::function<void(const Tensor& leaf)> hook);
void clear_post_accumulate_grad_hooks(const Tensor& leaf);

// Makes `out` output `output_nr` of `node`: out.requires_grad() becomes true.
void set_history(Tensor& out, const std::shared_ptr<Node>& node, uint32_t output_nr = 0);

// Prints the graph behind `t`, one node per line, indented by depth, with output shapes.
void print_graph(const Tensor& t, std::ostream& os);
std::string graph_string(const Tensor& t);

}  // namespace spear
