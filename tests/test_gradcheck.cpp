// The gradcheck table: one row per differentiable op (or per interesting way of calling it),
// each checked against central finite differences in f64. A second test fails when an op is
// registered (SPEAR_REGISTER_FUNCTION) without a row here.
//
// Adding an op? Add its row: the name it registers, a generator of its inputs, and the call.
#include <doctest/doctest.h>

#include <functional>
#include <set>

#include <spear.h>

#include "spe/spe.h"
#include "tensor/kernels/kernels.h"

using namespace spear;

namespace {

using V = std::vector<Tensor>;

// An input of a row: makes a fresh tensor each time the row runs.
using Input = std::function<Tensor()>;

// Random values come from one seeded stream, so every run checks the same numbers.
Generator& table_generator() {
  static Generator gen(1234);
  return gen;
}
// A random f64 leaf that requires grad.
Input leaf(const Shape& shape) {
  return [=] { return randn(shape, f64, &table_generator()).requires_grad_(); };
}
// Values in [0.5, 2]: for log, sqrt, rsqrt and pow's base.
Input positive_leaf(const Shape& shape) {
  return
      [=] { return (rand(shape, f64, &table_generator()) * 1.5 + 0.5).detach().requires_grad_(); };
}
// A leaf whose storage is transposed: exercises strided inputs.
Input transposed_leaf(const Shape& shape) {
  return [=] {
    Tensor base = randn({shape[1], shape[0]}, f64, &table_generator());
    return kernels::transpose(base, 0, 1).requires_grad_();
  };
}
Tensor ids(std::vector<int64_t> v, const Shape& shape = {}) {
  return tensor(v, shape);
}
// An index tensor passed as an input (gradcheck skips inputs that need no gradient).
Input index_input(std::vector<int64_t> v, const Shape& shape = {}) {
  return [=] { return ids(v, shape); };
}

// SPE codes in f64 whose parameters the SPE rows pass as inputs: gradcheck perturbs them in
// place and the filter reads them. The draw is fixed, so the noise is a constant.
spe::SineSPE& sine_code() {
  static std::shared_ptr<spe::SineSPE> code = [] {
    Generator gen(5);
    auto c = std::make_shared<spe::SineSPE>(2, 3, 4, 2, /*seed=*/7, &gen);
    c->to(f64);
    return c;
  }();
  return *code;
}

// Linear attention with FAVOR+ features inside the kernel: in = {q, k, v} (.., width 3), a fixed
// projection of 5 features, a tiny eps.
Tensor favor_attention(const V& in, bool causal, const Tensor& key_padding_mask) {
  LinearAttentionOptions options;
  options.causal = causal;
  options.eps = 1e-12;
  options.feature_map = FeatureMapKind::favor;
  Generator gen(6);
  options.projection = randn({5, 3}, f64, &gen);
  return linear_attention(in[0], in[1], in[2], key_padding_mask, options);
}

struct Row {
  std::string name;  // the registered name of the op under test
  std::vector<Input> inputs;
  std::function<Tensor(const V&)> fn;
  GradcheckOptions options = {};
};

GradcheckOptions with_eps(double eps) {
  GradcheckOptions o;
  o.eps = eps;
  return o;
}

// A ConvSPE row, 1-D or 2-D: q and k are (2, N, 1, 2) leaves, the filters the code's own.
Row conv_spe_row(std::vector<int64_t> kernel_size, std::vector<int64_t> grid, int64_t n,
                 int64_t offset) {
  Generator init(5);
  auto code = std::make_shared<spe::ConvSPE>(1, 2, 3, kernel_size, grid, 17, &init);
  code->to(f64);
  code->set_draw(4);
  return {"conv_spe_filter",
          {leaf({2, n, 1, 2}), leaf({2, n, 1, 2}), [code] { return code->conv_q; },
           [code] { return code->conv_k; }},
          [code, offset](const V& in) {
            auto [qhat, khat] = code->filter(in[0], in[1], offset);
            return cat({qhat, khat}, 0);
          }};
}

const std::vector<Row>& table() {
  static const std::vector<Row> rows = {
      // ---- unary ----
      {"neg",
       {leaf({3, 4})},
       [](const V& in) { return -in[0]; }},
      {"exp",
       {leaf({3, 4})},
       [](const V& in) { return exp(in[0]); }},
      {"log",
       {positive_leaf({3, 4})},
       [](const V& in) { return log(in[0]); }},
      {"sqrt",
       {positive_leaf({3, 4})},
       [](const V& in) { return sqrt(in[0]); }},
      {"rsqrt",
       {positive_leaf({3, 4})},
       [](const V& in) { return rsqrt(in[0]); }},
      {"abs",
       {leaf({3, 4})},
       [](const V& in) { return abs(in[0]); }},
      {"sin",
       {transposed_leaf({3, 4})},
       [](const V& in) { return sin(in[0]); }},
      {"cos",
       {leaf({3, 4})},
       [](const V& in) { return cos(in[0]); }},
      {"tanh",
       {leaf({3, 4})},
       [](const V& in) { return tanh(in[0]); }},
      {"sigmoid",
       {leaf({3, 4})},
       [](const V& in) { return sigmoid(in[0]); }},
      {"relu",
       {leaf({3, 4})},
       [](const V& in) { return relu(in[0]); }},
      {"gelu",
       {transposed_leaf({3, 4})},
       [](const V& in) { return gelu(in[0]); }},
      {"elu",
       {leaf({3, 4})},
       [](const V& in) { return elu(in[0]); }},
      {"softplus",
       {leaf({3, 4})},
       [](const V& in) { return softplus(in[0]); }},
      {"erf",
       {leaf({3, 4})},
       [](const V& in) { return erf(in[0]); }},
      // ---- binary, with broadcasting and an input used twice ----
      {"add",
       {leaf({3, 1}), leaf({4})},
       [](const V& in) { return in[0] + in[1]; }},
      {"add",
       {leaf({3, 4})},
       [](const V& in) { return in[0] + in[0] * in[0]; }},
      {"sub",
       {leaf({2, 3, 4}), transposed_leaf({3, 4})},
       [](const V& in) { return in[0] - in[1]; }},
      {"mul",
       {leaf({3, 4}), leaf({1, 4})},
       [](const V& in) { return in[0] * in[1]; }},
      {"mul", {leaf({3})}, [](const V& in) { return in[0] * in[0]; }},
      {"div",
       {leaf({3, 4}), positive_leaf({3, 1})},
       [](const V& in) { return in[0] / in[1]; }},
      {"pow",
       {positive_leaf({3, 4}), leaf({4})},
       [](const V& in) { return pow(in[0], in[1]); }},
      {"pow",
       {leaf({3, 4})},
       [](const V& in) { return pow(in[0], 3.0); }},
      {"maximum",
       {leaf({3, 4}), leaf({4})},
       [](const V& in) { return maximum(in[0], in[1]); }},
      {"minimum",
       {leaf({3, 4}), leaf({3, 1})},
       [](const V& in) { return minimum(in[0], in[1]); }},
      {"where",
       {leaf({3, 4}), leaf({4})},
       [](const V& in) { return where(in[0] > in[1], in[0], in[1] * 2.0); }},
      // ---- linear algebra ----
      {"matmul",
       {leaf({3, 5}), transposed_leaf({5, 2})},
       [](const V& in) { return matmul(in[0], in[1]); }},
      {"matmul",
       {leaf({2, 1, 3, 5}), leaf({4, 5, 2})},
       [](const V& in) { return matmul(in[0], in[1]); }},
      {"matmul",
       {leaf({5}), leaf({5, 3})},
       [](const V& in) { return matmul(in[0], in[1]); }},
      {"matmul",
       {leaf({2, 3, 4}), leaf({2, 4, 3})},
       [](const V& in) { return bmm(in[0], in[1]); }},
      // ---- views and copies ----
      {"reshape",
       {transposed_leaf({3, 4})},
       [](const V& in) {
         return reshape(in[0], {2, 6});
       }},
      {"reshape",
       {leaf({3, 1, 4})},
       [](const V& in) { return unsqueeze(squeeze(flatten(in[0]), 0), 1); }},
      {"reshape",
       {leaf({3, 4})},
       [](const V& in) {
         return view(in[0], {4, 3});
       }},
      {"permute",
       {leaf({2, 3, 4})},
       [](const V& in) {
         return permute(in[0], {2, 0, 1});
       }},
      {"permute",
       {leaf({3, 4})},
       [](const V& in) { return in[0].transpose(0, 1); }},
      {"slice",
       {leaf({5, 4})},
       [](const V& in) { return slice(in[0], 0, 1, 5, 2); }},
      {"slice",
       {leaf({5, 4})},
       [](const V& in) { return narrow(in[0], 1, 1, 2) * narrow(in[0], 1, 2, 2); }},
      {"expand",
       {leaf({3, 1})},
       [](const V& in) {
         return expand(in[0], {2, 3, 4});
       }},
      {"clone",
       {transposed_leaf({3, 4})},
       [](const V& in) { return clone(in[0]) * contiguous(in[0]); }},
      {"to",
       {leaf({3, 4})},
       [](const V& in) { return in[0].to(f32).to(f64) * 2.0; },
       with_eps(1e-2)},  // linear, so a big step is exact and hides f32 rounding
      {"cat",
       {leaf({2, 3}), leaf({4, 3}), leaf({1, 3})},
       [](const V& in) {
         return cat({in[0], in[1], in[2]}, 0);
       }},
      {"cat",
       {leaf({2, 3})},
       [](const V& in) {
         return stack({in[0], in[0] * 2.0}, 1);
       }},
      {"slice",
       {leaf({2, 7})},
       [](const V& in) {
         V parts = split(in[0], 3, 1);
         V halves = chunk(in[0], 2, 0);
         return parts[0].sum() + parts[2].sum() * 2.0 + (halves[1] * halves[1]).sum();
       }},
      // ---- reductions ----
      {"sum",
       {leaf({3, 4})},
       [](const V& in) { return in[0].sum(); }},
      {"sum",
       {transposed_leaf({3, 4})},
       [](const V& in) { return sum(in[0], {-1}, true); }},
      {"sum",
       {leaf({2, 3, 4})},
       [](const V& in) {
         return sum(in[0], {0, 2});
       }},
      {"mean",
       {leaf({2, 3, 4})},
       [](const V& in) { return mean(in[0], {1}); }},
      {"mean",
       {leaf({3, 4})},
       [](const V& in) { return in[0].mean(); }},
      {"amax",
       {leaf({3, 4})},
       [](const V& in) { return amax(in[0], {1}); }},
      {"amax",
       {leaf({3, 4})},
       [](const V& in) { return in[0].max(); }},
      {"amin",
       {leaf({3, 4})},
       [](const V& in) { return amin(in[0], {0}, true); }},
      {"var",
       {leaf({3, 4})},
       [](const V& in) { return var(in[0], {1}); }},
      {"var",
       {leaf({2, 3, 4})},
       [](const V& in) {
         return var(in[0], {0, 2}, true, false);
       }},
      {"logsumexp",
       {leaf({3, 4})},
       [](const V& in) { return logsumexp(in[0], {1}); }},
      {"softmax",
       {transposed_leaf({3, 4})},
       [](const V& in) { return softmax(in[0], -1); }},
      {"softmax",
       {leaf({3, 4})},
       [](const V& in) { return softmax(in[0], 0); }},
      {"log_softmax",
       {leaf({3, 4})},
       [](const V& in) { return log_softmax(in[0], 1); }},
      {"cumsum",
       {leaf({3, 4})},
       [](const V& in) { return cumsum(in[0], 1); }},
      {"cumsum",
       {transposed_leaf({3, 4})},
       [](const V& in) { return cumsum(in[0], 0, true); }},
      // ---- indexing (the index tensors need no gradient; gradcheck skips them) ----
      {"index_select",
       {leaf({4, 3}), index_input({2, 0, 2, 3})},
       [](const V& in) { return index_select(in[0], 0, in[1]); }},
      {"index_select",
       {transposed_leaf({3, 4}), index_input({3, 3, 1})},
       [](const V& in) { return index_select(in[0], -1, in[1]); }},
      {"gather",
       {leaf({3, 4}), index_input({0, 0, 3, 1, 2, 2, 3, 0, 1}, {3, 3})},
       [](const V& in) { return gather(in[0], 1, in[1]); }},
      {"embedding",
       {leaf({5, 3}), index_input({4, 0, 4, 2, 4, 0}, {2, 3})},
       [](const V& in) { return embedding(in[0], in[1]); }},
      {"masked_fill",
       {leaf({3, 4}), index_input({1, 0, 0, 1}, {1, 4})},
       [](const V& in) { return masked_fill(in[0], in[1], -2.5); }},
      {"softmax_attention",
       {leaf({2, 5, 2, 3}), leaf({2, 5, 2, 3}), leaf({2, 5, 2, 4})},
       [](const V& in) { return softmax_attention(in[0], in[1], in[2], Tensor(), false); }},
      {"softmax_attention",
       {leaf({2, 6, 1, 3}), leaf({2, 6, 1, 3}), leaf({2, 6, 1, 2})},
       [](const V& in) {
         return softmax_attention(in[0], in[1], in[2], ids({0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0}, {2, 6}), true);
       }},
      // ---- stochastic positional encoding (a fixed draw) ----
      {"sine_spe_filter",
       {leaf({2, 5, 2, 3}), leaf({2, 5, 2, 3}), [] { return sine_code().freqs; },
        [] { return sine_code().offsets; }, [] { return sine_code().gains; }},
       [](const V& in) {
         auto [qhat, khat] = sine_code().filter(in[0], in[1], 70);
         return cat({qhat, khat}, -1);
       }},
      conv_spe_row({3}, {}, 6, 2),
      conv_spe_row({2, 2}, {3, 3}, 9, 0),
      // ---- fused layers (non-negative features for linear attention, as a feature map gives) ----
      {"linear_attention",
       {positive_leaf({2, 5, 2, 3}), positive_leaf({2, 5, 2, 3}), leaf({2, 5, 2, 4})},
       [](const V& in) { return linear_attention(in[0], in[1], in[2], false); }},
      {"linear_attention",
       {positive_leaf({1, 6, 2, 3}), positive_leaf({1, 6, 2, 3}), leaf({1, 6, 2, 2})},
       [](const V& in) { return linear_attention(in[0], in[1], in[2], true); }},
      // Raw queries and keys through the fused elu and relu maps, with a padded key.
      {"linear_attention",
       {leaf({2, 5, 2, 3}), leaf({2, 5, 2, 3}), leaf({2, 5, 2, 4})},
       [](const V& in) {
         LinearAttentionOptions options;
         options.feature_map = FeatureMapKind::elu;
         return linear_attention(in[0], in[1], in[2], ids({0, 0, 1, 0, 0, 0, 0, 0, 0, 1}, {2, 5}),
                                 options);
       }},
      {"linear_attention",
       {leaf({1, 6, 2, 3}), leaf({1, 6, 2, 3}), leaf({1, 6, 2, 2})},
       [](const V& in) {
         LinearAttentionOptions options;
         options.causal = true;
         options.feature_map = FeatureMapKind::relu;
         options.relu_eps = 0.1;
         return linear_attention(in[0], in[1], in[2], ids({0, 1, 0, 0, 0, 0}, {1, 6}), options);
       }},
      // FAVOR+ inside the kernel (5 random features of width 3), non-causal and causal with a
      // padded key. The queries' max shift is a constant to the backward, as in the composed map;
      // it cancels between numerator and denominator up to eps, so eps is tiny here.
      {"linear_attention",
       {leaf({2, 5, 2, 3}), leaf({2, 5, 2, 3}), leaf({2, 5, 2, 4})},
       [](const V& in) { return favor_attention(in, false, ids({0, 0, 1, 0, 0, 0, 0, 0, 0, 1}, {2, 5})); }},
      {"linear_attention",
       {leaf({1, 6, 2, 3}), leaf({1, 6, 2, 3}), leaf({1, 6, 2, 2})},
       [](const V& in) { return favor_attention(in, true, ids({0, 1, 0, 0, 0, 0}, {1, 6})); }},
      {"layer_norm",
       {leaf({3, 5}), leaf({5}), leaf({5})},
       [](const V& in) { return layer_norm(in[0], in[1], in[2]); }},
      {"layer_norm",
       {transposed_leaf({4, 3})},
       [](const V& in) { return layer_norm(in[0], Tensor(), Tensor(), 1e-3); }},
      // A fresh generator per call, so every evaluation of gradcheck uses the same mask.
      {"dropout",
       {leaf({4, 6})},
       [](const V& in) {
         Generator gen(3);
         return dropout(in[0], 0.4, true, &gen);
       }},
      {"cross_entropy",
       {leaf({4, 5})},
       [](const V& in) {
         return cross_entropy(in[0], ids({1, -100, 4, 0}), -100, 0.1);
       }},
  };
  return rows;
}

}  // namespace

TEST_CASE("every op in the table passes gradcheck in f64") {
  for (const Row& row : table()) {
    CAPTURE(row.name);
    GradcheckOptions options = row.options;
    options.name = row.name;
    V inputs;
    for (const Input& make : row.inputs) inputs.push_back(make());
    GradcheckResult result = gradcheck(row.fn, inputs, options);
    CHECK_MESSAGE(result.ok, result.report);
  }
}

TEST_CASE("every registered differentiable op has a row in the table") {
  std::set<std::string> rows;
  for (const Row& row : table()) rows.insert(row.name);
  std::set<std::string> registered;
  for (const std::string& name : registered_functions()) {
    registered.insert(name);
    CHECK_MESSAGE(rows.count(name), "op '", name, "' is registered but has no gradcheck row");
  }
  for (const std::string& name : rows)
    CHECK_MESSAGE(registered.count(name), "row '", name, "' names no registered op");
}
