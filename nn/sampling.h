// Choosing the next token from a language model's logits.
#pragma once
#include <cstdint>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace spear::nn {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (always the most likely token)
  int64_t top_k = 0;         // > 0: sample among the k most likely tokens only
  double top_p = 1.0;        // < 1: among the smallest set whose probability reaches top_p
  uint64_t seed = 0;
};

// logits: (B, V) -> (B) i64 token ids. Draws use `gen`, one uniform number per row.
Tensor sample_tokens(const Tensor& logits, const SamplingOptions& options, Generator& gen);

}  // namespace spear::nn
