// Differentiable elementwise ops. Binary ops broadcast: their backward returns gradients of the
// broadcast shape, and the engine sums each down to its input's shape.
#include "autograd/function.h"
#include "autograd/ops.h"
#include "tensor/kernels/kernels.h"

namespace spear {
namespace {

using kernels::BinaryOp;
using kernels::UnaryOp;

Tensor scalar_like(const Tensor& t, double value) {
  return scalar_tensor(value, t.dtype());
}

// x: S -> y = f(x): S. Every unary op has this form; its derivative f'(x) is written next to the
// op in kernels::unary_backward (tensor/kernels/elementwise.cpp).
template <UnaryOp Op>
struct UnaryFn : Function<UnaryFn<Op>> {
  static constexpr const char* name = kernels::unary_name(Op);
  static Tensor forward(Context& ctx, const Tensor& x) {
    Tensor y = kernels::unary(Op, x);
    ctx.save_for_backward({x, y});
    return y;
  }
  // dx = g * f'(x)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {kernels::unary_backward(Op, ctx.saved(0), ctx.saved(1), g)};
  }
};

SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::neg>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::exp>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::log>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::sqrt>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::rsqrt>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::abs>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::sin>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::cos>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::tanh>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::sigmoid>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::relu>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::gelu>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::elu>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::softplus>);
SPEAR_REGISTER_FUNCTION(UnaryFn<UnaryOp::erf>);

// a: A, b: B -> a + b: broadcast(A, B)
struct AddFn : Function<AddFn> {
  static constexpr const char* name = "add";
  static Tensor forward(Context&, const Tensor& a, const Tensor& b) {
    return kernels::binary(BinaryOp::add, a, b);
  }
  // da = g, db = g
  static std::vector<Tensor> backward(Context&, const Tensor& g) { return {g, g}; }
};
SPEAR_REGISTER_FUNCTION(AddFn);

// a: A, b: B -> a - b: broadcast(A, B)
struct SubFn : Function<SubFn> {
  static constexpr const char* name = "sub";
  static Tensor forward(Context&, const Tensor& a, const Tensor& b) {
    return kernels::binary(BinaryOp::sub, a, b);
  }
  // da = g, db = -g
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {g, ctx.needs_input_grad(1) ? -g : Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(SubFn);

// a: A, b: B -> a * b: broadcast(A, B)
struct MulFn : Function<MulFn> {
  static constexpr const char* name = "mul";
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    ctx.save_for_backward({a, b});
    return kernels::binary(BinaryOp::mul, a, b);
  }
  // da = g * b, db = g * a
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    return {ctx.needs_input_grad(0) ? g * ctx.saved(1) : Tensor(),
            ctx.needs_input_grad(1) ? g * ctx.saved(0) : Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(MulFn);

// a: A, b: B -> a / b: broadcast(A, B)
struct DivFn : Function<DivFn> {
  static constexpr const char* name = "div";
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    ctx.save_for_backward({a, b});
    return kernels::binary(BinaryOp::div, a, b);
  }
  // da = g / b, db = -g * a / b^2
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    Tensor a = ctx.saved(0), b = ctx.saved(1);
    Tensor da = g / b;
    return {ctx.needs_input_grad(0) ? da : Tensor(),
            ctx.needs_input_grad(1) ? -(da * a / b) : Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(DivFn);

// a: A, b: B -> a ^ b: broadcast(A, B)
struct PowFn : Function<PowFn> {
  static constexpr const char* name = "pow";
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    Tensor y = kernels::binary(BinaryOp::pow, a, b);
    ctx.save_for_backward({a, b, y});
    return y;
  }
  // da = g * b * a^(b-1), db = g * a^b * log(a)
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    Tensor a = ctx.saved(0), b = ctx.saved(1);
    return {ctx.needs_input_grad(0) ? g * b * pow(a, b - 1.0) : Tensor(),
            ctx.needs_input_grad(1) ? g * ctx.saved(2) * log(a) : Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(PowFn);

// a: A, b: B -> max(a, b) or min(a, b): broadcast(A, B). At ties the gradient is split in half,
// as PyTorch does.
template <BinaryOp Op>
struct ExtremumFn : Function<ExtremumFn<Op>> {
  static constexpr const char* name = kernels::binary_name(Op);
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    ctx.save_for_backward({a, b});
    return kernels::binary(Op, a, b);
  }
  // da = g * [a wins] + g/2 * [a == b], db = the rest
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    Tensor a = ctx.saved(0), b = ctx.saved(1);
    Tensor a_wins = Op == BinaryOp::maximum ? gt(a, b) : lt(a, b);
    Tensor share_a = a_wins + eq(a, b) * 0.5;
    return {ctx.needs_input_grad(0) ? g * share_a : Tensor(),
            ctx.needs_input_grad(1) ? g * (1.0 - share_a) : Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(ExtremumFn<BinaryOp::maximum>);
SPEAR_REGISTER_FUNCTION(ExtremumFn<BinaryOp::minimum>);

// cond: C, a: A, b: B -> broadcast(C, A, B); cond gets no gradient.
struct WhereFn : Function<WhereFn> {
  static constexpr const char* name = "where";
  static Tensor forward(Context& ctx, const Tensor& cond, const Tensor& a, const Tensor& b) {
    ctx.save_for_backward({cond});
    return kernels::where(cond, a, b);
  }
  // da = g where cond, db = g where not cond
  static std::vector<Tensor> backward(Context& ctx, const Tensor& g) {
    Tensor cond = ctx.saved(0), zero = scalar_like(g, 0.0);
    return {Tensor(), ctx.needs_input_grad(1) ? kernels::where(cond, g, zero) : Tensor(),
            ctx.needs_input_grad(2) ? kernels::where(cond, zero, g) : Tensor()};
  }
};
SPEAR_REGISTER_FUNCTION(WhereFn);

}  // namespace

Tensor neg(const Tensor& x) {
  return UnaryFn<UnaryOp::neg>::apply(x);
}
Tensor exp(const Tensor& x) {
  return UnaryFn<UnaryOp::exp>::apply(x);
}
Tensor log(const Tensor& x) {
  return UnaryFn<UnaryOp::log>::apply(x);
}
Tensor sqrt(const Tensor& x) {
  return UnaryFn<UnaryOp::sqrt>::apply(x);
}
Tensor rsqrt(const Tensor& x) {
  return UnaryFn<UnaryOp::rsqrt>::apply(x);
}
Tensor abs(const Tensor& x) {
  return UnaryFn<UnaryOp::abs>::apply(x);
}
Tensor sin(const Tensor& x) {
  return UnaryFn<UnaryOp::sin>::apply(x);
}
Tensor cos(const Tensor& x) {
  return UnaryFn<UnaryOp::cos>::apply(x);
}
Tensor tanh(const Tensor& x) {
  return UnaryFn<UnaryOp::tanh>::apply(x);
}
Tensor sigmoid(const Tensor& x) {
  return UnaryFn<UnaryOp::sigmoid>::apply(x);
}
Tensor relu(const Tensor& x) {
  return UnaryFn<UnaryOp::relu>::apply(x);
}
Tensor gelu(const Tensor& x) {
  return UnaryFn<UnaryOp::gelu>::apply(x);
}
Tensor elu(const Tensor& x) {
  return UnaryFn<UnaryOp::elu>::apply(x);
}
Tensor softplus(const Tensor& x) {
  return UnaryFn<UnaryOp::softplus>::apply(x);
}
Tensor erf(const Tensor& x) {
  return UnaryFn<UnaryOp::erf>::apply(x);
}

Tensor add(const Tensor& a, const Tensor& b) {
  return AddFn::apply(a, b);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return SubFn::apply(a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return MulFn::apply(a, b);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return DivFn::apply(a, b);
}
Tensor pow(const Tensor& a, const Tensor& b) {
  return PowFn::apply(a, b);
}
Tensor pow(const Tensor& x, double exponent) {
  return PowFn::apply(x, scalar_like(x, exponent));
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  return ExtremumFn<BinaryOp::maximum>::apply(a, b);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return ExtremumFn<BinaryOp::minimum>::apply(a, b);
}
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return WhereFn::apply(cond, a, b);
}

// Comparisons have no gradient: their result is a mask, never recorded.
Tensor eq(const Tensor& a, const Tensor& b) {
  return kernels::binary(BinaryOp::eq, a, b);
}
Tensor ne(const Tensor& a, const Tensor& b) {
  return kernels::binary(BinaryOp::ne, a, b);
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return kernels::binary(BinaryOp::lt, a, b);
}
Tensor le(const Tensor& a, const Tensor& b) {
  return kernels::binary(BinaryOp::le, a, b);
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return kernels::binary(BinaryOp::gt, a, b);
}
Tensor ge(const Tensor& a, const Tensor& b) {
  return kernels::binary(BinaryOp::ge, a, b);
}

Tensor operator-(const Tensor& x) {
  return neg(x);
}
Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
Tensor operator+(const Tensor& a, double b) {
  return add(a, scalar_like(a, b));
}
Tensor operator-(const Tensor& a, double b) {
  return sub(a, scalar_like(a, b));
}
Tensor operator*(const Tensor& a, double b) {
  return mul(a, scalar_like(a, b));
}
Tensor operator/(const Tensor& a, double b) {
  return div(a, scalar_like(a, b));
}
Tensor operator+(double a, const Tensor& b) {
  return add(scalar_like(b, a), b);
}
Tensor operator-(double a, const Tensor& b) {
  return sub(scalar_like(b, a), b);
}
Tensor operator*(double a, const Tensor& b) {
  return mul(scalar_like(b, a), b);
}
Tensor operator/(double a, const Tensor& b) {
  return div(scalar_like(b, a), b);
}
Tensor operator==(const Tensor& a, const Tensor& b) {
  return eq(a, b);
}
Tensor operator!=(const Tensor& a, const Tensor& b) {
  return ne(a, b);
}
Tensor operator<(const Tensor& a, const Tensor& b) {
  return lt(a, b);
}
Tensor operator<=(const Tensor& a, const Tensor& b) {
  return le(a, b);
}
Tensor operator>(const Tensor& a, const Tensor& b) {
  return gt(a, b);
}
Tensor operator>=(const Tensor& a, const Tensor& b) {
  return ge(a, b);
}

}  // namespace spear
