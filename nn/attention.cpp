#include "nn/attention.h"

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

namespace spear::nn {
namespace {

// The score given to a key a query may not see. Finite on purpose: a row in which every key is
// blocked would turn -inf into NaN in softmax (-inf - (-inf)), forward and backward. With this
// value such a row gets uniform weights, which the attention then zeroes (see below). e^(lowest -
// m) is exactly 0 in double, so ordinary rows give blocked keys exactly zero weight, as -inf does.
constexpr double kBlocked = std::numeric_limits<float>::lowest();

}  // namespace

// q, k: (B,N,H,D), v: (B,N,H,M), key_padding_mask: (B,N) or undefined -> out: (B,N,H,M)
Tensor SoftmaxAttention::forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                 const Tensor& key_padding_mask, bool causal) const {
  SPEAR_CHECK_SHAPE(q.dim() == 4 && q.shape() == k.shape() && v.dim() == 4 &&
                        v.size(0) == q.size(0) && v.size(1) == q.size(1) && v.size(2) == q.size(2),
                    "softmax_attention: expected q, k (B, N, H, D) and v (B, N, H, M), got q ",
                    q.shape(), ", k ", k.shape(), ", v ", v.shape());
  const int64_t B = q.size(0), N = q.size(1);
  const Shape mask_shape = {B, N};
  SPEAR_CHECK_SHAPE(!key_padding_mask.defined() || key_padding_mask.shape() == mask_shape,
                    "softmax_attention: key_padding_mask ",
                    key_padding_mask.defined() ? key_padding_mask.shape() : Shape(),
                    " does not match (B, N) = ", mask_shape);
  if (fused_) return softmax_attention(q, k, v, key_padding_mask, causal);

  // Heads move next to the batch so each (b, h) is one matrix product. The scale is 1/sqrt of the
  // width the kernel sees: R, not D, after an encoding that changes it (as SPE's reference does).
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  Tensor qh = q.permute({0, 2, 1, 3});     // (B,H,N,D)
  Tensor kt = k.permute({0, 2, 3, 1});     // (B,H,D,N)
  Tensor vh = v.permute({0, 2, 1, 3});     // (B,H,N,M)
  Tensor scores = matmul(qh, kt) * scale;  // (B,H,N,N)

  // Masks broadcast over (B,H,N,N): causal (N,N) is 1 where key j lies after query i; padding
  // (B,1,1,N) is non-zero at padded keys.
  std::vector<Tensor> blocked;
  if (causal) blocked.push_back(arange(N).reshape({1, N}) > arange(N).reshape({N, 1}));
  if (key_padding_mask.defined()) blocked.push_back(key_padding_mask.reshape({B, 1, 1, N}));
  for (const Tensor& mask : blocked) scores = masked_fill(scores, mask, kBlocked);
  Tensor weights = softmax(scores, -1);
  // A query that may see no key at all (every key it could see is padding) attends to nothing and
  // outputs zeros, where PyTorch gives NaN; zeroing its weights also zeroes its gradient.
  // Ordinary rows are unchanged: their blocked weights are already 0. Without padding every query
  // sees at least itself.
  if (key_padding_mask.defined())
    for (const Tensor& mask : blocked) weights = masked_fill(weights, mask, 0.0);
  return matmul(weights, vh).permute({0, 2, 1, 3});  // (B,N,H,M)
}

// q, k: (B,1,H,D), v: (B,1,H,M), state {K: (B,T,H,D), V: (B,T,H,M)} -> (B,1,H,M)
Tensor SoftmaxAttention::forward_step(const Tensor& q, const Tensor& k, const Tensor& v,
                                      DecodeState& state) const {
  if (state.tensors.empty()) {
    state.tensors = {k, v};
  } else {
    state.tensors = {cat({state.tensors[0], k}, 1), cat({state.tensors[1], v}, 1)};
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  Tensor scores = matmul(q.permute({0, 2, 1, 3}), state.tensors[0].permute({0, 2, 3, 1})) * scale;
  Tensor weights = softmax(scores, -1);  // (B,H,1,T)
  return matmul(weights, state.tensors[1].permute({0, 2, 1, 3})).permute({0, 2, 1, 3});
}

RotaryEncoding::RotaryEncoding(double base) : QKEncoding("RotaryEncoding"), base_(base) {
  SPEAR_CHECK_T(ConfigError, base > 0.0, "RotaryEncoding: base must be positive, got ", base);
}

// q, k: (B,N,H,D) at positions offset .. offset+N-1 -> rotated q, k: (B,N,H,D)
std::pair<Tensor, Tensor> RotaryEncoding::forward(const Tensor& q, const Tensor& k,
                                                  int64_t offset) const {
  SPEAR_CHECK_SHAPE(q.dim() == 4 && q.shape() == k.shape(),
                    "rotary_encoding: expected q and k of one shape (B, N, H, D), got q ",
                    q.shape(), ", k ", k.shape());
  const int64_t N = q.size(1), D = q.size(3);
  SPEAR_CHECK_SHAPE(D % 2 == 0, "rotary_encoding: head width D = ", D,
                    " must be even (RoPE rotates pairs of features), q ", q.shape());

  // Pair i at position p = offset + n turns by theta = p * base^(-2i/D). Elementwise, that is
  //   x'[2i]   = x[2i]   cos theta - x[2i+1] sin theta
  //   x'[2i+1] = x[2i+1] cos theta + x[2i]   sin theta
  // i.e. x' = x * cos_table + swap_pairs(x) * sin_table, with the sign folded into sin_table.
  // The angles are computed in double: positions in the thousands times f32 rounding would
  // already move them by ~1e-4 radians.
  std::vector<double> cos_table(N * D), sin_table(N * D);
  std::vector<int64_t> swap(D);
  for (int64_t i = 0; i < D / 2; ++i) {
    const double freq = std::pow(base_, -2.0 * static_cast<double>(i) / static_cast<double>(D));
    for (int64_t p = 0; p < N; ++p) {
      const double theta = static_cast<double>(offset + p) * freq;
      cos_table[p * D + 2 * i] = cos_table[p * D + 2 * i + 1] = std::cos(theta);
      sin_table[p * D + 2 * i] = -std::sin(theta);
      sin_table[p * D + 2 * i + 1] = std::sin(theta);
    }
    swap[2 * i] = 2 * i + 1;
    swap[2 * i + 1] = 2 * i;
  }
  const Tensor c = tensor(cos_table, {N, 1, D}).to(q.dtype());  // broadcasts over B and H
  const Tensor s = tensor(sin_table, {N, 1, D}).to(q.dtype());
  const Tensor pairs = tensor(swap);
  auto rotate = [&](const Tensor& x) { return x * c + index_select(x, 3, pairs) * s; };
  return {rotate(q), rotate(k)};
}

std::string RotaryEncoding::extra_repr() const {
  return str_cat("base=", base_);
}

MultiheadAttention::MultiheadAttention(int64_t dim, int64_t heads,
                                       std::shared_ptr<AttentionKernel> attention,
                                       std::shared_ptr<QKEncoding> encoding, Generator* gen)
    : Module("MultiheadAttention"), dim_(dim), heads_(heads) {
  SPEAR_CHECK_T(ConfigError, dim > 0 && heads > 0 && dim % heads == 0, "MultiheadAttention: dim ",
                dim, " must be a positive multiple of heads ", heads);
  SPEAR_CHECK_T(ConfigError, attention != nullptr,
                "MultiheadAttention: the attention kernel is null");
  q_proj = register_module("q_proj", std::make_shared<Linear>(dim, dim, true, gen));
  k_proj = register_module("k_proj", std::make_shared<Linear>(dim, dim, true, gen));
  v_proj = register_module("v_proj", std::make_shared<Linear>(dim, dim, true, gen));
  out_proj = register_module("out_proj", std::make_shared<Linear>(dim, dim, true, gen));
  kernel = register_module("kernel", std::move(attention));
  if (encoding) qk_encoding = register_module("qk_encoding", std::move(encoding));
}

// x: (B,N,C), key_padding_mask: (B,N) or undefined -> (B,N,C)
Tensor MultiheadAttention::forward(const Tensor& x, const Tensor& key_padding_mask, bool causal,
                                   int64_t offset) const {
  SPEAR_CHECK_SHAPE(x.dim() == 3 && x.size(2) == dim_, "multihead_attention: expected x (B, N, ",
                    dim_, "), got ", x.shape());
  const int64_t B = x.size(0), N = x.size(1), D = dim_ / heads_;
  auto split_heads = [&](const Tensor& t) { return t.reshape({B, N, heads_, D}); };
  Tensor q = split_heads(q_proj->forward(x));  // (B,N,H,D)
  Tensor k = split_heads(k_proj->forward(x));
  Tensor v = split_heads(v_proj->forward(x));
  if (qk_encoding) std::tie(q, k) = qk_encoding->forward(q, k, offset);  // (B,N,H,R)
  Tensor out = kernel->forward(q, k, v, key_padding_mask, causal);       // (B,N,H,D)
  return out_proj->forward(out.reshape({B, N, dim_}));
}

// x: (B,1,C) -> (B,1,C)
Tensor MultiheadAttention::forward_step(const Tensor& x, DecodeState& state, int64_t offset) const {
  SPEAR_CHECK_SHAPE(x.dim() == 3 && x.size(1) == 1 && x.size(2) == dim_,
                    "multihead_attention step: expected x (B, 1, ", dim_, "), got ", x.shape());
  const int64_t B = x.size(0), D = dim_ / heads_;
  auto split_heads = [&](const Tensor& t) { return t.reshape({B, 1, heads_, D}); };
  Tensor q = split_heads(q_proj->forward(x));
  Tensor k = split_heads(k_proj->forward(x));
  Tensor v = split_heads(v_proj->forward(x));
  if (qk_encoding) std::tie(q, k) = qk_encoding->forward(q, k, offset);
  Tensor out = kernel->forward_step(q, k, v, state);  // (B,1,H,D)
  return out_proj->forward(out.reshape({B, 1, dim_}));
}

std::string MultiheadAttention::extra_repr() const {
  return str_cat("dim=", dim_, ", heads=", heads_);
}

}  // namespace spear::nn
