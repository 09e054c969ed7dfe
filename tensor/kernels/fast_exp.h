// exp that a compiler can vectorise: no branches, no calls, no errno, so a loop of it becomes SIMD
// code, where a call to libm's expf costs a function call per element. For float, Cephes' expf:
// exp(x) = 2^n exp(r) with n = round(x / ln 2), r = x - n ln 2 (ln 2 split in two parts so r is
// exact), exp(r) by a degree-7 polynomial on |r| <= ln(2) / 2: within 2 ulp of expf over the
// float range, 0 below it and +inf above it. Double keeps libm's exp: the kernels that use this run
// in f64 only for tests, where the last bits are the point.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace spear::kernels {

inline float fast_exp(float x) {
  constexpr float kMax = 88.72283905206835f, kMin = -87.33654475055310f;
  // Plain comparisons that pick between values already computed, not std::fmin / std::floor
  // (library calls without SSE4.1): GCC turns them into vector blends. Arithmetic inside a
  // conditional would be a branch, since it may raise a floating-point exception.
  const float above_min = x < kMin ? kMin : x;
  const float clamped = above_min > kMax ? kMax : above_min;
  // n = round(x / ln 2) by the float adder itself: adding 1.5 * 2^23 leaves no bits below the
  // units, so the sum is rounded to an integer, and subtracting it back is exact. A floor built
  // from a comparison instead made GCC compute the polynomial twice, once per outcome (1.7x slower
  // with SSE2, 10x with AVX2).
  constexpr float kRound = 12582912.0f;
  const float n = (clamped * 1.44269504088896341f + kRound) - kRound;
  float r = clamped - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  // exp(r) = 1 + r + r^2 c(r), c a degree-5 polynomial, by Horner's rule.
  float c = 1.9875691500e-4f;
  c = c * r + 1.3981999507e-3f;
  c = c * r + 8.3334519073e-3f;
  c = c * r + 4.1665795894e-2f;
  c = c * r + 1.6666665459e-1f;
  c = c * r + 5.0000001201e-1f;
  const float p = c * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n, n in [-126, 128]
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float y = p * scale;
  const float no_overflow = x > kMax ? HUGE_VALF : y;
  return x < kMin ? 0.0f : no_overflow;
}

inline double fast_exp(double x) {
  return std::exp(x);
}

}  // namespace spear::kernels
