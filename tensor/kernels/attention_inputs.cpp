#include "tensor/kernels/attention_inputs.h"

#include "tensor/kernels/kernels.h"

namespace spear::kernels {

void check_attention_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                            const char* op) {
  SPEAR_CHECK_SHAPE(q.dim() == 4 && q.shape() == k.shape() && v.dim() == 4 &&
                        v.size(0) == q.size(0) && v.size(1) == q.size(1) && v.size(2) == q.size(2),
                    op, ": expected q, k (B, N, H, D) and v (B, N, H, M), got q ", q.shape(),
                    ", k ", k.shape(), ", v ", v.shape());
  SPEAR_CHECK_DTYPE(q.dtype() == k.dtype() && q.dtype() == v.dtype(), op,
                    ": dtypes differ: ", q.dtype(), ", ", k.dtype(), ", ", v.dtype());
  const Shape mask_shape = {q.size(0), q.size(1)};
  SPEAR_CHECK_SHAPE(!mask.defined() || mask.shape() == mask_shape, op, ": key_padding_mask ",
                    mask.defined() ? mask.shape() : Shape(),
                    " does not match (B, N) = ", mask_shape);
}

Tensor padding_as_i64(const Tensor& mask) {
  if (!mask.defined()) return mask;
  return contiguous(
      to_dtype(binary(BinaryOp::ne, to_dtype(mask, f64), scalar_tensor(0.0, f64)), i64));
}

}  // namespace spear::kernels
