// Random numbers that do not depend on the thread count.
//
// A sequential generator (std::mt19937 and friends) hands out numbers one after another, so the
// value an element receives depends on which thread asked first: the same seed gives different
// tensors with 1 and 2 threads. spear uses a counter-based generator instead. Philox4x32-10
// (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) is a keyed bijection
// on 128-bit counters: philox(counter, key) scrambles its input so thoroughly that consecutive
// counters give statistically independent outputs. Random number n is simply philox(n, seed), so
// any thread computes any element directly, and the result is bit-identical whatever the
// partitioning.
//
// The scheme, which fixes every value spear draws for a given seed:
//   * A Generator is two integers: (seed, offset). Key = seed split into 32-bit words
//     {low, high}. Counter = a 64-bit index split into {low, high, 0, 0}.
//   * A kernel that needs n numbers calls reserve(n) once, on the calling thread; it returns the
//     current offset `base` and advances the offset by n. Element i (row-major) then uses the
//     128-bit block philox({base + i}, key), and nothing else. The next call gets fresh counters.
//   * Saving (seed, offset) and restoring them with set_state replays the stream exactly.
//
// Every draw is a fixed formula of its block (never a std::*_distribution, whose output is
// implementation-defined): see random.cpp.
#pragma once
#include <array>
#include <cstdint>

#include "tensor/tensor.h"

namespace spear {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// One Philox4x32-10 block: 10 rounds of the Random123 reference algorithm.
PhiloxCounter philox4x32(PhiloxCounter counter, PhiloxKey key);

// The state of one random stream. Not thread-safe: reserve counters on one thread, then let any
// thread compute the elements.
class Generator {
 public:
  explicit Generator(uint64_t seed) : seed_(seed) {}

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Returns the first of n fresh counters and moves past them.
  uint64_t reserve(uint64_t n) {
    uint64_t base = offset_;
    offset_ += n;
    return base;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The generator used when a function receives gen == nullptr. It starts from a fixed seed, so a
// program that never seeds is still reproducible.
Generator& default_generator();
// Restarts the default generator: seed `seed`, offset 0.
void manual_seed(uint64_t seed);

// Uniform in [0, 1): f32 from 24 random bits, f64 from 53.
Tensor rand(const Shape& shape, DType dtype = f32, Generator* gen = nullptr);
// Standard normal (Box-Muller, computed in double; f32 is the f64 value rounded).
Tensor randn(const Shape& shape, DType dtype = f32, Generator* gen = nullptr);
// Uniform integers in [low, high), i64.
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator* gen = nullptr);
// 1 with probability keep_prob, else 0 (dropout's mask).
Tensor bernoulli_mask(const Shape& shape, double keep_prob, DType dtype = f32,
                      Generator* gen = nullptr);
// A uniformly random permutation of 0..n-1, i64.
Tensor randperm(int64_t n, Generator* gen = nullptr);

}  // namespace spear
