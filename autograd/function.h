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
//
// An op with several outputs (two results that share work, like ConvSPE's queries and keys,
// which share one noise draw) returns a std::vector<Tensor> from forward, and its backward takes
// `const std::vector<Tensor>& grads`, one per output; an output that nothing used gets zeros.
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

namespace detail {
// Whether Op's backward takes one gradient per output (an op with several outputs).
template <typename Op>
constexpr bool takes_output_grads =
    std::is_invocable_v<decltype(&Op::backward), Context&, const std::vector<Tensor>&>;
}  // namespace detail

template <typename Op>
class FunctionNode : public Node {
 public:
  const char* name() const override { return Op::name; }
  std::vector<Tensor> apply(std::vector<Tensor> grad_outputs) override {
    if (ctx.released_)
      throw AutogradError(
          str_cat(Op::name, ": backward through this graph a second time; its saved ",
                  "tensors were freed. Pass retain_graph=true to the first backward()"));
    if constexpr (detail::takes_output_grads<Op>) {
      for (size_t i = 0; i < grad_outputs.size(); ++i)
        if (!grad_outputs[i].defined()) grad_outputs[i] = zeros(output_shapes[i], output_dtypes[i]);
      return Op::backward(ctx, grad_outputs);
    } else {
      return Op::backward(ctx, grad_outputs[0]);
    }
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
void debug_log(const char* op, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outs);
inline std::vector<Tensor> as_outputs(Tensor out) {
  return {std::move(out)};
}
inline std::vector<Tensor> as_outputs(std::vector<Tensor> outs) {
  return outs;
}
// A fresh handle on the same data, so recording history never touches an input's own handle
// (forward may return an input unchanged, e.g. contiguous() of a contiguous tensor).
Tensor fresh_alias(const Tensor& t);
}  // namespace detail

// Adds `name` to the registry of differentiable ops (tests check every one has a gradcheck row).
bool register_function(const char* name);
std::vector<std::string> registered_functions();  // sorted

template <typename Op>
struct Function {
  // -> Tensor, or std::vector<Tensor> for an op with several outputs: what Op::forward returns.
  template <typename... Args>
  static auto apply(const Args&... args) {
    using Result = decltype(Op::forward(std::declval<Context&>(), args...));
    std::vector<Tensor> inputs;
    (detail::collect_tensors(inputs, args), ...);
    bool record = false;
    if (is_grad_enabled())
      for (const Tensor& t : inputs) record = record || (t.defined() && t.requires_grad());

    std::vector<Tensor> outs;
    if (!record) {
      Context ctx;
      outs = detail::as_outputs(Op::forward(ctx, args...));
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
        outs = detail::as_outputs(Op::forward(ctx, args...));
      }
      for (size_t i = 0; i < outs.size(); ++i) {
        outs[i] = detail::fresh_alias(outs[i]);
        node->output_shapes.push_back(outs[i].shape());
        node->output_dtypes.push_back(outs[i].dtype());
        set_history(outs[i], node, static_cast<uint32_t>(i));
      }
    }
    if (detail::debug_enabled()) detail::debug_log(Op::name, inputs, outs);
    if constexpr (std::is_same_v<Result, std::vector<Tensor>>)
      return outs;
    else
      return outs[0];
  }
};

}  // namespace spear

// Registers a Function's name at start-up (place it after the Function's definition).
#define SPEAR_CONCAT_INNER(a, b) a##b
#define SPEAR_CONCAT(a, b) SPEAR_CONCAT_INNER(a, b)
#define SPEAR_REGISTER_FUNCTION(...)                                             \
  [[maybe_unused]] static const bool SPEAR_CONCAT(spear_registered_, __LINE__) = \
      ::spear::register_function(__VA_ARGS__::name)
