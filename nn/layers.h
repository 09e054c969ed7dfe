// The basic layers. Each is a Module with PyTorch's parameter names, shapes and default
// initialisation, and a forward(x). Shapes: B batch, N positions, C channels.
#pragma once
#include <memory>

#include "autograd/ops.h"
#include "nn/module.h"
#include "tensor/random.h"

namespace spear::nn {

// x: (..., in) -> x @ weight^T + bias: (..., out); weight (out, in), bias (out).
// Init as PyTorch: weight and bias U(-1/sqrt(in), 1/sqrt(in)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;  // bias is undefined without one

 protected:
  std::string extra_repr() const override;

 private:
  int64_t in_features_, out_features_;
};

// ids: (...) i64 -> weight[ids]: (..., dim); weight (num, dim) ~ N(0, 1) as in PyTorch.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator* gen = nullptr);
  Tensor forward(const Tensor& ids) const;
  Tensor weight;

 protected:
  std::string extra_repr() const override;
};

// x: (..., C) -> normalised over C, then * weight + bias; weight ones, bias zeros.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;

 protected:
  std::string extra_repr() const override;

 private:
  double eps_;
};

// x: S -> x with each element zeroed with probability p and the rest scaled by 1/(1-p) while
// training; x itself in eval mode. Draws from `gen` (the default generator when null).
class Dropout : public Module {
 public:
  explicit Dropout(double p, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) const;
  double p() const { return p_; }

 protected:
  std::string extra_repr() const override;

 private:
  double p_;
  Generator* gen_;
};

enum class Activation { relu, gelu };
Activation activation_from_name(const std::string& name);  // "relu" | "gelu"
Tensor activate(Activation a, const Tensor& x);

// x: (..., C) -> fc2(dropout(act(fc1(x)))): (..., C), hidden width `hidden`.
class FeedForward : public Module {
 public:
  FeedForward(int64_t dim, int64_t hidden, Activation activation = Activation::gelu,
              double dropout = 0.0, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) const;
  std::shared_ptr<Linear> fc1, fc2;
  std::shared_ptr<Dropout> drop;

 private:
  Activation activation_;
};

// a, b: S -> mean((a - b)^2): (); composed from differentiable ops.
Tensor mse_loss(const Tensor& a, const Tensor& b);

}  // namespace spear::nn
