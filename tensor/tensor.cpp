#include "tensor/tensor.h"

#include <cmath>
#include <cstring>

#include "tensor/kernels/iterate.h"

namespace spear {

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (int64_t s : shape)
    SPEAR_CHECK_SHAPE(s >= 0, "empty: negative size in shape ", shape_str(shape));
  auto storage =
      std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * itemsize(dtype));
  return make_view(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::make_view(std::shared_ptr<Storage> storage, const Shape& shape, const Shape& strides,
                         int64_t offset, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

TensorImpl& Tensor::impl() const {
  SPEAR_CHECK(impl_ != nullptr, "use of an undefined tensor");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const {
  return shape()[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::stride(int64_t d) const {
  return strides()[wrap_dim(d, dim(), "stride")];
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element to misplace
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(storage()->data()) + offset() * static_cast<int64_t>(itemsize(dtype()));
}

template <typename T>
T* Tensor::data_ptr() const {
  SPEAR_CHECK_DTYPE(dtype() == dtype_of<T>(), "data_ptr: tensor has dtype ", dtype(),
                    " but was read as ", dtype_of<T>());
  return static_cast<T*>(raw_data());
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  std::vector<T> out(static_cast<size_t>(numel()));
  SPEAR_DISPATCH_ALL(dtype(), "to_vector", [&] {
    const scalar_t* src = data_ptr<scalar_t>();
    size_t i = 0;
    kernels::for_each_offset(shape(), strides(),
                             [&](int64_t off) { out[i++] = static_cast<T>(src[off]); });
  });
  return out;
}

template <typename T>
T Tensor::item() const {
  SPEAR_CHECK_SHAPE(numel() == 1, "item: expected a tensor with one element, got shape ",
                    shape_str(shape()));
  return to_vector<T>()[0];
}

Tensor& Tensor::fill_(double value) {
  SPEAR_DISPATCH_ALL(dtype(), "fill_", [&] {
    scalar_t* dst = data_ptr<scalar_t>();
    auto v = static_cast<scalar_t>(value);
    kernels::for_each_offset(shape(), strides(), [&](int64_t off) { dst[off] = v; });
  });
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  kernels::copy_into(*this, src);
  storage()->bump_version();
  return *this;
}

void Tensor::set_data(const Tensor& src) {
  TensorImpl& dst = impl();
  const TensorImpl& from = src.impl();
  dst.storage = from.storage;
  dst.shape = from.shape;
  dst.strides = from.strides;
  dst.offset = from.offset;
  dst.dtype = from.dtype;
}

#define SPEAR_INSTANTIATE(T)                            \
  template T* Tensor::data_ptr<T>() const;              \
  template std::vector<T> Tensor::to_vector<T>() const; \
  template T Tensor::item<T>() const;
SPEAR_INSTANTIATE(float)
SPEAR_INSTANTIATE(double)
SPEAR_INSTANTIATE(int64_t)
#undef SPEAR_INSTANTIATE

// ---- Creation ----

Tensor empty(const Shape& shape, DType dtype) {
  return Tensor::empty(shape, dtype);
}
Tensor full(const Shape& shape, double value, DType dtype) {
  return Tensor::empty(shape, dtype).fill_(value);
}
Tensor zeros(const Shape& shape, DType dtype) {
  return full(shape, 0.0, dtype);
}
Tensor ones(const Shape& shape, DType dtype) {
  return full(shape, 1.0, dtype);
}
Tensor zeros_like(const Tensor& t) {
  return zeros(t.shape(), t.dtype());
}
Tensor ones_like(const Tensor& t) {
  return ones(t.shape(), t.dtype());
}
Tensor full_like(const Tensor& t, double value) {
  return full(t.shape(), value, t.dtype());
}
Tensor scalar_tensor(double value, DType dtype) {
  return full({}, value, dtype);
}

Tensor arange(double start, double end, double step, DType dtype) {
  SPEAR_CHECK(step != 0.0, "arange: step must be non-zero");
  SPEAR_CHECK(std::isfinite(start) && std::isfinite(end), "arange: start and end must be finite");
  auto n = static_cast<int64_t>(std::ceil((end - start) / step));
  Tensor out = Tensor::empty({n < 0 ? 0 : n}, dtype);
  SPEAR_DISPATCH_ALL(dtype, "arange", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    for (int64_t i = 0; i < out.numel(); ++i) p[i] = static_cast<scalar_t>(start + i * step);
  });
  return out;
}
Tensor arange(int64_t end, DType dtype) {
  return arange(0.0, static_cast<double>(end), 1.0, dtype);
}

Tensor linspace(double start, double end, int64_t steps, DType dtype) {
  SPEAR_CHECK(steps >= 0, "linspace: steps must be >= 0, got ", steps);
  Tensor out = Tensor::empty({steps}, dtype);
  SPEAR_DISPATCH_FLOAT(dtype, "linspace", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    double delta = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
    for (int64_t i = 0; i < steps; ++i)
      p[i] = static_cast<scalar_t>(i == steps - 1 ? end : start + i * delta);
  });
  return out;
}

template <typename T>
Tensor tensor(const std::vector<T>& values, const Shape& shape) {
  Shape s = shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape;
  SPEAR_CHECK_SHAPE(shape_numel(s) == static_cast<int64_t>(values.size()),
                    "tensor: ", values.size(), " values do not fill shape ", shape_str(s));
  Tensor out = Tensor::empty(s, dtype_of<T>());
  if (!values.empty()) std::memcpy(out.raw_data(), values.data(), values.size() * sizeof(T));
  return out;
}
template Tensor tensor<float>(const std::vector<float>&, const Shape&);
template Tensor tensor<double>(const std::vector<double>&, const Shape&);
template Tensor tensor<int64_t>(const std::vector<int64_t>&, const Shape&);

Tensor tensor(std::initializer_list<float> values, const Shape& shape) {
  return tensor(std::vector<float>(values), shape);
}

}  // namespace spear
