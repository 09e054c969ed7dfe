// gradcheck: compares the gradients backward() computes with central finite differences.
//
//   auto result = spear::gradcheck(
//       [](const std::vector<Tensor>& in) { return spear::tanh(spear::matmul(in[0], in[1])); },
//       {spear::randn({3, 4}, spear::f64).requires_grad_(), spear::randn({4, 2}, spear::f64)});
//   if (!result.ok) std::cerr << result.report;
//
// The output is reduced to a scalar L = sum(out * v) with a fixed random v, so one backward pass
// gives dL/dx for every input; each element of dL/dx is then checked against
// (L(x + eps) - L(x - eps)) / (2 eps). Inputs must be f64 (f32 rounding swamps the differences).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace spear {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  uint64_t seed = 0;  // for v
  std::string name;   // used in the report
};

struct GradcheckResult {
  bool ok = true;
  std::string report;  // one line per mismatch (the first few), empty when ok
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks the gradient of every input that requires grad. Throws when an input that requires grad
// is not f64 or overlaps itself in memory (an expanded view), since it cannot be perturbed.
GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace spear
