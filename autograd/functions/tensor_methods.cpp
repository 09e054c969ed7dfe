// Tensor's math methods: PyTorch-style spellings of the free functions in autograd/ops.h.
#include "autograd/ops.h"

namespace spear {

Tensor Tensor::clone() const {
  return spear::clone(*this);
}
Tensor Tensor::contiguous() const {
  return spear::contiguous(*this);
}
Tensor Tensor::to(DType dtype) const {
  return spear::to(*this, dtype);
}
Tensor Tensor::reshape(const Shape& shape) const {
  return spear::reshape(*this, shape);
}
Tensor Tensor::view(const Shape& shape) const {
  return spear::view(*this, shape);
}
Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  return spear::permute(*this, dims);
}
Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  return spear::transpose(*this, d0, d1);
}
Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  return spear::slice(*this, dim, start, end, step);
}
Tensor Tensor::narrow(int64_t dim, int64_t start, int64_t length) const {
  return spear::narrow(*this, dim, start, length);
}
Tensor Tensor::squeeze() const {
  return spear::squeeze(*this);
}
Tensor Tensor::squeeze(int64_t dim) const {
  return spear::squeeze(*this, dim);
}
Tensor Tensor::unsqueeze(int64_t dim) const {
  return spear::unsqueeze(*this, dim);
}
Tensor Tensor::expand(const Shape& shape) const {
  return spear::expand(*this, shape);
}
Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  return spear::flatten(*this, start_dim, end_dim);
}
Tensor Tensor::sum() const {
  return spear::sum(*this);
}
Tensor Tensor::sum(const std::vector<int64_t>& dims, bool keepdim) const {
  return spear::sum(*this, dims, keepdim);
}
Tensor Tensor::mean() const {
  return spear::mean(*this);
}
Tensor Tensor::mean(const std::vector<int64_t>& dims, bool keepdim) const {
  return spear::mean(*this, dims, keepdim);
}
Tensor Tensor::max() const {
  return spear::amax(*this);
}
Tensor Tensor::max(int64_t dim, bool keepdim) const {
  return spear::amax(*this, {dim}, keepdim);
}
Tensor Tensor::min() const {
  return spear::amin(*this);
}
Tensor Tensor::min(int64_t dim, bool keepdim) const {
  return spear::amin(*this, {dim}, keepdim);
}
Tensor Tensor::argmax(int64_t dim, bool keepdim) const {
  return spear::argmax(*this, dim, keepdim);
}
Tensor Tensor::var(const std::vector<int64_t>& dims, bool keepdim, bool unbiased) const {
  return spear::var(*this, dims, keepdim, unbiased);
}
Tensor Tensor::exp() const {
  return spear::exp(*this);
}
Tensor Tensor::log() const {
  return spear::log(*this);
}
Tensor Tensor::sqrt() const {
  return spear::sqrt(*this);
}
Tensor Tensor::abs() const {
  return spear::abs(*this);
}
Tensor Tensor::neg() const {
  return spear::neg(*this);
}
Tensor Tensor::pow(double exponent) const {
  return spear::pow(*this, exponent);
}
Tensor Tensor::matmul(const Tensor& other) const {
  return spear::matmul(*this, other);
}

}  // namespace spear
