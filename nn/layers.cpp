#include "nn/layers.h"

#include <cmath>

#include "nn/init.h"

namespace spear::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool has_bias, Generator* gen)
    : Module("Linear"), in_features_(in_features), out_features_(out_features) {
  SPEAR_CHECK_SHAPE(in_features > 0 && out_features > 0, "Linear: sizes must be positive, got in ",
                    in_features, ", out ", out_features);
  weight = register_parameter("weight", empty({out_features, in_features}));
  init::kaiming_uniform_(weight, std::sqrt(5.0), gen);
  if (has_bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    bias = register_parameter("bias", empty({out_features}));
    init::uniform_(bias, -bound, bound, gen);
  }
}

Tensor Linear::forward(const Tensor& x) const {
  SPEAR_CHECK_SHAPE(x.dim() >= 1 && x.size(-1) == in_features_, "linear: input last dim ",
                    x.dim() ? x.size(-1) : 0, " != in_features ", in_features_, " (input ",
                    x.shape(), ", weight ", weight.shape(), ")");
  Tensor y = matmul(x, weight.transpose(0, 1));
  return bias.defined() ? y + bias : y;
}

std::string Linear::extra_repr() const {
  return str_cat("in_features=", in_features_, ", out_features=", out_features_,
                 ", bias=", bias.defined() ? "true" : "false");
}

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator* gen)
    : Module("Embedding") {
  SPEAR_CHECK_SHAPE(num_embeddings > 0 && embedding_dim > 0,
                    "Embedding: sizes must be positive, got ", num_embeddings, " x ",
                    embedding_dim);
  weight = register_parameter("weight", empty({num_embeddings, embedding_dim}));
  init::normal_(weight, 0.0, 1.0, gen);
}

Tensor Embedding::forward(const Tensor& ids) const {
  return embedding(weight, ids);
}

std::string Embedding::extra_repr() const {
  return str_cat(weight.size(0), ", ", weight.size(1));
}

LayerNorm::LayerNorm(int64_t dim, double eps) : Module("LayerNorm"), eps_(eps) {
  SPEAR_CHECK_SHAPE(dim > 0, "LayerNorm: dim must be positive, got ", dim);
  weight = register_parameter("weight", ones({dim}));
  bias = register_parameter("bias", zeros({dim}));
}

Tensor LayerNorm::forward(const Tensor& x) const {
  return layer_norm(x, weight, bias, eps_);
}

std::string LayerNorm::extra_repr() const {
  return str_cat(weight.size(0), ", eps=", eps_);
}

Dropout::Dropout(double p, Generator* gen) : Module("Dropout"), p_(p), gen_(gen) {
  SPEAR_CHECK_T(ConfigError, p >= 0.0 && p < 1.0, "Dropout: p must be in [0, 1), got ", p);
}

Tensor Dropout::forward(const Tensor& x) const {
  return dropout(x, p_, is_training(), gen_);
}

std::string Dropout::extra_repr() const {
  return str_cat("p=", p_);
}

Activation activation_from_name(const std::string& name) {
  if (name == "relu") return Activation::relu;
  if (name == "gelu") return Activation::gelu;
  throw ConfigError(str_cat("unknown activation '", name, "' (expected relu or gelu)"));
}

Tensor activate(Activation a, const Tensor& x) {
  return a == Activation::relu ? relu(x) : gelu(x);
}

FeedForward::FeedForward(int64_t dim, int64_t hidden, Activation activation, double dropout_p,
                         Generator* gen)
    : Module("FeedForward"), activation_(activation) {
  fc1 = register_module("fc1", std::make_shared<Linear>(dim, hidden, true, gen));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, dim, true, gen));
  drop = register_module("drop", std::make_shared<Dropout>(dropout_p, gen));
}

Tensor FeedForward::forward(const Tensor& x) const {
  return fc2->forward(drop->forward(activate(activation_, fc1->forward(x))));
}

Tensor mse_loss(const Tensor& a, const Tensor& b) {
  SPEAR_CHECK_SHAPE(a.shape() == b.shape(), "mse_loss: shapes differ: ", a.shape(), " and ",
                    b.shape());
  Tensor d = a - b;
  return (d * d).mean();
}

}  // namespace spear::nn
