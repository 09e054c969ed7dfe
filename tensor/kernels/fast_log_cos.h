// log and cos(2 pi u) in double that a compiler can vectorise: no branches, no calls, no errno, no
// tables, so a loop of them becomes SIMD code (see fast_exp.h), where libm's log and cos cost a
// call each. They exist for randn's Box-Muller transform (tensor/random.cpp), which spent most of
// its time in libm, and take only the inputs it gives them: no special cases. Measured against
// long double references (tests/test_random.cpp): fast_log within 1 ulp, cos_2pi within 2 ulp;
// glibc's double log and cos are within 1.
#pragma once
#include <cstdint>
#include <cstring>

namespace spear::kernels {

inline uint64_t bits_of(double x) {
  uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

inline double double_of_bits(uint64_t b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// An integer n < 2^52 as a double, exactly: n fills the significand of 2^52 (whose last bit is
// worth 1), then 2^52 goes. A plain 64-bit-integer-to-double conversion has no SIMD instruction
// before AVX-512, so it would keep the loop scalar.
inline double small_to_double(uint64_t n) {
  return double_of_bits(0x4330000000000000 | n) - 0x1p52;
}

// log(x) for a positive normal double x (no zero, subnormal, infinity or NaN). fdlibm's e_log.c,
// in the branch-free form of musl's (pre-2018) log.c: x = 2^k (1 + f) with
// sqrt(2)/2 <= 1 + f < sqrt(2), s = f / (2 + f), and log(1 + f) = 2 atanh(s) =
// f - f^2/2 + s (f^2/2 + R(s^2)), where R is fdlibm's minimax polynomial of degree 7 in s^2
// (Remez; |error| < 2^-58.45 on |s| <= 0.1716). k ln 2 is added in two parts: ln2_hi ends in 32
// zero bits, so k ln2_hi is exact.
inline double fast_log(double x) {
  // Adding 1 - sqrt(2)/2 (in bits: the difference of the patterns of 1 and sqrt(2)/2) carries into
  // the exponent field exactly when the significand is at least sqrt(2), so that field is then
  // k + 1023. Adding sqrt(2)/2's pattern back to the significand bits alone gives 1 + f.
  constexpr uint64_t kHalfSqrt2 = 0x3fe6a09e667f3bcd;
  const uint64_t shifted = bits_of(x) + (0x3ff0000000000000 - kHalfSqrt2);
  const double k = small_to_double(shifted >> 52) - 1023.0;
  const double f = double_of_bits((shifted & 0x000fffffffffffff) + kHalfSqrt2) - 1.0;
  constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
  const double s = f / (2.0 + f);
  const double z = s * s;
  const double r =
      z * (6.666666666666735130e-01 +
           z * (3.999999999940941908e-01 +
                z * (2.857142874366239149e-01 +
                     z * (2.222219843214978396e-01 +
                          z * (1.818357216161805012e-01 +
                               z * (1.531383769920937332e-01 + z * 1.479819860511658591e-01))))));
  const double half_f2 = 0.5 * f * f;
  return s * (half_f2 + r) + k * kLn2Lo - half_f2 + f + k * kLn2Hi;
}

// cos(2 pi u) for 0 <= u < 1. libm would reduce the rounded product 2 pi u modulo pi/2 with an
// extra-precise pi; here the reduction is exact because it happens on u itself:
// cos(2 pi u) = sin(pi/2 b) with b = 1 - 4u for u <= 1/2 and b = 4u - 3 above, both exact doubles
// in [-1, 1]. Then sin(pi/2 b) = b + b T(w), w = b^2, where T(w) = sin(pi/2 b) / b - 1 has the
// Taylor coefficients t_0 = pi/2 - 1, t_n = (-1)^n (pi/2)^(2n+1) / (2n+1)!. T vanishes at w = 1,
// so T = (1 - w) V(w), and V's coefficients are the partial sums t_0 + ... + t_n. Written so, the
// result near +-1 is b plus a small correction instead of a sum of terms larger than itself. V is
// cut after w^9: the truncation error is below 2^-64 of the result.
inline double cos_2pi(double u) {
  const double t = 4.0 * u;
  const double b = t <= 2.0 ? 1.0 - t : t - 3.0;
  const double w = b * b;
  const double v = 0.5707963267948967 +
                   w * (-0.07516777071134964 +
                        w * (0.00452485553481741 +
                             w * (-0.0001568986005012774 +
                                  w * (3.5425842860824173e-06 +
                                       w * (-5.625894912966808e-08 +
                                            w * (6.627800900111855e-10 +
                                                 w * (-6.02342096996119e-12 +
                                                      w * (4.35147611450058e-14 +
                                                           w * -2.5589352813162245e-16))))))));
  return b + b * (1.0 - w) * v;
}

}  // namespace spear::kernels
