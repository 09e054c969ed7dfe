// erf that a compiler can vectorise (see fast_exp.h for why): GELU calls it on every element of
// the widest activation of a transformer, where libm's erff was a tenth of a training step.
// Two pieces, both computed and one picked, so there is no branch:
//   |x| <= 1:  erf(x) = x P(x^2), P of degree 5;
//   |x| > 1:   erf(|x|) = 1 - e^(-x^2) Q(t), t = 1 / (1 + |x| / 2), Q of degree 6, where
//              Q = erfc(x) e^(x^2) is smooth and slowly varying (about 1 / (x sqrt(pi))).
// The coefficients are weighted least-squares fits to math.erf and math.erfc in double, P on
// [0, 1] (relative error 4e-8) and Q on [1, 4] (3e-8). Beyond 4, e^(-x^2) < 2^-23 makes the
// result 1 in float whatever Q is. Measured: within 3 ulp of erf for every float tested
// (tests/test_elementwise.cpp).
#pragma once
#include <cmath>

#include "tensor/kernels/fast_exp.h"

namespace spear::kernels {

inline float fast_erf(float x) {
  const float s = x * x;
  float p = -5.667957594e-04f;
  p = p * s + 4.927411675e-03f;
  p = p * s + -2.672088705e-02f;
  p = p * s + 1.128057837e-01f;
  p = p * s + -3.761239052e-01f;
  p = p * s + 1.128379107e+00f;
  const float near_zero = x * p;

  const float a = x < 0.0f ? -x : x;
  const float t = 1.0f / (1.0f + 0.5f * a);
  float q = -6.089881808e-02f;
  q = q * t + -3.545509279e-02f;
  q = q * t + 3.770263195e-01f;
  q = q * t + 1.185853630e-01f;
  q = q * t + 3.246237338e-01f;
  q = q * t + 2.747942805e-01f;
  q = q * t + 5.148141645e-04f;
  const float tail = 1.0f - fast_exp(-s) * q;
  const float signed_tail = x < 0.0f ? -tail : tail;
  return a <= 1.0f ? near_zero : signed_tail;
}

// Other types (double; integers, which the unary ops also take) keep libm's erf.
template <typename T>
T fast_erf(T x) {
  return static_cast<T>(std::erf(x));
}

}  // namespace spear::kernels
