// Input checks and the key padding mask, shared by the fused attention kernels.
#pragma once
#include "tensor/tensor.h"

namespace spear::kernels {

// q, k: (B, N, H, D), v: (B, N, H, M), mask: (B, N) or undefined; errors name `op` and the shapes.
void check_attention_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                            const char* op);

// mask (B, N), non-zero at padded keys, of any dtype -> contiguous i64 0/1 flags (undefined stays
// undefined), so the kernels read one flag per key.
Tensor padding_as_i64(const Tensor& mask);

}  // namespace spear::kernels
