// Philox4x32-10 and the random creation functions built on it (the scheme is in random.h).
// Every element gets a whole 128-bit block. That spends more Philox calls than packing several
// draws into one block, but it keeps the rule "element i uses counter base + i" true for every
// function, including randn and randint, which need up to 128 bits per element.
#include "tensor/random.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "tensor/kernels/fast_log_cos.h"
#include "tensor/parallel.h"

namespace spear {

namespace {

// Philox4x32-10 itself, here so that the draws below get it inlined (randn's lanes as vector code):
// spear compiles with -fPIC, under which GCC does not inline the exported philox4x32, since
// another library could replace it.
inline PhiloxCounter philox(PhiloxCounter c, PhiloxKey k) {
  // The multipliers and the Weyl key increments (golden ratio and sqrt(3) - 1 in 32-bit fixed
  // point) are those of the Random123 reference implementation.
  constexpr uint64_t kMul0 = 0xD2511F53, kMul1 = 0xCD9E8D57;
  constexpr uint32_t kWeyl0 = 0x9E3779B9, kWeyl1 = 0xBB67AE85;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kWeyl0;
      k[1] += kWeyl1;
    }
    const uint64_t p0 = kMul0 * c[0];  // the full 64-bit products: high and low halves are used
    const uint64_t p1 = kMul1 * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
  }
  return c;
}

}  // namespace

PhiloxCounter philox4x32(PhiloxCounter c, PhiloxKey k) {
  return philox(c, k);
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(uint64_t seed) {
  default_generator().set_state(seed, 0);
}

namespace {

uint64_t bits64(uint32_t high, uint32_t low) {
  return uint64_t{high} << 32 | low;
}

// n consecutive counters reserved from a generator: element i draws block(i).
struct Stream {
  PhiloxKey key;
  uint64_t base;
  PhiloxCounter block(int64_t i) const {
    const uint64_t counter = base + static_cast<uint64_t>(i);
    return philox({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0, 0},
                  key);
  }
};

Stream reserve_stream(Generator* gen, int64_t n) {
  Generator& g = gen ? *gen : default_generator();
  const PhiloxKey key = {static_cast<uint32_t>(g.seed()), static_cast<uint32_t>(g.seed() >> 32)};
  return {key, g.reserve(static_cast<uint64_t>(n))};
}

void check_shape(const Shape& shape, const char* op) {
  for (int64_t s : shape) SPEAR_CHECK_SHAPE(s >= 0, op, ": negative size in shape ", shape);
}

// Uniform in [0, 1) from the top bits of the block: exactly representable, so the f32 value is
// the f64 value truncated to 24 bits.
template <typename T>
T uniform(const PhiloxCounter& b);
template <>
float uniform<float>(const PhiloxCounter& b) {
  return static_cast<float>(b[0] >> 8) * 0x1p-24f;
}
template <>
double uniform<double>(const PhiloxCounter& b) {
  return static_cast<double>(bits64(b[0], b[1]) >> 11) * 0x1p-53;
}

// floor(x * range / 2^64), the high word of the 128-bit product, from four 32x32-bit products.
// For uniform x it is uniform in [0, range) up to a bias of at most range / 2^64 per value: each
// value is hit by either floor or ceil of 2^64 / range inputs. Below range 2^32 that is at most
// 2^-32 relative, far beneath what any feasible sample detects (a bias e needs ~1/e^2 draws).
// Rejection sampling would remove it but would make the number of blocks an element consumes
// variable.
uint64_t below(uint64_t x, uint64_t range) {
  const uint64_t x_lo = x & 0xffffffff, x_hi = x >> 32;
  const uint64_t r_lo = range & 0xffffffff, r_hi = range >> 32;
  const uint64_t lo_lo = x_lo * r_lo, hi_lo = x_hi * r_lo, lo_hi = x_lo * r_hi;
  // The middle column plus the carry from the low word; cannot overflow 64 bits.
  const uint64_t middle = (lo_lo >> 32) + (hi_lo & 0xffffffff) + lo_hi;
  return x_hi * r_hi + (hi_lo >> 32) + (middle >> 32);
}

// A new tensor of `shape`, filled by fill(stream, lo, hi, p), which writes elements lo..hi-1
// (row-major) from a fresh stream; the ranges are split across threads. One Philox block costs
// several times a simple element op (a copy), hence grain_for(4).
template <typename T, typename Fill>
Tensor fill_random_ranges(const Shape& shape, Generator* gen, Fill fill) {
  Tensor out = Tensor::empty(shape, dtype_of<T>());
  const int64_t n = out.numel();
  const Stream stream = reserve_stream(gen, n);
  T* p = out.data_ptr<T>();
  parallel_for(0, n, grain_for(4), [&](int64_t lo, int64_t hi) { fill(stream, lo, hi, p); });
  return out;
}

// A new tensor of `shape` whose element i is draw(block i of a fresh stream).
template <typename T, typename Draw>
Tensor fill_random(const Shape& shape, Generator* gen, Draw draw) {
  return fill_random_ranges<T>(shape, gen, [&](const Stream& stream, int64_t lo, int64_t hi, T* p) {
    for (int64_t i = lo; i < hi; ++i) p[i] = draw(stream.block(i));
  });
}

// Normals are drawn kLanes at a time, in loops over the lanes without branches or calls
// (fast_log_cos.h stands in for libm's log and cos), which GCC turns into SIMD code. Element i's
// value depends only on counter base + i, never on its lane, so any split of the range (threads, a
// partial last block) gives the same bits.
constexpr int kLanes = 16;

// Box-Muller: sqrt(-2 ln u1) cos(2 pi u2) is standard normal for independent uniforms u1, u2.
// Element first + l, in double:
//   u1 = (m + 0.5) 2^-52 from the top 52 bits m of words 0-1: in [2^-53, 1 - 2^-53], exactly
//        (m + 0.5 fits in a double's 53-bit significand), so the log never sees 0;
//   u2 = the top 53 bits of words 2-3 times 2^-53, in [0, 1).
// The sine partner is dropped: using it would tie two elements to one block.
std::array<double, kLanes> normal_lanes(const Stream& stream, int64_t first) {
  // Each step is a loop of its own, so that GCC vectorises it at its own width: Philox in 32-bit
  // words (its 32x32->64-bit products vectorise too), the rest in doubles.
  uint64_t x[kLanes], y[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const PhiloxCounter b = stream.block(first + l);
    x[l] = bits64(b[0], b[1]);
    y[l] = bits64(b[2], b[3]);
  }
  double radius2[kLanes], cosine[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const double u1 = (kernels::small_to_double(x[l] >> 12) + 0.5) * 0x1p-52;
    // y >> 11 has 53 bits, one too many for small_to_double: its last bit is added apart.
    const double u2 =
        (kernels::small_to_double(y[l] >> 12) * 2 + kernels::small_to_double(y[l] >> 11 & 1)) *
        0x1p-53;
    radius2[l] = -2.0 * kernels::fast_log(u1);
    cosine[l] = kernels::cos_2pi(u2);
  }
  // std::sqrt may set errno (never here: its argument is positive), which keeps it a scalar call;
  // alone in its loop, it does not keep the loop above scalar.
  std::array<double, kLanes> z;
  for (int l = 0; l < kLanes; ++l) z[l] = std::sqrt(radius2[l]) * cosine[l];
  return z;
}

}  // namespace

// shape -> (shape), values in [0, 1)
Tensor rand(const Shape& shape, DType dtype, Generator* gen) {
  check_shape(shape, "rand");
  return SPEAR_DISPATCH_FLOAT(dtype, "rand",
                              [&] { return fill_random<scalar_t>(shape, gen, uniform<scalar_t>); });
}

// shape -> (shape), standard normal
Tensor randn(const Shape& shape, DType dtype, Generator* gen) {
  check_shape(shape, "randn");
  return SPEAR_DISPATCH_FLOAT(dtype, "randn", [&] {
    return fill_random_ranges<scalar_t>(
        shape, gen, [](const Stream& stream, int64_t lo, int64_t hi, scalar_t* p) {
          // A range's last block may be partial: it computes all lanes and keeps the first ones.
          for (int64_t i = lo; i < hi; i += kLanes) {
            const std::array<double, kLanes> z = normal_lanes(stream, i);
            const int64_t count = std::min<int64_t>(kLanes, hi - i);
            for (int64_t l = 0; l < count; ++l) p[i + l] = static_cast<scalar_t>(z[l]);
          }
        });
  });
}

// shape -> (shape) i64, values in [low, high)
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator* gen) {
  check_shape(shape, "randint");
  SPEAR_CHECK(low < high, "randint: need low < high, got low=", low, ", high=", high);
  // Unsigned arithmetic: high - low may exceed INT64_MAX, and low + draw wraps back into range.
  const uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  return fill_random<int64_t>(shape, gen, [&](const PhiloxCounter& b) {
    return static_cast<int64_t>(static_cast<uint64_t>(low) + below(bits64(b[0], b[1]), range));
  });
}

// shape -> (shape), 1 with probability keep_prob else 0
Tensor bernoulli_mask(const Shape& shape, double keep_prob, DType dtype, Generator* gen) {
  check_shape(shape, "bernoulli_mask");
  SPEAR_CHECK(keep_prob >= 0.0 && keep_prob <= 1.0,
              "bernoulli_mask: keep_prob must be in [0, 1], got ", keep_prob);
  // The comparison runs in double for every dtype, so the mask does not depend on the dtype.
  return SPEAR_DISPATCH_ALL(dtype, "bernoulli_mask", [&] {
    return fill_random<scalar_t>(shape, gen, [&](const PhiloxCounter& b) {
      return static_cast<scalar_t>(uniform<double>(b) < keep_prob ? 1 : 0);
    });
  });
}

// n -> (n) i64
Tensor randperm(int64_t n, Generator* gen) {
  SPEAR_CHECK(n >= 0, "randperm: n must be non-negative, got ", n);
  Tensor out = arange(n);
  int64_t* p = out.data_ptr<int64_t>();
  const Stream stream = reserve_stream(gen, n);
  // Fisher-Yates from the back: step i swaps p[i] with a uniform pick among p[0..i], drawn from
  // block i. Each step depends on the previous ones, so this loop stays serial.
  for (int64_t i = n - 1; i > 0; --i) {
    const PhiloxCounter b = stream.block(i);
    const uint64_t j = below(bits64(b[0], b[1]), static_cast<uint64_t>(i) + 1);
    std::swap(p[i], p[j]);
  }
  return out;
}

}  // namespace spear
