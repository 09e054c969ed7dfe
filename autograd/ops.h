// The public, differentiable op API: spear::exp(x), spear::matmul(a, b), a + b, ...
//
// Each op records itself in the autograd graph when grad mode is on and an input requires grad
// (see autograd/function.h). The definitions live in autograd/functions/, one file per family,
// each op's Function (forward and backward side by side) next to its public function.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/linear_attention_options.h"
#include "tensor/tensor.h"

namespace spear {

// ---- Copies and dtype ----
Tensor clone(const Tensor& x);
Tensor contiguous(const Tensor& x);
Tensor to(const Tensor& x, DType dtype);

// ---- Views ----
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor view(const Tensor& x, const Shape& shape);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor squeeze(const Tensor& x);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);

// ---- Joins ----
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);

// ---- Elementwise ----
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);
Tensor elu(const Tensor& x);
Tensor softplus(const Tensor& x);
Tensor erf(const Tensor& x);

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& x, double exponent);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// Operators: tensor with tensor, or with a scalar (converted to the tensor's dtype).
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator==(const Tensor& a, const Tensor& b);
Tensor operator!=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);

// ---- Reductions (dims empty = all dims) ----
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false,
           bool unbiased = true);
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor cumsum(const Tensor& x, int64_t dim, bool reverse = false);

// ---- Linear algebra ----
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor bmm(const Tensor& a, const Tensor& b);

// ---- Indexing ----
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor embedding(const Tensor& weight, const Tensor& ids);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
Tensor one_hot(const Tensor& ids, int64_t num_classes, DType dtype = f32);

// ---- Fused layers ----
// One kernel each way, with a hand-written backward; each equals a composition of the ops above.
class Generator;  // tensor/random.h

// x: (..., C), weight, bias: (C) -> (x - mean) / sqrt(var + eps) * weight + bias over the last dim
// (biased var, as in PyTorch). An undefined weight or bias means none.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// x: S -> x * mask / (1 - p): S, each mask element 1 with probability 1 - p, drawn from gen (the
// default generator when null). x itself when !training or p == 0; zeros when p == 1.
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);
// logits: (..., C), targets: (...) i64 -> (): the mean over targets != ignore_index of
// -log softmax(logits)[target], label-smoothed as in PyTorch. Classes are the LAST dim (PyTorch
// uses dim 1 for inputs of more than 2 dims). NaN when every target is ignored (0 / 0).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100,
                     double label_smoothing = 0.0);

// q, k: (B, N, H, F) non-negative features, v: (B, N, H, M) -> (B, N, H, M):
// y_i = q_i^T (sum_j k_j v_j^T) / (q_i . sum_j k_j + eps), over all j, or j <= i when causal.
// Fused: memory O(N (F + M)) per (batch, head) forward and backward, even when causal.
Tensor linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                        double eps = 1e-6);
// The same with the feature map applied inside (q, k raw; phi = options.feature_map), and a
// key_padding_mask (B, N), non-zero at padded keys, or undefined: padded keys leave both sums.
Tensor linear_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& key_padding_mask, const LinearAttentionOptions& options);
// q, k: (B, N, H, D), v: (B, N, H, M), key_padding_mask: (B, N) non-zero at padding, or
// undefined -> softmax(q k^T / sqrt(D)) v: (B, N, H, M), over keys j <= i when causal. Fused and
// tiled: memory O(N (D + M)) per (batch, head), never N x N. A query seeing no key gives zeros.
Tensor softmax_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& key_padding_mask, bool causal);

}  // namespace spear
