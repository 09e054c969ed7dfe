// spear::Tensor: a cheap, shared handle to an N-d strided view of a Storage.
//
// Copying a Tensor copies the handle, not the data (use clone() for that). A view (reshape,
// permute, slice, expand, ...) shares the storage and only changes shape, strides and offset.
//
// Layering: this header belongs to the tensor library, which knows nothing of autograd. The math
// methods declared below (t.sum(), t.reshape(), ...) are part of the public op API; they are
// defined with the free functions in autograd/ops.cpp, the layer that records gradients.
#pragma once
#include <cstdint>
#include <memory>
#include <ostream>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/shape.h"
#include "tensor/storage.h"

namespace spear {

struct AutogradMeta;  // autograd's per-tensor state (autograd/autograd_meta.h); null until needed
class Node;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  std::shared_ptr<AutogradMeta> autograd;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // A new, uninitialised, contiguous tensor.
  static Tensor empty(const Shape& shape, DType dtype);
  // A view of `storage` with the given geometry (the storage must be large enough).
  static Tensor make_view(std::shared_ptr<Storage> storage, const Shape& shape,
                          const Shape& strides, int64_t offset, DType dtype);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t size(int64_t dim) const;  // negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  bool is_floating_point() const { return is_floating(dtype()); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

  // Pointer to the first element of this view. Throws if T does not match dtype().
  template <typename T>
  T* data_ptr() const;
  void* raw_data() const;  // untyped pointer to the first element

  // Copies the elements out in row-major order (works for any strides).
  template <typename T>
  std::vector<T> to_vector() const;
  // The single element of a one-element tensor, converted to T.
  template <typename T>
  T item() const;

  // In-place writes (they bump the storage version; autograd checks it).
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);  // src broadcasts to this shape; dtype converts
  // Makes this tensor show src's data (storage, shape, strides, dtype), keeping its autograd
  // state. Every handle to this tensor sees the change (how a module converts its parameters).
  void set_data(const Tensor& src);

  // ---- The public op API as methods (defined in autograd/ops.cpp) ----
  Tensor clone() const;
  Tensor contiguous() const;
  Tensor to(DType dtype) const;

  Tensor reshape(const Shape& shape) const;  // a view when the strides allow, else a copy
  Tensor view(const Shape& shape) const;     // always a view; throws if impossible
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  Tensor sum() const;
  Tensor sum(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor max() const;
  Tensor max(int64_t dim, bool keepdim = false) const;
  Tensor min() const;
  Tensor min(int64_t dim, bool keepdim = false) const;
  Tensor argmax(int64_t dim, bool keepdim = false) const;
  Tensor var(const std::vector<int64_t>& dims, bool keepdim = false, bool unbiased = true) const;

  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor abs() const;
  Tensor neg() const;
  Tensor pow(double exponent) const;
  Tensor matmul(const Tensor& other) const;

  // ---- Autograd (defined in autograd/engine.cpp) ----
  bool requires_grad() const;
  Tensor& requires_grad_(bool requires = true);  // only on leaves (tensors no op produced)
  bool is_leaf() const;                          // true unless an op recorded this tensor
  Tensor grad() const;  // the accumulated gradient of a leaf; undefined before backward()
  void set_grad(const Tensor& grad);
  void zero_grad();                       // drops the accumulated gradient
  std::shared_ptr<Node> grad_fn() const;  // the op that produced this tensor, or null
  // Back-propagates from this tensor: a scalar, or any shape when `grad` is given.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // the same data, cut from the graph

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Prints like PyTorch: values (middle elided for big tensors), then shape and dtype.
std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- Creation (tensor library, no autograd) ----
Tensor empty(const Shape& shape, DType dtype = f32);
Tensor zeros(const Shape& shape, DType dtype = f32);
Tensor ones(const Shape& shape, DType dtype = f32);
Tensor full(const Shape& shape, double value, DType dtype = f32);
Tensor arange(double start, double end, double step = 1.0, DType dtype = i64);
Tensor arange(int64_t end, DType dtype = i64);
Tensor linspace(double start, double end, int64_t steps, DType dtype = f32);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
// A 0-d tensor holding `value`, of the given dtype.
Tensor scalar_tensor(double value, DType dtype = f32);

// A tensor with a copy of `values` (its dtype follows T: float -> f32, double -> f64,
// int64_t -> i64). An empty shape means a 1-d tensor of values.size() elements.
template <typename T>
Tensor tensor(const std::vector<T>& values, const Shape& shape = {});
Tensor tensor(std::initializer_list<float> values, const Shape& shape = {});

}  // namespace spear
