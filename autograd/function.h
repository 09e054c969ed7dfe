// Function<Op>: how an op declares its forward and backward in one place.
//
//   // x: S -> y: S
//   struct ExpFn : Function<ExpFn> {
//     static constexpr const char* name = "exp";
//     static Tensor forward(Context& ctx, const Tensor& x) {
//       Tensor y = kernels::unary(kernels::UnaryOp::exp, x);
//       ctx.save_for_backward({y});
//       return y;
//     }
//     // dx = g * e^x
//     static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
//       return {g * ctx.saved(0)};
//     }
//   };
//   SPEAR_REGISTER_FUNCTION(ExpFn);
//   Tensor exp(const Tensor& x) { return ExpFn::apply(x); }
//
// apply() runs forward, and when grad mode is on and some tensor input requires grad, records a
// node whose backward is Op::backward. backward returns one gradient per tensor input, in the
// order the inputs appear in forward's arguments (a std::vector<Tensor> argument counts as its
// elements). Backward runs with grad mode off, so it may use the public ops freely.
#pragma once
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/node.h"

namespace spear {

// What forward leaves for backward.
class Context {
 public:
  // Saving is skipped when nothing will be recorded, so forward can always call it.
  void save_for_backward(std::vector<Tensor> tensors);
  Tensor saved(size_t i) const;
  bool needs_input_grad(size_t i) const { return i < needs_grad_.size() && needs_grad_[i]; }
  size_t num_inputs() const { return input_shapes_.size(); }
  const Shape& input_shape(size_t i) const { return input_shapes_[i]; }
  DType input_dtype(size_t i) const { return input_dtypes_[i]; }

  // Non-tensor values the backward needs; each Function documents which ones it uses.
  std::vector<int64_t> dims;    // dims, sizes or positions
  double scalar = 0;            // an exponent, a probability, a fill value
  std::vector<double> scalars;  // when one scalar is not enough
  bool flag = false;            // keepdim, reverse, ...

 private:
  template <typename Op>
  friend struct Function;
  template <typename Op>
  friend class FunctionNode;
  const char* op_ = "";
  bool recording_ = false;
  bool released_ = false;
  std::vector<SavedTensor> saved_;
  std::vector<bool> needs_grad_;
  std::vector<Shape> input_shapes_;
  std::vector<DType> input_dtypes_;
};

template <typename Op>
class FunctionNode : public Node {
 public:
  const char* name() const override { return Op::name; }
  std::vector<Tensor> apply(const Tensor& grad_output) override {
    if (ctx.released_)
      throw AutogradError(
          str_cat(Op::name, ": backward through this graph a second time; its saved ",
                  "tensors were freed. Pass retain_graph=true to the first backward()"));
    return Op::backward(ctx, grad_output);
  }
  void release_saved() override {
    ctx.saved_.clear();
    ctx.released_ = true;
  }
  Context ctx;
};

namespace detail {
inline void collect_tensors(std::vector<Tensor>& out, const Tensor& t) {
  out.push_back(t);
}
inline void collect_tensors(std::vector<Tensor>& out, const std::vector<Tensor>& ts) {
  out.insert(out.end(), ts.begin(), ts.end());
}
template <typename T>
void collect_tensors(std::vector<Tensor>&, const T&) {}

bool debug_enabled();  // SPEAR_DEBUG=1
void debug_log(const char* op, const std::vector<Tensor>& inputs, const Tensor& out);
// A fresh handle on the same data, so recording history never touches an input's own handle
// (forward may return an input unchanged, e.g. contiguous() of a contiguous tensor).
Tensor fresh_alias(const Tensor& t);
}  // namespace detail

// Adds `name` to the registry of differentiable ops (tests check every one has a gradcheck row).
bool register_function(const char* name);
std::vector<std::string> registered_functions();  // sorted

template <typename Op>
struct Function {
  template <typename... Args>
  static Tensor apply(const Args&... args) {
    std::vector<Tensor> inputs;
    (detail::collect_tensors(inputs, args), ...);
    bool record = false;
    if (is_grad_enabled())
      for (const Tensor& t : inputs) record = record || (t.defined() && t.requires_grad());

    Tensor out;
    if (!record) {
      Context ctx;
      out = Op::forward(ctx, args...);
    } else {
      auto node = std::make_shared<FunctionNode<Op>>();
      Context& ctx = node->ctx;
      ctx.op_ = Op::name;
      ctx.recording_ = true;
      for (const Tensor& t : inputs) {
        node->next_edges.push_back(gradient_edge(t));
        ctx.needs_grad_.push_back(node->next_edges.back().node != nullptr);
        ctx.input_shapes_.push_back(t.defined() ? t.shape() : Shape{});
        ctx.input_dtypes_.push_back(t.defined() ? t.dtype() : f32);
      }
      node->input_shapes = ctx.input_shapes_;
      node->input_dtypes = ctx.input_dtypes_;
      {
        NoGradGuard no_grad;  // ops inside forward are not recorded
        out = detail::fresh_alias(Op::forward(ctx, args...));
      }
      node->output_shape = out.shape();
      set_history(out, node);
    }
    if (detail::debug_enabled()) detail::debug_log(Op::name, inputs, out);
    return out;
  }
};

}  // namespace spear

// Registers a Function's name at start-up (place it after the Function's definition).
#define SPEAR_CONCAT_INNER(a, b) a##b
#define SPEAR_CONCAT(a, b) SPEAR_CONCAT_INNER(a, b)
#define SPEAR_REGISTER_FUNCTION(...)                                             \
  [[maybe_unused]] static const bool SPEAR_CONCAT(spear_registered_, __LINE__) = \
      ::spear::register_function(__VA_ARGS__::name)
