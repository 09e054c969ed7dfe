// The fused sine SPE filter (Liutkus et al. 2021; ../shared/reference/spe_reference.md 2, 7.3).
//
// x: (B, N, H, D), f, theta: (H, D, K), z: (H, D, 2K, R) -> y: (B, N, H, R)
//   y[b,n,h,:] = s sum_{d,c} (x[b,n,h,d] omega[n,h,d,c]) z[h,d,c,:],  s = (R D)^(-1/4)
//
// The code Qbar[n,h,d,:] = s omega[n,h,d,:] z[h,d] is never formed: for one head and a chunk of
// positions, the bases omega (chunk, D, 2K) are computed on the fly from f and theta, multiplied
// into x, and the (chunk, D 2K) result goes through one GEMM with z_h (D 2K, R). Scratch per task
// is a few (chunk, D 2K) buffers, whatever N and B.
//
// Backward, with g = dy and M_b = g_b z_h^T (chunk, D 2K):
//   dx[b,n,h,d]  = s sum_c omega[n,d,c] M_b[n,d,c]
//   dz_h         = s sum_{b,n} (x_b omega)[n]^T g_b[n]
//   dalpha[n,d,k] = s sum_b x_b[n,d] (cos alpha M_b[n,d,2k+1] - sin alpha M_b[n,d,2k])
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
  const T* xp() const { return x.data_ptr<T>(); }
  const T* fp() const { return f.data_ptr<T>(); }
  const T* thetap() const { return theta.defined() ? theta.data_ptr<T>() : nullptr; }
  const T* zh(int64_t h) const { return z.data_ptr<T>() + h * s.cols() * s.R; }
};

template <typename T>
SineInputs<T> prepare(const SineDims& s, const Tensor& x, const Tensor& f, const Tensor& theta,
                      const Tensor& z, int64_t offset) {
  const double scale = std::pow(static_cast<double>(s.R * s.D), -0.25);
  return {s,
          contiguous(x),
          contiguous(f),
          theta.defined() ? contiguous(theta) : Tensor(),
          contiguous(z),
          offset,
          static_cast<T>(scale)};
}

// omega: (len, D, 2K), the bases of head h at positions p = offset + n0 + i: [cos alpha, sin
// alpha] pairs with alpha = 2 pi f p + theta. In double: f32 would lose ~1e-2 rad of phase at
// p ~ 1e5 (its ulp there), double keeps ~1e-11 (spec 10.8).
template <typename T>
void bases(const SineInputs<T>& in, int64_t h, int64_t n0, int64_t len, T* omega) {
  const SineDims& s = in.s;
  const T* f = in.fp() + h * s.D * s.K;
  const T* theta = in.thetap() ? in.thetap() + h * s.D * s.K : nullptr;
  for (int64_t i = 0; i < len; ++i) {
    const double p = static_cast<double>(in.offset + n0 + i);
    T* row = omega + i * s.cols();
    for (int64_t j = 0; j < s.D * s.K; ++j) {
      const double alpha = kTwoPi * (static_cast<double>(f[j]) * p) + (theta ? theta[j] : 0.0);
      row[2 * j] = static_cast<T>(std::cos(alpha));
      row[2 * j + 1] = static_cast<T>(std::sin(alpha));
    }
  }
}

// a = x_b (broadcast over the 2K columns of each d) * omega: (len, D 2K); row i of x_b at
// x_b + i * H * D.
template <typename T>
void modulate(const SineDims& s, const T* x_b, const T* omega, int64_t len, T* a) {
  for (int64_t i = 0; i < len; ++i)
    for (int64_t d = 0; d < s.D; ++d) {
      const T xv = x_b[i * s.H * s.D + d];
      const T* o = omega + (i * s.D + d) * 2 * s.K;
      T* out = a + (i * s.D + d) * 2 * s.K;
      for (int64_t c = 0; c < 2 * s.K; ++c) out[c] = xv * o[c];
    }
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
  parallel_for(
      0, s.H * chunks, grain_for(s.B * kChunk * s.cols() * s.R), [&](int64_t lo, int64_t hi) {
        std::vector<T> omega(static_cast<size_t>(kChunk * s.cols())), a(omega.size());
        for (int64_t t = lo; t < hi; ++t) {
          const int64_t h = t / chunks, n0 = (t % chunks) * kChunk,
                        len = std::min(kChunk, s.N - n0);
          bases(in, h, n0, len, omega.data());
          for (int64_t b = 0; b < s.B; ++b) {
            modulate(s, in.xp() + row_offset(s, b, n0, h, s.D), omega.data(), len, a.data());
            gemm<T>(false, false, len, s.R, s.cols(), in.scale, a.data(), s.cols(), in.zh(h), s.R,
                    T(0), yp + row_offset(s, b, n0, h, s.R), s.H * s.R);
          }
        }
      });
  return y;
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

  const int64_t work = s.B * (s.N / std::max<int64_t>(slabs, 1) + 1) * zsize;
  parallel_for(0, s.H * slabs, grain_for(work), [&](int64_t lo, int64_t hi) {
    const size_t buf = static_cast<size_t>(kChunk * s.cols());
    std::vector<T> omega(buf), m(buf), w(buf);
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t h = t / slabs, slab = t % slabs;
      T* dz = dz_part.data() + t * zsize;
      double* df = df_part.data() + t * dk;
      double* dtheta = dtheta_part.data() + t * dk;
      for (int64_t c = slab * chunks / slabs; c < (slab + 1) * chunks / slabs; ++c) {
        const int64_t n0 = c * kChunk, len = std::min(kChunk, s.N - n0);
        bases(in, h, n0, len, omega.data());
        std::fill(w.begin(), w.end(), T(0));  // w = sum_b x_b * M_b
        for (int64_t b = 0; b < s.B; ++b) {
          const T* x_b = in.xp() + row_offset(s, b, n0, h, s.D);
          const T* g_b = gp + row_offset(s, b, n0, h, s.R);
          T* dx_b = dxp + row_offset(s, b, n0, h, s.D);
          // M_b = g_b z_h^T
          gemm<T>(false, true, len, s.cols(), s.R, T(1), g_b, s.H * s.R, in.zh(h), s.R, T(0),
                  m.data(), s.cols());
          for (int64_t i = 0; i < len; ++i)
            for (int64_t d = 0; d < s.D; ++d) {
              const int64_t at = (i * s.D + d) * 2 * s.K;
              const T xv = x_b[i * s.H * s.D + d];
              T acc = 0;
              for (int64_t col = at; col < at + 2 * s.K; ++col) {
                acc += omega[col] * m[col];
                w[col] += xv * m[col];
              }
              dx_b[i * s.H * s.D + d] = in.scale * acc;
            }
          // dz_h += s (x_b omega)^T g_b, reusing m for x_b omega
          modulate(s, x_b, omega.data(), len, m.data());
          gemm<T>(true, false, s.cols(), s.R, len, in.scale, m.data(), s.cols(), g_b, s.H * s.R,
                  T(1), dz, s.R);
        }
        for (int64_t i = 0; i < len; ++i) {
          const double two_pi_p = kTwoPi * static_cast<double>(in.offset + n0 + i);
          for (int64_t j = 0; j < dk; ++j) {
            const int64_t col = i * s.cols() + 2 * j;
            const double dalpha =
                static_cast<double>(in.scale * (omega[col] * w[col + 1] - omega[col + 1] * w[col]));
            df[j] += two_pi_p * dalpha;
            dtheta[j] += dalpha;
          }
        }
      }
    }
  });

  // Slab partials, added in slab order.
  Tensor dz = zeros({s.H, s.D, 2 * s.K, s.R}, dtype_of<T>());
  Tensor df = Tensor::empty({s.H, s.D, s.K}, dtype_of<T>());
  Tensor dtheta = in.theta.defined() ? Tensor::empty({s.H, s.D, s.K}, dtype_of<T>()) : Tensor();
  T* dzp = dz.data_ptr<T>();
  for (int64_t h = 0; h < s.H; ++h)
    for (int64_t j = 0; j < dk; ++j) {
      double sum_f = 0, sum_theta = 0;
      for (int64_t slab = 0; slab < slabs; ++slab) {
        sum_f += df_part[(h * slabs + slab) * dk + j];
        sum_theta += dtheta_part[(h * slabs + slab) * dk + j];
      }
      df.data_ptr<T>()[h * dk + j] = static_cast<T>(sum_f);
      if (dtheta.defined()) dtheta.data_ptr<T>()[h * dk + j] = static_cast<T>(sum_theta);
    }
  for (int64_t h = 0; h < s.H; ++h)
    for (int64_t slab = 0; slab < slabs; ++slab) {
      const T* part = dz_part.data() + (h * slabs + slab) * zsize;
      for (int64_t e = 0; e < zsize; ++e) dzp[h * zsize + e] += part[e];
    }
  return {dx, df, dtheta, dz};
}

}  // namespace

// x: (B,N,H,D), f, theta: (H,D,K), z: (H,D,2K,R) -> y: (B,N,H,R)
Tensor sine_spe_filter(const Tensor& x, const Tensor& f, const Tensor& theta, const Tensor& z,
                       int64_t offset) {
  const SineDims s = check_inputs("sine_spe_filter", x, f, theta, z);
  return SPEAR_DISPATCH_FLOAT(x.dtype(), "sine_spe_filter", [&] {
    return forward_impl(prepare<scalar_t>(s, x, f, theta, z, offset));
  });
}

// grad: (B,N,H,R) -> dx: (B,N,H,D), df, dtheta: (H,D,K), dz: (H,D,2K,R)
SineSpeFilterGrads sine_spe_filter_backward(const Tensor& grad, const Tensor& x, const Tensor& f,
                                            const Tensor& theta, const Tensor& z, int64_t offset) {
  const SineDims s = check_inputs("sine_spe_filter_backward", x, f, theta, z);
  const Shape y_shape = {s.B, s.N, s.H, s.R};
  SPEAR_CHECK_SHAPE(grad.shape() == y_shape, "sine_spe_filter_backward: grad ", grad.shape(),
                    " does not match the output (B, N, H, R) = ", y_shape);
  SPEAR_CHECK_DTYPE(grad.dtype() == x.dtype(), "sine_spe_filter_backward: grad is ", grad.dtype(),
                    " but x is ", x.dtype());
  return SPEAR_DISPATCH_FLOAT(x.dtype(), "sine_spe_filter_backward", [&] {
    return backward_impl(prepare<scalar_t>(s, x, f, theta, z, offset), grad);
  });
}

}  // namespace spear::kernels
