// spear-bench ops: the cost of recording the autograd graph. Tiny (8 x 8) tensors, so the
// arithmetic is negligible and what is measured is dispatch, allocation and graph bookkeeping.
#include <functional>
#include <vector>

#include <spear.h>

#include "bench/harness.h"

namespace spear::bench {

void bench_ops(const Options& opt) {
  using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;
  const std::vector<std::pair<const char*, Binary>> ops = {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }},
      {"exp", [](const Tensor& a, const Tensor&) { return exp(a); }},
      {"matmul", [](const Tensor& a, const Tensor& b) { return matmul(a, b); }},
      {"sum", [](const Tensor& a, const Tensor&) { return sum(a, {1}); }},
      {"softmax", [](const Tensor& a, const Tensor&) { return softmax(a, -1); }},
      {"reshape",
       [](const Tensor& a, const Tensor&) {
         return a.reshape({4, 16});
       }},
      {"transpose", [](const Tensor& a, const Tensor&) { return a.transpose(0, 1); }},
  };
  Tensor a = randn({8, 8}).requires_grad_(), b = randn({8, 8}).requires_grad_();
  const int calls = 2000;
  for (const auto& [name, fn] : ops) {
    double fwd_nograd = micros_per_call(calls, [&] {
      NoGradGuard guard;
      fn(a, b);
    });
    double fwd = micros_per_call(calls, [&] { fn(a, b); });
    Tensor grad = ones(fn(a, b).shape());
    double fwd_bwd = micros_per_call(calls, [&] { fn(a, b).backward(grad); });
    emit(opt, {{"bench", "ops"},
               {"op", name},
               {"shape", {8, 8}},
               {"threads", get_num_threads()},
               {"fwd_nograd_us", round2(fwd_nograd)},
               {"fwd_us", round2(fwd)},
               {"fwd_bwd_us", round2(fwd_bwd)}});
  }
}

}  // namespace spear::bench
