// Positional encodings added to the token embeddings (absolute positions). Encodings that act on
// queries and keys instead (RoPE, SPE) are QKEncodings (nn/attention.h).
#pragma once
#include <string>

#include "nn/module.h"
#include "tensor/random.h"

namespace spear::nn {

class PositionalEncoding : public Module {
 public:
  using Module::Module;
  // x: (B, N, C) at positions offset .. offset + N - 1 -> x plus the encoding: (B, N, C).
  virtual Tensor forward(const Tensor& x, int64_t offset = 0) const = 0;
};

// The fixed sinusoids of Vaswani et al.: pe[p, 2i] = sin(p / 10000^(2i/C)), pe[p, 2i+1] = cos(...).
// Works at any length (computed on the fly, no table to outgrow).
class SinusoidalEncoding : public PositionalEncoding {
 public:
  explicit SinusoidalEncoding(int64_t dim);
  Tensor forward(const Tensor& x, int64_t offset = 0) const override;

 protected:
  std::string extra_repr() const override;

 private:
  int64_t dim_;
};

// A learned table (max_len, C) ~ N(0, 0.02^2), as GPT-2 initialises it; positions past max_len
// are an error naming both.
class LearnedEncoding : public PositionalEncoding {
 public:
  LearnedEncoding(int64_t max_len, int64_t dim, Generator* gen = nullptr);
  Tensor forward(const Tensor& x, int64_t offset = 0) const override;
  Tensor weight;

 protected:
  std::string extra_repr() const override;
};

}  // namespace spear::nn
