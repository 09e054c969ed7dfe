#include "nn/positional.h"

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "nn/init.h"

namespace spear::nn {

SinusoidalEncoding::SinusoidalEncoding(int64_t dim)
    : PositionalEncoding("SinusoidalEncoding"), dim_(dim) {
  SPEAR_CHECK_T(ConfigError, dim > 0, "SinusoidalEncoding: dim must be positive, got ", dim);
}

// x: (B,N,C) at positions offset .. offset+N-1 -> x + pe: (B,N,C)
Tensor SinusoidalEncoding::forward(const Tensor& x, int64_t offset) const {
  SPEAR_CHECK_SHAPE(x.dim() == 3 && x.size(2) == dim_, "sinusoidal_encoding: expected x (B, N, ",
                    dim_, "), got ", x.shape());
  const int64_t N = x.size(1);
  // pe[p, 2i] = sin(p w_i), pe[p, 2i+1] = cos(p w_i), w_i = 10000^(-2i/C); in double, so the
  // phase stays exact at large positions whatever x's dtype.
  std::vector<double> pe(N * dim_);
  for (int64_t c = 0; c < dim_; ++c) {
    const double freq = std::pow(10000.0, -static_cast<double>(c - c % 2) / dim_);
    for (int64_t p = 0; p < N; ++p) {
      const double angle = static_cast<double>(offset + p) * freq;
      pe[p * dim_ + c] = c % 2 == 0 ? std::sin(angle) : std::cos(angle);
    }
  }
  return x + tensor(pe, {N, dim_}).to(x.dtype());
}

std::string SinusoidalEncoding::extra_repr() const {
  return str_cat("dim=", dim_);
}

LearnedEncoding::LearnedEncoding(int64_t max_len, int64_t dim, Generator* gen)
    : PositionalEncoding("LearnedEncoding") {
  SPEAR_CHECK_T(ConfigError, max_len > 0 && dim > 0,
                "LearnedEncoding: max_len and dim must be positive, got ", max_len, " and ", dim);
  weight = register_parameter("weight", empty({max_len, dim}));
  init::normal_(weight, 0.0, 0.02, gen);
}

// x: (B,N,C) at positions offset .. offset+N-1 -> x + weight[offset : offset+N]: (B,N,C)
Tensor LearnedEncoding::forward(const Tensor& x, int64_t offset) const {
  const int64_t max_len = weight.size(0), dim = weight.size(1);
  SPEAR_CHECK_SHAPE(x.dim() == 3 && x.size(2) == dim, "learned_encoding: expected x (B, N, ", dim,
                    "), got ", x.shape());
  const int64_t N = x.size(1);
  SPEAR_CHECK_SHAPE(offset >= 0 && offset + N <= max_len, "learned_encoding: positions ", offset,
                    " .. ", offset + N - 1, " (offset ", offset, " + length ", N,
                    ") do not fit max_len ", max_len);
  return x + weight.narrow(0, offset, N);
}

std::string LearnedEncoding::extra_repr() const {
  return str_cat("max_len=", weight.size(0), ", dim=", weight.size(1));
}

}  // namespace spear::nn
