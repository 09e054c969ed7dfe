// The raw compute layer: every op of the tensor library as a plain function on Tensors, with no
// autograd. One .cpp per family; each function documents its shapes. Inputs may be any strided
// view unless noted; outputs are new contiguous tensors. Dims may be negative (counted from the
// end); a `dims` list that is empty means every dim.
//
// Users call the differentiable versions in spear:: (autograd/ops.h), which call these.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/linear_attention_options.h"
#include "tensor/tensor.h"

namespace spear::kernels {

// ---- copy.cpp ----
Tensor contiguous(const Tensor& x);  // x itself when already contiguous
Tensor clone(const Tensor& x);       // always a fresh contiguous copy
Tensor to_dtype(const Tensor& x, DType dtype);

// ---- views.cpp (no data is copied, except by reshape when the strides forbid a view) ----
Tensor view(const Tensor& x, Shape shape);  // one size may be -1; throws if not viewable
Tensor reshape(const Tensor& x, Shape shape);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor squeeze(const Tensor& x);               // drops every size-1 dim
Tensor squeeze(const Tensor& x, int64_t dim);  // drops dim if its size is 1
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor expand(const Tensor& x, const Shape& shape);  // -1 keeps a size; new dims on the left
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
// The shape flatten gives: dims start_dim..end_dim merged into one (a 0-d shape becomes [1]).
Shape flattened_shape(const Shape& shape, int64_t start_dim, int64_t end_dim);

// ---- elementwise.cpp ----
enum class UnaryOp {
  neg,
  exp,
  log,
  sqrt,
  rsqrt,
  abs,
  sin,
  cos,
  tanh,
  sigmoid,
  relu,
  gelu,
  elu,
  softplus,
  erf
};
constexpr const char* unary_name(UnaryOp op) {
  constexpr const char* names[] = {"neg",  "exp",  "log", "sqrt",     "rsqrt",
                                   "abs",  "sin",  "cos", "tanh",     "sigmoid",
                                   "relu", "gelu", "elu", "softplus", "erf"};
  return names[static_cast<int>(op)];
}
// x: any floating shape -> same shape. gelu is the exact erf form; elu has alpha 1;
// softplus is log(1 + e^x) with PyTorch's threshold 20 (x above it returns x).
Tensor unary(UnaryOp op, const Tensor& x);
// x, y = unary(op, x), grad: S -> grad * op'(x), in one pass (the backward of every unary op).
Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& grad);

enum class BinaryOp { add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge };
constexpr const char* binary_name(BinaryOp op) {
  constexpr const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                   "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
  return names[static_cast<int>(op)];
}
// a, b: shapes that broadcast, same dtype -> broadcast shape. Comparisons give 1 or 0 in the
// inputs' dtype (spear has no bool dtype; masks are "non-zero means true").
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
// cond, a, b broadcast together; cond of any dtype, non-zero picks a.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- reduce.cpp ----
// Reductions run in a fixed order that does not depend on the thread count.
// x: (..) -> the reduced dims removed (kept as size 1 with keepdim).
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);  // -> i64, first maximum
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);  // -> i64, first minimum
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false,
           bool unbiased = true);
// Sums `grad` down to `shape` (the inverse of broadcasting `shape` up to grad's shape).
Tensor sum_to(const Tensor& grad, const Shape& shape);

// ---- softmax.cpp ----
// x: (..., N, ...) -> same shape, normalised along dim. Max-subtracted, so large logits are safe.
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);

// ---- scan.cpp ----
// x: (..., N, ...) -> same shape; y[i] = x[0] + ... + x[i] along dim, or x[i] + ... + x[N-1]
// when reverse.
Tensor cumsum(const Tensor& x, int64_t dim, bool reverse = false);

// ---- matmul.cpp ----
// a: (M, K), b: (K, N) -> (M, N); with more dims, the leading (batch) dims broadcast:
// a: (..., M, K), b: (..., K, N) -> (..., M, N). A 1-d operand is a vector, as in PyTorch.
Tensor matmul(const Tensor& a, const Tensor& b);
// a: (B, M, K), b: (B, K, N) -> (B, M, N), no broadcasting.
Tensor bmm(const Tensor& a, const Tensor& b);

// ---- index.cpp ----
// x: (.., S, ..) along dim, index: (L) i64 -> (.., L, ..)
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// x: (..), index: same rank as x, i64 -> index's shape; out[i][j] = x[i][index[i][j]] along dim.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// weight: (V, C), ids: any shape, i64 in [0, V) -> ids.shape + (C)
Tensor embedding(const Tensor& weight, const Tensor& ids);
// x, mask broadcast to x's shape; non-zero mask positions become value.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// ids: any shape, i64 in [0, num_classes) -> ids.shape + (num_classes)
Tensor one_hot(const Tensor& ids, int64_t num_classes, DType dtype = f32);
// The adjoints of index_select and gather: zeros(shape) with src added where the ids point;
// repeated ids accumulate, in a fixed order.
// src: (.., L, ..) along dim, index: (L) i64 -> shape (.., S, ..);
// out[.., index[l], ..] += src[.., l, ..]
Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);
// index, src: one shape of the rank of `shape` -> shape; for dim=1,
// out[i][index[i][j][k]][k] += src[i][j][k].
Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);

// ---- linear_attention.cpp ----
// q, k: (B, N, H, F) raw queries and keys, v: (B, N, H, M), key_padding_mask: (B, N) non-zero at
// padded keys, or undefined -> {y: (B, N, H, M), sums: (B, H, F, M + 1)} with
// y_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i) . sum_j phi(k_j) + eps), sums over every
// unpadded j, or over j <= i when causal; phi = options.feature_map, applied inside the kernel.
// `sums` holds S = sum_j phi(k_j) v_j^T (first M columns) and z = sum_j phi(k_j) (last column)
// over the whole sequence. Memory O(N (F + M)) per (batch, head), forward and backward.
std::vector<Tensor> linear_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                     const Tensor& key_padding_mask,
                                     const LinearAttentionOptions& options);
// -> {dq, dk, dv} for an output gradient `grad` (B, N, H, M). `sums`, the forward's, spares the
// non-causal backward a pass over the keys; undefined, it is recomputed.
std::vector<Tensor> linear_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const Tensor& key_padding_mask, const Tensor& sums,
                                              const Tensor& grad,
                                              const LinearAttentionOptions& options);

// ---- softmax_attention.cpp ----
// q, k: (B, N, H, D), v: (B, N, H, M), key_padding_mask: (B, N) non-zero at padded keys, or
// undefined -> {y: (B, N, H, M), lse: (B, H, N)}: softmax(q k^T / sqrt(D)) v over the keys each
// query may see (j <= i when causal), in tiles: memory O(N (D + M)) per (batch, head), never
// N x N. lse is each query's log-sum-exp (-inf, and y = 0, for a query that sees no key).
std::vector<Tensor> softmax_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                      const Tensor& key_padding_mask, bool causal);
// -> {dq, dk, dv} for an output gradient `grad`, recomputing the probabilities from lse.
std::vector<Tensor> softmax_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                               const Tensor& key_padding_mask, bool causal,
                                               const Tensor& y, const Tensor& lse,
                                               const Tensor& grad);

// ---- join.cpp ----
// Tensors that agree except along dim -> concatenated along dim.
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
// Tensors of one shape S -> a new dim of size xs.size() at position dim.
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
// Views of x of `size` along dim (the last may be smaller).
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim);
// x into `chunks` views along dim of ceil(S / chunks) each (the last may be smaller).
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);

// ---- norm.cpp ----
// Layer normalisation over the last dim: y = (x - mean) * rstd * weight + bias, with
// rstd = 1 / sqrt(var + eps) (biased variance). mean and rstd are kept for the backward pass.
struct LayerNormResult {
  Tensor y;     // x's shape
  Tensor mean;  // x's shape without the last dim
  Tensor rstd;  // likewise
};
// x: (..., C), weight: (C), bias: (C) -> y: (..., C), mean: (...), rstd: (...)
LayerNormResult layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
struct LayerNormGrads {
  Tensor dx, dweight, dbias;
};
// grad, x: (..., C), weight: (C), mean, rstd: (...) from layer_norm -> dx: (..., C), dweight: (C),
// dbias: (C). dweight and dbias sum over rows in an order fixed by the shape alone.
LayerNormGrads layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                                   const Tensor& mean, const Tensor& rstd);

// ---- loss.cpp ----
// Cross-entropy of softmax(logits) against class ids, averaged over the targets that are not
// ignore_index, with PyTorch's label smoothing. The classes are the LAST dim (PyTorch puts them in
// dim 1 for inputs of more than 2 dims). Every target ignored gives 0 / 0 = NaN, as in PyTorch.
struct CrossEntropyResult {
  Tensor loss;       // 0-d
  Tensor logsumexp;  // one per row, kept for the backward pass
};
// logits: (..., C), targets: (...) i64 in [0, C) or == ignore_index -> loss: (), logsumexp: (...)
CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                                 double label_smoothing);
// grad: (), logits: (..., C), targets, logsumexp: (...) -> dlogits: (..., C)
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& targets,
                              const Tensor& logsumexp, int64_t ignore_index,
                              double label_smoothing);

}  // namespace spear::kernels
