// Whether ops record the graph. On by default; NoGradGuard turns it off for a scope (evaluation,
// optimiser updates, and the backward pass itself). The flag is per thread.
#pragma once

namespace spear {

bool is_grad_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace spear
