// The fused sine SPE filter (Liutkus et al. 2021; ../shared/reference/spe_reference.md 2, 7.3).
//
// x: (B, N, H, D), f, theta: (H, D, K), z: (H, D, 2K, R) -> y: (B, N, H, R)
//   y[b,n,h,:] = s sum_{d,c} (x[b,n,h,d] omega[n,h,d,c]) z[h,d,c,:],  s = (R D)^(-1/4)
//
// The code Qbar[n,h,d,:] = s omega[n,h,d,:] z[h,d] is shared by the whole batch, so it is built
// once per head and chunk of positions (bases omega (chunk, D, 2K) from f and theta, then one
// (chunk, 2K) x (2K, R) GEMM per d) and applied to every batch row, a (B, D) x (D, R) product
// per position (spe_code_rows.h): 2 N D R (2K + B) flops per head instead of 4 B N D K R, and never
// more than one chunk of the code in memory, whatever N and B.
//
// Backward, with g = dy:
//   dx[b,n]      = g[b,n] Qbar[n]^T                 (per position, (B, R) x (R, D))
//   dQbar[n]     = x[:,n]^T g[:,n]                  (per position, (D, B) x (B, R))
//   dz[h,d]      = s sum_n omega[n,d]^T dQbar[n,d]  (per d, over the chunk)
//   domega[n,d]  = s dQbar[n,d] z[h,d]^T
//   dalpha[n,d,k] = cos alpha domega[n,d,2k+1] - sin alpha domega[n,d,2k]
//   df = sum_n 2 pi p dalpha,  dtheta = sum_n dalpha       (alpha = 2 pi f p + theta)
// dz, df and dtheta are sums over positions. To keep them independent of the thread count, the
// chunks are grouped into at most kMaxSlabs slabs fixed by N alone; each (head, slab) task sums
// its chunks in order into its own partial, and the partials are added slab by slab at the end.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/kernels/blas.h"
#include "tensor/kernels/kernels.h"
#include "tensor/kernels/spe.h"
#include "tensor/kernels/spe_code_rows.h"
#include "tensor/parallel.h"

namespace spear::kernels {
namespace {

constexpr int64_t kChunk = 64;    // positions per GEMM
constexpr int64_t kMaxSlabs = 8;  // position ranges with their own parameter-gradient partials
constexpr double kTwoPi = 6.283185307179586476925286766559;

struct SineDims {
  int64_t B, N, H, D, K, R;
  int64_t cols() const { return D * 2 * K; }  // the D 2K columns of one head's (x omega)
};

SineDims check_inputs(const char* op, const Tensor& x, const Tensor& f, const Tensor& theta,
                      const Tensor& z) {
  SPEAR_CHECK_SHAPE(x.dim() == 4 && f.dim() == 3 && z.dim() == 4, op,
                    ": expected x (B, N, H, D), f (H, D, K), z (H, D, 2K, R), got x ", x.shape(),
                    ", f ", f.shape(), ", z ", z.shape());
  const SineDims s{x.size(0), x.size(1), x.size(2), x.size(3), f.size(2), z.size(3)};
  const Shape f_shape = {s.H, s.D, s.K}, z_shape = {s.H, s.D, 2 * s.K, s.R};
  SPEAR_CHECK_SHAPE(f.shape() == f_shape && z.shape() == z_shape, op, ": x ", x.shape(),
                    " needs f (H, D, K) = ", f_shape, " and z (H, D, 2K, R) = ", z_shape,
                    ", got f ", f.shape(), ", z ", z.shape());
  SPEAR_CHECK_SHAPE(!theta.defined() || theta.shape() == f_shape, op, ": theta ",
                    theta.defined() ? theta.shape() : Shape(), " does not match f ", f_shape);
  SPEAR_CHECK_DTYPE(x.is_floating_point() && f.dtype() == x.dtype() && z.dtype() == x.dtype() &&
                        (!theta.defined() || theta.dtype() == x.dtype()),
                    op, ": x, f, theta, z need one floating dtype, got ", x.dtype(), ", ",
                    f.dtype(), ", ", theta.defined() ? theta.dtype() : x.dtype(), ", ", z.dtype());
  return s;
}

// The inputs as contiguous raw pointers; theta is null when undefined.
template <typename T>
struct SineInputs {
  SineDims s;
  Tensor x, f, theta, z;  // contiguous, kept alive while the pointers are used
  int64_t offset;
  T scale;  // (R D)^(-1/4)
  SpeGate gate;
  const T* gate_a(int64_t h) const { return gate.a.data_ptr<T>() + h * s.D; }
  const T* gate_w(int64_t h) const { return gate.w.data_ptr<T>() + h * s.D * s.R; }
  const T* xp() const { return x.data_ptr<T>(); }
  const T* fp() const { return f.data_ptr<T>(); }
  const T* thetap() const { return theta.defined() ? theta.data_ptr<T>() : nullptr; }
  const T* zh(int64_t h) const { return z.data_ptr<T>() + h * s.cols() * s.R; }
};

template <typename T>
SineInputs<T> prepare(const SineDims& s, const Tensor& x, const Tensor& f, const Tensor& theta,
                      const Tensor& z, int64_t offset, const SpeGate& gate, const char* op) {
  const double scale = std::pow(static_cast<double>(s.R * s.D), -0.25);
  return {s,
          contiguous(x),
          contiguous(f),
          theta.defined() ? contiguous(theta) : Tensor(),
          contiguous(z),
          offset,
          static_cast<T>(scale),
          checked_gate(gate, s.H, s.D, s.R, x.dtype(), op)};
}

// omega: (len, D, 2K), the bases of head h at positions p = offset + n0 + i: [cos alpha, sin
// alpha] pairs with alpha = 2 pi f p + theta. In double: f32 would lose ~1e-2 rad of phase at
// p ~ 1e5 (its ulp there), double keeps ~1e-11 (spec 10.8). Only the chunk's first position calls
// cos and sin; the next ones rotate by 2 pi f (cos(a + b) = cos a cos b - sin a sin b, ...), whose
// rounding errors, ~1e-16 a step, stay far below f32's over a chunk. The rotation runs across the
// D K frequencies at once, which vectorises, position after position.
template <typename T>
void bases(const SineInputs<T>& in, int64_t h, int64_t n0, int64_t len, T* omega) {
  const SineDims& s = in.s;
  const int64_t dk = s.D * s.K;
  const T* f = in.fp() + h * dk;
  const T* theta = in.thetap() ? in.thetap() + h * dk : nullptr;
  const double p0 = static_cast<double>(in.offset + n0);
  std::vector<double> c(dk), sn(dk), cos_step(dk), sin_step(dk);
  for (int64_t j = 0; j < dk; ++j) {
    const double step = kTwoPi * static_cast<double>(f[j]);
    const double alpha = kTwoPi * (static_cast<double>(f[j]) * p0) + (theta ? theta[j] : 0.0);
    cos_step[j] = std::cos(step), sin_step[j] = std::sin(step);
    c[j] = std::cos(alpha), sn[j] = std::sin(alpha);
  }
  for (int64_t i = 0; i < len; ++i) {
    T* row = omega + i * s.cols();
    for (int64_t j = 0; j < dk; ++j) {
      row[2 * j] = static_cast<T>(c[j]);
      row[2 * j + 1] = static_cast<T>(sn[j]);
      const double next_c = c[j] * cos_step[j] - sn[j] * sin_step[j];
      sn[j] = sn[j] * cos_step[j] + c[j] * sin_step[j];
      c[j] = next_c;
    }
  }
}

// code (len, D, R) = s omega (len, D, 2K) z_h (D, 2K, R), one GEMM per d.
template <typename T>
void build_code(const SineInputs<T>& in, int64_t h, const T* omega, int64_t len, T* code) {
  const SineDims& s = in.s;
  const int64_t two_k = 2 * s.K;
  for (int64_t d = 0; d < s.D; ++d)
    gemm<T>(false, false, len, s.R, two_k, in.scale, omega + d * two_k, s.cols(),
            in.zh(h) + d * two_k * s.R, s.R, T(0), code + d * s.R, s.D * s.R);
}

// Offsets of element (b, n, h, 0) in (B, N, H, W) contiguous tensors.
inline int64_t row_offset(const SineDims& s, int64_t b, int64_t n, int64_t h, int64_t width) {
  return ((b * s.N + n) * s.H + h) * width;
}

template <typename T>
Tensor forward_impl(const SineInputs<T>& in) {
  const SineDims& s = in.s;
  Tensor y = Tensor::empty({s.B, s.N, s.H, s.R}, dtype_of<T>());
  T* yp = y.data_ptr<T>();
  const int64_t chunks = (s.N + kChunk - 1) / kChunk;
  // One task: head h, positions [n0, n0 + len), every batch row.
  parallel_for(0, s.H * chunks, grain_for((2 * s.K + s.B) * kChunk * s.D * s.R),
               [&](int64_t lo, int64_t hi) {
                 std::vector<T> omega(static_cast<size_t>(kChunk * s.cols()));
                 std::vector<T> code(static_cast<size_t>(kChunk * s.D * s.R));
                 for (int64_t t = lo; t < hi; ++t) {
                   const int64_t h = t / chunks, n0 = (t % chunks) * kChunk,
                                 len = std::min(kChunk, s.N - n0);
                   bases(in, h, n0, len, omega.data());
                   build_code(in, h, omega.data(), len, code.data());
                   if (in.gate.defined())
                     gate_codes(in.gate_a(h), in.gate_w(h), len, s.D, s.R, code.data(),
                                code.data());
                   // y[:, n] = x[:, n] code[n]: rows b of x and y sit N H D (N H R) apart.
                   for (int64_t i = 0; i < len; ++i)
                     apply_code(in.xp() + row_offset(s, 0, n0 + i, h, s.D), s.N * s.H * s.D,
                                code.data() + i * s.D * s.R, s.B, s.D, s.R,
                                yp + row_offset(s, 0, n0 + i, h, s.R), s.N * s.H * s.R);
                 }
               });
  return y;
}

// One parameter gradient from its per-(head, slab) partials of `size` values each: every value
// sums its slabs in slab order, in P (the partials' type), then rounds to T. -> (shape), H * size
// values.
template <typename T, typename P>
Tensor sum_slab_partials(const std::vector<P>& parts, int64_t H, int64_t slabs, int64_t size,
                         const Shape& shape) {
  Tensor out = Tensor::empty(shape, dtype_of<T>());
  T* o = out.data_ptr<T>();
  for (int64_t h = 0; h < H; ++h)
    for (int64_t e = 0; e < size; ++e) {
      P sum = 0;
      for (int64_t slab = 0; slab < slabs; ++slab) sum += parts[(h * slabs + slab) * size + e];
      o[h * size + e] = static_cast<T>(sum);
    }
  return out;
}

template <typename T>
SineSpeFilterGrads backward_impl(const SineInputs<T>& in, const Tensor& grad_in) {
  const SineDims& s = in.s;
  const Tensor grad = contiguous(grad_in);
  const T* gp = grad.data_ptr<T>();
  Tensor dx = Tensor::empty({s.B, s.N, s.H, s.D}, dtype_of<T>());
  T* dxp = dx.data_ptr<T>();

  const int64_t chunks = (s.N + kChunk - 1) / kChunk;
  const int64_t slabs = std::min(chunks, kMaxSlabs);
  const int64_t dk = s.D * s.K, zsize = s.cols() * s.R;
  // Partials per (head, slab): dz (D 2K, R), and df, dtheta (D, K) accumulated in double.
  std::vector<T> dz_part(static_cast<size_t>(s.H * slabs * zsize), T(0));
  std::vector<double> df_part(static_cast<size_t>(s.H * slabs * dk), 0.0);
  std::vector<double> dtheta_part(df_part.size(), 0.0);
  // The gate's partials per (head, slab): da (D) in double, dw (D, R).
  const bool gated = in.gate.defined();
  std::vector<double> da_part(gated ? static_cast<size_t>(s.H * slabs * s.D) : 0, 0.0);
  std::vector<T> dw_part(gated ? static_cast<size_t>(s.H * slabs * s.D * s.R) : 0, T(0));

  const int64_t work = (2 * s.K + s.B) * (s.N / std::max<int64_t>(slabs, 1) + 1) * s.D * s.R;
  parallel_for(0, s.H * slabs, grain_for(work), [&](int64_t lo, int64_t hi) {
    const size_t code_size = static_cast<size_t>(kChunk * s.D * s.R);
    std::vector<T> omega(static_cast<size_t>(kChunk * s.cols())), domega(omega.size());
    std::vector<T> code(code_size), dcode(code_size), gated_code(gated ? code_size : 0);
    const int64_t two_k = 2 * s.K, ld_x = s.N * s.H * s.D, ld_g = s.N * s.H * s.R;
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t h = t / slabs, slab = t % slabs;
      T* dz = dz_part.data() + t * zsize;
      double* df = df_part.data() + t * dk;
      double* dtheta = dtheta_part.data() + t * dk;
      for (int64_t c = slab * chunks / slabs; c < (slab + 1) * chunks / slabs; ++c) {
        const int64_t n0 = c * kChunk, len = std::min(kChunk, s.N - n0);
        bases(in, h, n0, len, omega.data());
        build_code(in, h, omega.data(), len, code.data());
        if (gated)
          gate_codes(in.gate_a(h), in.gate_w(h), len, s.D, s.R, code.data(), gated_code.data());
        const T* applied = gated ? gated_code.data() : code.data();
        for (int64_t i = 0; i < len; ++i) {
          const T* x_n = in.xp() + row_offset(s, 0, n0 + i, h, s.D);
          const T* g_n = gp + row_offset(s, 0, n0 + i, h, s.R);
          const T* code_n = applied + i * s.D * s.R;
          // dx[:, n] = g[:, n] code[n]^T ;  dcode[n] = x[:, n]^T g[:, n]
          apply_code_input_grad(g_n, ld_g, code_n, s.B, s.D, s.R,
                                dxp + row_offset(s, 0, n0 + i, h, s.D), ld_x);
          apply_code_code_grad(x_n, ld_x, g_n, ld_g, s.B, s.D, s.R, dcode.data() + i * s.D * s.R);
        }
        // Through the gate: its gradients, then dcode becomes the ungated code's.
        if (gated)
          gate_codes_backward(in.gate_a(h), len, s.D, s.R, code.data(), dcode.data(), 0, s.D,
                              da_part.data() + t * s.D, dw_part.data() + t * s.D * s.R);
        for (int64_t d = 0; d < s.D; ++d) {
          // dz[d] += s omega[:, d]^T dcode[:, d] ;  domega[:, d] = s dcode[:, d] z[d]^T
          gemm<T>(true, false, two_k, s.R, len, in.scale, omega.data() + d * two_k, s.cols(),
                  dcode.data() + d * s.R, s.D * s.R, T(1), dz + d * two_k * s.R, s.R);
          gemm<T>(false, true, len, two_k, s.R, in.scale, dcode.data() + d * s.R, s.D * s.R,
                  in.zh(h) + d * two_k * s.R, s.R, T(0), domega.data() + d * two_k, s.cols());
        }
        for (int64_t i = 0; i < len; ++i) {
          const double two_pi_p = kTwoPi * static_cast<double>(in.offset + n0 + i);
          for (int64_t j = 0; j < dk; ++j) {
            const int64_t col = i * s.cols() + 2 * j;
            const double dalpha =
                static_cast<double>(omega[col] * domega[col + 1] - omega[col + 1] * domega[col]);
            df[j] += two_pi_p * dalpha;
            dtheta[j] += dalpha;
          }
        }
      }
    }
  });

  // Slab partials, added in slab order.
  const int64_t gate_size = s.D * s.R;
  SineSpeFilterGrads grads{
      dx,
      sum_slab_partials<T>(df_part, s.H, slabs, dk, {s.H, s.D, s.K}),
      in.theta.defined() ? sum_slab_partials<T>(dtheta_part, s.H, slabs, dk, {s.H, s.D, s.K})
                         : Tensor(),
      sum_slab_partials<T>(dz_part, s.H, slabs, zsize, {s.H, s.D, 2 * s.K, s.R}),
      gated ? sum_slab_partials<T>(da_part, s.H, slabs, s.D, {s.H, s.D}) : Tensor(),
      gated ? sum_slab_partials<T>(dw_part, s.H, slabs, gate_size, {s.H, s.D, s.R}) : Tensor()};
  return grads;
}

}  // namespace

SpeGate checked_gate(const SpeGate& gate, int64_t H, int64_t D, int64_t R, DType dtype,
                     const char* op) {
  if (!gate.defined()) return gate;
  const Shape a_shape = {H, D}, w_shape = {H, D, R};
  SPEAR_CHECK_SHAPE(gate.w.defined() && gate.a.shape() == a_shape && gate.w.shape() == w_shape, op,
                    ": the gate needs a (H, D) = ", a_shape, " and w (H, D, R) = ", w_shape,
                    ", got a ", gate.a.shape(), ", w ",
                    gate.w.defined() ? gate.w.shape() : Shape());
  SPEAR_CHECK_DTYPE(gate.a.dtype() == dtype && gate.w.dtype() == dtype, op, ": the gate is ",
                    gate.a.dtype(), ", ", gate.w.dtype(), " but the inputs are ", dtype);
  return {contiguous(gate.a), contiguous(gate.w)};
}

// x: (B,N,H,D), f, theta: (H,D,K), z: (H,D,2K,R) -> y: (B,N,H,R)
Tensor sine_spe_filter(const Tensor& x, const Tensor& f, const Tensor& theta, const Tensor& z,
                       int64_t offset, const SpeGate& gate) {
  const SineDims s = check_inputs("sine_spe_filter", x, f, theta, z);
  return SPEAR_DISPATCH_FLOAT(x.dtype(), "sine_spe_filter", [&] {
    return forward_impl(prepare<scalar_t>(s, x, f, theta, z, offset, gate, "sine_spe_filter"));
  });
}

// grad: (B,N,H,R) -> dx: (B,N,H,D), df, dtheta: (H,D,K), dz: (H,D,2K,R)
SineSpeFilterGrads sine_spe_filter_backward(const Tensor& grad, const Tensor& x, const Tensor& f,
                                            const Tensor& theta, const Tensor& z, int64_t offset,
                                            const SpeGate& gate) {
  const SineDims s = check_inputs("sine_spe_filter_backward", x, f, theta, z);
  const Shape y_shape = {s.B, s.N, s.H, s.R};
  SPEAR_CHECK_SHAPE(grad.shape() == y_shape, "sine_spe_filter_backward: grad ", grad.shape(),
                    " does not match the output (B, N, H, R) = ", y_shape);
  SPEAR_CHECK_DTYPE(grad.dtype() == x.dtype(), "sine_spe_filter_backward: grad is ", grad.dtype(),
                    " but x is ", x.dtype());
  return SPEAR_DISPATCH_FLOAT(x.dtype(), "sine_spe_filter_backward", [&] {
    return backward_impl(
        prepare<scalar_t>(s, x, f, theta, z, offset, gate, "sine_spe_filter_backward"), grad);
  });
}

}  // namespace spear::kernels
