#include "nn/linear_attention.h"

#include <cmath>
#include <vector>

#include "autograd/grad_mode.h"

namespace spear::nn {

Tensor EluFeatureMap::forward(const Tensor& x, bool) const {
  return elu(x) + 1.0;
}

bool EluFeatureMap::fuse_into(LinearAttentionOptions& options) const {
  options.feature_map = FeatureMapKind::elu;
  return true;
}

ReluFeatureMap::ReluFeatureMap(double epsilon) : FeatureMap("ReluFeatureMap"), epsilon_(epsilon) {
  SPEAR_CHECK_T(ConfigError, epsilon > 0, "ReluFeatureMap: epsilon must be positive, got ", epsilon,
                " (features must stay > 0 for the denominator)");
}

Tensor ReluFeatureMap::forward(const Tensor& x, bool) const {
  return relu(x) + epsilon_;
}

bool ReluFeatureMap::fuse_into(LinearAttentionOptions& options) const {
  options.feature_map = FeatureMapKind::relu;
  options.relu_eps = epsilon_;
  return true;
}

std::string ReluFeatureMap::extra_repr() const {
  return str_cat("epsilon=", epsilon_);
}

FavorFeatureMap::FavorFeatureMap(int64_t head_dim, int64_t num_features, int64_t redraw_interval,
                                 uint64_t seed, bool redraw_in_eval)
    : FeatureMap("FavorFeatureMap"),
      redraw_interval_(redraw_interval),
      redraw_in_eval_(redraw_in_eval) {
  SPEAR_CHECK_T(ConfigError, head_dim > 0 && num_features > 0,
                "FavorFeatureMap: head_dim and num_features must be positive, got ", head_dim,
                " and ", num_features);
  SPEAR_CHECK_T(ConfigError, redraw_interval >= 0,
                "FavorFeatureMap: redraw_interval must be >= 0 (0 = never), got ", redraw_interval);
  projection = register_buffer("projection", zeros({num_features, head_dim}));
  rng_state_ =
      register_buffer("rng_state", tensor(std::vector<int64_t>{static_cast<int64_t>(seed), 0}));
  calls_ = register_buffer("calls", zeros({}, i64));
  redraw();
}

void FavorFeatureMap::redraw() {
  const int64_t m = projection.size(0), d = projection.size(1);
  std::vector<int64_t> state = rng_state_.to_vector<int64_t>();
  Generator gen(static_cast<uint64_t>(state[0]));
  gen.set_state(static_cast<uint64_t>(state[0]), static_cast<uint64_t>(state[1]));
  std::vector<double> w(static_cast<size_t>(m * d));
  for (int64_t block = 0; block * d < m; ++block) {
    // Orthonormal rows from a Gaussian block by modified Gram-Schmidt (the Q of a QR).
    std::vector<double> g = randn({d, d}, f64, &gen).to_vector<double>();
    for (int64_t i = 0; i < d; ++i) {
      double* row = &g[i * d];
      for (int64_t j = 0; j < i; ++j) {
        const double* prev = &g[j * d];
        double dot = 0;
        for (int64_t c = 0; c < d; ++c) dot += row[c] * prev[c];
        for (int64_t c = 0; c < d; ++c) row[c] -= dot * prev[c];
      }
      double norm = 0;
      for (int64_t c = 0; c < d; ++c) norm += row[c] * row[c];
      for (int64_t c = 0; c < d; ++c) row[c] /= std::sqrt(norm);
    }
    // Each row gets the length of an independent Gaussian vector: chi(D), as N(0, I_D) has.
    std::vector<double> lengths = randn({d, d}, f64, &gen).to_vector<double>();
    for (int64_t i = 0; i < d && block * d + i < m; ++i) {
      double len = 0;
      for (int64_t c = 0; c < d; ++c) len += lengths[i * d + c] * lengths[i * d + c];
      for (int64_t c = 0; c < d; ++c) w[(block * d + i) * d + c] = g[i * d + c] * std::sqrt(len);
    }
  }
  NoGradGuard no_grad;
  projection.copy_(tensor(w, {m, d}));
  rng_state_.copy_(tensor(std::vector<int64_t>{state[0], static_cast<int64_t>(gen.offset())}));
}

void FavorFeatureMap::before_forward() {
  if (!is_training() && !redraw_in_eval_) return;
  const int64_t calls = calls_.item<int64_t>();
  if (redraw_interval_ > 0 && calls > 0 && calls % redraw_interval_ == 0) redraw();
  calls_.fill_(static_cast<double>(calls + 1));
}

Tensor FavorFeatureMap::forward(const Tensor& x, bool is_query) const {
  const int64_t d = projection.size(1), m = projection.size(0);
  SPEAR_CHECK_SHAPE(x.dim() >= 1 && x.size(-1) == d, "FavorFeatureMap: input width ",
                    x.dim() ? x.size(-1) : 0, " != head_dim ", d, " (input ", x.shape(), ")");
  Tensor xh = x * std::pow(static_cast<double>(d), -0.25);          // x^ = x D^(-1/4)
  Tensor u = matmul(xh, projection.to(x.dtype()).transpose(0, 1));  // (..., m): w . x^
  Tensor logits = u - sum(xh * xh, {-1}, true) * 0.5;
  if (is_query) logits = logits - amax(logits, {-1}, true).detach();
  return exp(logits) * (1.0 / std::sqrt(static_cast<double>(m)));
}

bool FavorFeatureMap::fuse_into(LinearAttentionOptions& options) const {
  options.feature_map = FeatureMapKind::favor;
  options.projection = projection;
  return true;
}

std::string FavorFeatureMap::extra_repr() const {
  return str_cat("head_dim=", projection.size(1), ", features=", projection.size(0),
                 ", redraw_interval=", redraw_interval_);
}

std::shared_ptr<FeatureMap> make_feature_map(const std::string& name, int64_t head_dim,
                                             int64_t num_features, int64_t redraw_interval,
                                             uint64_t seed) {
  if (name == "elu") return std::make_shared<EluFeatureMap>();
  if (name == "relu") return std::make_shared<ReluFeatureMap>();
  if (name == "favor")
    return std::make_shared<FavorFeatureMap>(head_dim, num_features > 0 ? num_features : head_dim,
                                             redraw_interval, seed);
  throw ConfigError(str_cat("unknown feature map '", name, "' (expected elu, relu or favor)"));
}

LinearAttention::LinearAttention(std::shared_ptr<FeatureMap> map, double eps, bool fused)
    : AttentionKernel("LinearAttention"), eps_(eps), fused_(fused) {
  feature_map = register_module("feature_map", std::move(map));
}

Tensor LinearAttention::forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& key_padding_mask, bool causal) const {
  feature_map->before_forward();
  LinearAttentionOptions options;
  options.causal = causal;
  options.eps = eps_;
  if (fused_ && feature_map->fuse_into(options)) {
    if (options.projection.defined()) options.projection = options.projection.to(q.dtype());
    return linear_attention(q, k, v, key_padding_mask, options);
  }
  Tensor phi_q = feature_map->forward(q, true);
  Tensor phi_k = feature_map->forward(k, false);
  if (fused_) return linear_attention(phi_q, phi_k, v, key_padding_mask, options);
  if (key_padding_mask.defined()) {
    // (B, N) non-zero at padding -> keep (B, N, 1, 1): padded keys leave both sums.
    Tensor keep = eq(key_padding_mask.to(phi_k.dtype()), zeros({}, phi_k.dtype()));
    phi_k = phi_k * keep.unsqueeze(-1).unsqueeze(-1);
  }
  return linear_attention_composed(phi_q, phi_k, v, causal, eps_);
}

// q, k: (B,1,H,D), v: (B,1,H,M), state {S: (B,H,F,M), z: (B,H,F)} -> (B,1,H,M)
Tensor LinearAttention::forward_step(const Tensor& q, const Tensor& k, const Tensor& v,
                                     DecodeState& state) const {
  Tensor phi_q = feature_map->forward(q, true).squeeze(1);   // (B,H,F)
  Tensor phi_k = feature_map->forward(k, false).squeeze(1);  // (B,H,F)
  Tensor vt = v.squeeze(1);                                  // (B,H,M)
  Tensor outer = phi_k.unsqueeze(-1) * vt.unsqueeze(-2);     // (B,H,F,M)
  if (state.tensors.empty())
    state.tensors = {outer, phi_k};
  else
    state.tensors = {state.tensors[0] + outer, state.tensors[1] + phi_k};
  Tensor num = matmul(phi_q.unsqueeze(-2), state.tensors[0]).squeeze(-2);  // (B,H,M)
  Tensor den = sum(phi_q * state.tensors[1], {-1}, true) + eps_;           // (B,H,1)
  return (num / den).unsqueeze(1);
}

std::string LinearAttention::extra_repr() const {
  return str_cat("eps=", eps_, fused_ ? ", fused" : ", composed");
}

Tensor linear_attention_composed(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v,
                                 bool causal, double eps) {
  if (!causal) {
    Tensor q = phi_q.permute({0, 2, 1, 3}), k = phi_k.permute({0, 2, 1, 3});  // (B, H, N, F)
    Tensor kv = matmul(k.transpose(-1, -2), v.permute({0, 2, 1, 3}));         // (B, H, F, M)
    Tensor den = matmul(q, sum(k, {2}, true).transpose(-1, -2)) + eps;        // (B, H, N, 1)
    return (matmul(q, kv) / den).permute({0, 2, 1, 3});
  }
  Tensor state = cumsum(phi_k.unsqueeze(-1) * v.unsqueeze(-2), 1);  // (B, N, H, F, M)
  Tensor num = sum(phi_q.unsqueeze(-1) * state, {-2});
  Tensor den = sum(phi_q * cumsum(phi_k, 1), {-1}, true) + eps;
  return num / den;
}

}  // namespace spear::nn
