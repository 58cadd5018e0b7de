// Fused CPU kernels of the KAN univariate-function layer and of inverse-transform sampling.
//
// Every evaluation computes the basis values of one input row (all I inputs of a sample) into a
// small scratch block that stays in L1, contracts it with the coefficients at once, and never
// materialises an (S, O, I, M) tensor; the backward kernels recompute the basis values (and their
// derivatives) instead of storing them. Inner loops run over the input index i, which is
// contiguous in every layout used here, so the compiler vectorises them (-O3 -march=native);
// transcendental functions are branch-free polynomial versions that vectorise too (float32) or
// the C library's (float64, used by gradient checks). Work is split over samples with OpenMP;
// gradients of parameters are accumulated per thread and summed at the end.
//
// Layouts (all row-major, contiguous):
//   grid_t  (K, I)    grid / knot column k of every input row i (transposed layer grid)
//   coef_t  (O, M, I) coefficients c[i, o, m] stored as [o][m][i]
//   wsp_t   (O, I)    w_spline[i, o] as [o][i] (null for Chebyshev: no spline scale)
//   wb_t    (O, I)    w_base[i, o] as [o][i] (null when the base branch is off)
//
// The C entry points at the end take raw pointers; tkam/kan/native.py builds this file and
// tkam/kan/native_calls.py is the one caller of the entry points.

#include <omp.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <cstdint>
#include <cstring>
#include <vector>

// The enums Basis and Act, TKAM_ABI_VERSION and TKAM_CODES, generated from the Python table
// (tkam/kan/codes.py) when tkam/kan/native.py builds this file.
#include "kan_codes.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Branch-free float32 transcendentals (Cephes polynomials, about 1-2 ulp), written so that the
// loops calling them vectorise; float64 uses the C library for accuracy.

inline float bits_to_float(int32_t b) { return __builtin_bit_cast(float, b); }

// exp on [-87, 88]: x = n ln 2 + r with |r| <= ln 2 / 2, then a degree-6 polynomial of r.
inline float exp_core(float x) {
  // Round to nearest by the 1.5 * 2^23 trick (exact for |x log2 e| < 2^22).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = std::fma(n, -0.693359375f, x);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r * r, r) + 1.0f;
  return p * bits_to_float((static_cast<int32_t>(n) + 127) << 23);
}

inline float exp_f(float x) {
  // Ternaries, not fmin/fmax, which the vectoriser does not take. Below -87 the result is 0, as
  // the exact exp rounds to (or near) zero there; no denormal ever leaves this function.
  const bool tiny = x < -87.0f;
  const float v = exp_core(tiny ? -87.0f : (x > 88.0f ? 88.0f : x));
  return tiny ? 0.0f : v;
}

// exp for arguments <= 0 (Gaussian bases): the same without the overflow clamp.
inline float exp_neg_f(float x) {
  const bool tiny = x < -87.0f;
  const float v = exp_core(tiny ? -87.0f : x);
  return tiny ? 0.0f : v;
}

#if defined(__AVX512F__)
// exp(x) for x <= 0, sixteen at a time: n = round(x / ln 2) by vrndscale, a two-part ln 2
// reduction, a degree-6 minimax polynomial of e^r on |r| <= ln 2 / 2 (2e-8 relative) and 2^n by
// vscalef, which also takes the results below float range to zero (with the denormals flushed).
inline __m512 exp_neg_avx512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-200.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693359375f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(0.0013829420786350965f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.008374771103262901f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.0416683591902256f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.1666642129421234f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.49999991059303284f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}
#endif

inline float tanh_f(float x) {
  const float ax = std::fabs(x);
  const float big = 1.0f - 2.0f / (exp_f(2.0f * ax) + 1.0f);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = std::fma(p, z, 2.06390887954e-2f);
  p = std::fma(p, z, -5.37397155531e-2f);
  p = std::fma(p, z, 1.33314422036e-1f);
  p = std::fma(p, z, -3.33332819422e-1f);
  const float small = std::fma(p * z, ax, ax);
  return std::copysign(ax < 0.625f ? small : big, x);
}

// sin and cos of x by reduction to |r| <= pi/4 (three-part Cody-Waite) and quadrant selection.
inline void sincos_f(float x, float& s, float& c) {
  const float q = (x * 0.63661977236758134f + 12582912.0f) - 12582912.0f;
  float r = std::fma(q, -1.5703125f, x);
  r = std::fma(q, -4.837512969970703125e-4f, r);
  r = std::fma(q, -7.54978995489188216e-8f, r);
  const float z = r * r;
  float ps = -1.9515295891e-4f;
  ps = std::fma(ps, z, 8.3321608736e-3f);
  ps = std::fma(ps, z, -1.6666654611e-1f);
  const float sr = std::fma(ps * z, r, r);
  float pc = 2.443315711809948e-5f;
  pc = std::fma(pc, z, -1.388731625493765e-3f);
  pc = std::fma(pc, z, 4.166664568298827e-2f);
  const float cr = std::fma(pc * z, z, std::fma(-0.5f, z, 1.0f));
  const int32_t k = static_cast<int32_t>(q);
  const bool swap = (k & 1) != 0;
  const float s0 = swap ? cr : sr;
  const float c0 = swap ? sr : cr;
  s = (k & 2) ? -s0 : s0;
  c = ((k + 1) & 2) ? -c0 : c0;
}

template <typename T>
struct Math;

template <>
struct Math<float> {
  static float exp(float x) { return exp_f(x); }
  static float exp_neg(float x) { return exp_neg_f(x); }
  static float tanh(float x) { return tanh_f(x); }
  static void sincos(float x, float& s, float& c) { sincos_f(x, s, c); }
};

template <>
struct Math<double> {
  static double exp(double x) { return std::exp(x); }
  static double exp_neg(double x) { return std::exp(x); }
  static double tanh(double x) { return std::tanh(x); }
  static void sincos(double x, double& s, double& c) {
    s = std::sin(x);
    c = std::cos(x);
  }
};

// Denormal operands cost about a hundred cycles each on x86; products of tiny basis values and
// coefficients would produce them. Every kernel thread flushes them to zero (FTZ and DAZ) while
// it runs and restores its previous mode afterwards.
struct FlushDenormals {
#if defined(__SSE__)
  unsigned int saved;
  FlushDenormals() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

// ---------------------------------------------------------------------------------------------
// Layer description shared by all kernels.

template <typename T>
struct Spec {
  int64_t I, O, M, K;
  int basis, degree, act;
  const T* grid_t;  // (K, I): grid column k of input i at grid_t[k * ld + i]
  int64_t ld;       // row stride of grid_t (I; a chunk keeps the stride of its full row)
  T scale;          // rbf: 1/(h tau); rswaf: 1/tau; fourier: 2 pi tau; chebyshev: 1/tau
  T tau;
};

// Columns evaluated together: a chunk's basis values (M x CHUNK) stay in L1.
constexpr int64_t CHUNK = 256;

// Scratch (elements) of one evaluation of `width` columns.
template <typename T>
int64_t scratch_size(const Spec<T>& sp, int64_t width) {
  const int64_t rows = std::max<int64_t>(sp.K, 8);
  return 2 * rows * width + 8 * width;
}

// Basis values of `n` columns: B[m*n + i] = B_m(x_i; column i); with DX their x-derivatives,
// with DT their tau-derivatives (same layout). `work` holds scratch_size(sp, n) elements.
template <typename T, int BASIS, bool DX, bool DT>
void basis_row(const Spec<T>& sp, const T* __restrict x, int64_t n, T* __restrict B,
               T* __restrict dX, T* __restrict dT, T* __restrict work) {
  const int64_t M = sp.M, ld = sp.ld;
  if constexpr (BASIS == RBF) {
    const T s = sp.scale, inv_tau = T(1) / sp.tau;
    for (int64_t m = 0; m < M; ++m) {
      const T* __restrict g = sp.grid_t + m * ld;
      T* __restrict b = B + m * n;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T t = (x[i] - g[i]) * s;
        const T e = Math<T>::exp(T(-0.5) * t * t);
        b[i] = e;
        if constexpr (DX) dX[m * n + i] = -e * t * s;
        if constexpr (DT) dT[m * n + i] = e * t * t * inv_tau;
      }
    }
  } else if constexpr (BASIS == RSWAF) {
    const T s = sp.scale;  // 1 / tau
    for (int64_t m = 0; m < M; ++m) {
      const T* __restrict g = sp.grid_t + m * ld;
      T* __restrict b = B + m * n;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T d = x[i] - g[i];
        const T th = Math<T>::tanh(d * s);
        const T v = T(1) - th * th;
        b[i] = v;
        if constexpr (DX) dX[m * n + i] = T(-2) * th * v * s;
        if constexpr (DT) dT[m * n + i] = T(2) * th * v * d * s * s;
      }
    }
  } else if constexpr (BASIS == FOURIER) {
    const int64_t G = M / 2 - 1;
    const T w = sp.scale;  // 2 pi tau
    const T two_pi = T(6.283185307179586476925286766559);
    T* __restrict c1 = work;
    T* __restrict s1 = work + n;
    T* __restrict ck = work + 2 * n;
    T* __restrict sk = work + 3 * n;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      T s, c;
      Math<T>::sincos(w * x[i], s, c);
      c1[i] = c;
      s1[i] = s;
      ck[i] = T(1);
      sk[i] = T(0);
      B[i] = T(1);
      B[(G + 1) * n + i] = T(0);
      if constexpr (DX) {
        dX[i] = T(0);
        dX[(G + 1) * n + i] = T(0);
      }
      if constexpr (DT) {
        dT[i] = T(0);
        dT[(G + 1) * n + i] = T(0);
      }
    }
    for (int64_t k = 1; k <= G; ++k) {
      const T kw = T(k) * w, k2p = T(k) * two_pi;
      T* __restrict bc = B + k * n;
      T* __restrict bs = B + (G + 1 + k) * n;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        // cos/sin(k a) from ((k-1) a) by the angle-addition recurrence.
        const T c = ck[i] * c1[i] - sk[i] * s1[i];
        const T s = sk[i] * c1[i] + ck[i] * s1[i];
        ck[i] = c;
        sk[i] = s;
        bc[i] = c;
        bs[i] = s;
        if constexpr (DX) {
          dX[k * n + i] = -kw * s;
          dX[(G + 1 + k) * n + i] = kw * c;
        }
        if constexpr (DT) {
          dT[k * n + i] = -k2p * x[i] * s;
          dT[(G + 1 + k) * n + i] = k2p * x[i] * c;
        }
      }
    }
  } else if constexpr (BASIS == CHEBYSHEV) {
    const T s = sp.scale;  // 1 / tau
    T* __restrict y = work;
    T* __restrict dy = work + n;      // dy/dx
    T* __restrict ty = work + 2 * n;  // dy/dtau
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const T th = Math<T>::tanh(x[i]);
      y[i] = th * s;
      dy[i] = (T(1) - th * th) * s;
      ty[i] = -th * s * s;
      B[i] = T(1);
      if (M > 1) B[n + i] = y[i];
    }
    // dT_n/dy by T'_n = 2 T_{n-1} + 2 y T'_{n-1} - T'_{n-2}, then the chain rule.
    T* __restrict dn = (DX || DT) ? (DX ? dX : dT) : nullptr;
    if (dn) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        dn[i] = T(0);
        if (M > 1) dn[n + i] = T(1);
      }
    }
    for (int64_t k = 2; k < M; ++k) {
      T* __restrict b = B + k * n;
      const T* __restrict b1 = B + (k - 1) * n;
      const T* __restrict b2 = B + (k - 2) * n;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) b[i] = T(2) * y[i] * b1[i] - b2[i];
      if (dn) {
        T* __restrict d = dn + k * n;
        const T* __restrict d1 = dn + (k - 1) * n;
        const T* __restrict d2 = dn + (k - 2) * n;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) d[i] = T(2) * b1[i] + T(2) * y[i] * d1[i] - d2[i];
      }
    }
    if (dn) {
      for (int64_t k = 0; k < M; ++k) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
          const T d = dn[k * n + i];
          if constexpr (DT) dT[k * n + i] = d * ty[i];
          if constexpr (DX) dX[k * n + i] = d * dy[i];
        }
      }
    }
  } else {  // BSPLINE: Cox-de Boor on the extended knot rows, as many levels as the degree
    const int64_t K = sp.K;
    const int k = sp.degree;
    const T* __restrict t = sp.grid_t;
    T* __restrict b = work;                 // (K-1, n)
    T* __restrict db = work + (K - 1) * n;  // (K-1, n)
    for (int64_t j = 0; j < K - 1; ++j) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        b[j * n + i] = (x[i] >= t[j * ld + i] && x[i] < t[(j + 1) * ld + i]) ? T(1) : T(0);
        if constexpr (DX) db[j * n + i] = T(0);
      }
    }
    for (int d = 1; d <= k; ++d) {
      for (int64_t j = 0; j < K - 1 - d; ++j) {
        const T* __restrict tj = t + j * ld;
        const T* __restrict tj1 = t + (j + 1) * ld;
        const T* __restrict tjd = t + (j + d) * ld;
        const T* __restrict tjd1 = t + (j + d + 1) * ld;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
          const T left_den = tjd[i] - tj[i];
          const T right_den = tjd1[i] - tj1[i];
          const T left = left_den > T(0) ? (x[i] - tj[i]) / left_den : T(0);
          const T right = right_den > T(0) ? (tjd1[i] - x[i]) / right_den : T(0);
          const T b0 = b[j * n + i], b1 = b[(j + 1) * n + i];
          if constexpr (DX) {
            const T lp = left_den > T(0) ? T(1) / left_den : T(0);
            const T rp = right_den > T(0) ? T(-1) / right_den : T(0);
            db[j * n + i] = lp * b0 + left * db[j * n + i] + rp * b1 + right * db[(j + 1) * n + i];
          }
          b[j * n + i] = left * b0 + right * b1;
        }
      }
    }
    std::memcpy(B, b, sizeof(T) * M * n);
    if constexpr (DX) std::memcpy(dX, db, sizeof(T) * M * n);
    if constexpr (DT) std::memset(dT, 0, sizeof(T) * M * n);  // tau is not used by B-splines
  }
}

// Base activation a(x) and, when da is given, a'(x), matching torch's definitions.
template <typename T>
void activation_row(int kind, const T* __restrict x, int64_t n, T* __restrict a,
                    T* __restrict da) {
  const bool d = da != nullptr;
  switch (kind) {
    case A_RELU:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        a[i] = x[i] > T(0) ? x[i] : T(0);
        if (d) da[i] = x[i] > T(0) ? T(1) : T(0);
      }
      break;
    case A_LEAKYRELU:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        a[i] = x[i] > T(0) ? x[i] : T(0.01) * x[i];
        if (d) da[i] = x[i] > T(0) ? T(1) : T(0.01);
      }
      break;
    case A_TANH:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T th = Math<T>::tanh(x[i]);
        a[i] = th;
        if (d) da[i] = T(1) - th * th;
      }
      break;
    case A_SIGMOID:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T sg = T(1) / (T(1) + Math<T>::exp(-x[i]));
        a[i] = sg;
        if (d) da[i] = sg * (T(1) - sg);
      }
      break;
    case A_SWISH:  // hard-swish, the reference's "swish"
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T v = x[i];
        a[i] = v <= T(-3) ? T(0) : (v >= T(3) ? v : v * (v + T(3)) / T(6));
        if (d) da[i] = v < T(-3) ? T(0) : (v <= T(3) ? v / T(3) + T(0.5) : T(1));
      }
      break;
    case A_GELU: {
      const T k0 = T(0.7978845608028654), k1 = T(0.044715);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T v = x[i];
        const T th = Math<T>::tanh(k0 * (v + k1 * v * v * v));
        a[i] = T(0.5) * v * (T(1) + th);
        if (d)
          da[i] = T(0.5) * (T(1) + th) +
                  T(0.5) * v * (T(1) - th * th) * k0 * (T(1) + T(3) * k1 * v * v);
      }
      break;
    }
    case A_SELU: {
      const T alpha = T(1.6732632423543772848170429916717);
      const T scale = T(1.0507009873554804934193349852946);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T e = Math<T>::exp(x[i] < T(0) ? x[i] : T(0));
        a[i] = x[i] > T(0) ? scale * x[i] : scale * alpha * (e - T(1));
        if (d) da[i] = x[i] > T(0) ? scale : scale * alpha * e;
      }
      break;
    }
    case A_SILU:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T sg = T(1) / (T(1) + Math<T>::exp(-x[i]));
        a[i] = x[i] * sg;
        if (d) da[i] = sg * (T(1) + x[i] * (T(1) - sg));
      }
      break;
    case A_ELU:
    case A_CELU:  // celu with alpha = 1 equals elu
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T e = Math<T>::exp(x[i] < T(0) ? x[i] : T(0));
        a[i] = x[i] > T(0) ? x[i] : e - T(1);
        if (d) da[i] = x[i] > T(0) ? T(1) : e;
      }
      break;
    default:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        a[i] = T(0);
        if (d) da[i] = T(0);
      }
  }
}

// acc[i] = sum_m W[m*ldw + i] * B[m*n + i], i < n
template <typename T>
inline void contract(const T* __restrict W, int64_t ldw, const T* __restrict B, int64_t M,
                     int64_t n, T* __restrict acc) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) acc[i] = W[i] * B[i];
  for (int64_t m = 1; m < M; ++m) {
    const T* __restrict w = W + m * ldw;
    const T* __restrict b = B + m * n;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) acc[i] = std::fma(w[i], b[i], acc[i]);
  }
}

#if defined(__AVX512F__)
// The RBF loops of basis_contract and basis_contract_backward for float32, by hand: the
// compiler does not emit vrndscale and vscalef, which halve the cost of each exponential.
inline __mmask16 tail_mask(int64_t remaining) {
  return remaining >= 16 ? static_cast<__mmask16>(0xFFFF)
                         : static_cast<__mmask16>((1u << remaining) - 1u);
}

inline void rbf_contract_avx512(const float* __restrict x, const float* __restrict grid,
                                int64_t ld, const float* __restrict W, int64_t ldw, int64_t M,
                                int64_t n, float s, float* __restrict acc) {
  const __m512 sv = _mm512_set1_ps(s);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 xv = _mm512_maskz_loadu_ps(k, x + i);
    __m512 a = _mm512_setzero_ps();
    for (int64_t m = 0; m < M; ++m) {
      const __m512 t = _mm512_mul_ps(_mm512_sub_ps(xv, _mm512_maskz_loadu_ps(k, grid + m * ld + i)), sv);
      const __m512 v = exp_neg_avx512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(t, t)));
      a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, W + m * ldw + i), v, a);
    }
    _mm512_mask_storeu_ps(acc + i, k, a);
  }
}

template <bool GC, bool SP, bool DX, bool DT>
inline void rbf_backward_avx512(const float* __restrict x, const float* __restrict grid,
                                int64_t ld, const float* __restrict W, int64_t ldw, int64_t M,
                                int64_t n, float s, const float* __restrict gw,
                                float* __restrict gc, int64_t ldc, float* __restrict spline,
                                float* __restrict dx, float* __restrict dt) {
  const __m512 sv = _mm512_set1_ps(s);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 xv = _mm512_maskz_loadu_ps(k, x + i);
    const __m512 gv = GC ? _mm512_maskz_loadu_ps(k, gw + i) : _mm512_setzero_ps();
    __m512 sp = _mm512_setzero_ps(), d = _mm512_setzero_ps(), e = _mm512_setzero_ps();
    for (int64_t m = 0; m < M; ++m) {
      const __m512 t = _mm512_mul_ps(_mm512_sub_ps(xv, _mm512_maskz_loadu_ps(k, grid + m * ld + i)), sv);
      const __m512 u = _mm512_mul_ps(t, t);
      const __m512 v = exp_neg_avx512(_mm512_sub_ps(_mm512_setzero_ps(), u));
      if constexpr (GC) {
        float* c = gc + m * ldc + i;
        _mm512_mask_storeu_ps(c, k, _mm512_fmadd_ps(gv, v, _mm512_maskz_loadu_ps(k, c)));
      }
      const __m512 wv = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, W + m * ldw + i), v);
      if constexpr (SP) sp = _mm512_add_ps(sp, wv);
      if constexpr (DX) d = _mm512_fmadd_ps(wv, t, d);
      if constexpr (DT) e = _mm512_fmadd_ps(wv, u, e);
    }
    if constexpr (SP) _mm512_mask_storeu_ps(spline + i, k, sp);
    if constexpr (DX) _mm512_mask_storeu_ps(dx + i, k, d);
    if constexpr (DT) _mm512_mask_storeu_ps(dt + i, k, e);
  }
}
#endif

// acc[i] = sum_m W[m*ldw + i] B_m(x_i) without storing the basis values: for one output (the
// pairwise evaluation) each value is used once, so RBF and RSWAF accumulate as they go.
template <typename T, int BASIS>
void basis_contract(const Spec<T>& sp, const T* __restrict x, int64_t n, const T* __restrict W,
                    int64_t ldw, T* __restrict acc, T* __restrict B, T* __restrict work) {
  const int64_t M = sp.M, ld = sp.ld;
#if defined(__AVX512F__)
  if constexpr (BASIS == RBF && std::is_same_v<T, float>) {
    rbf_contract_avx512(x, sp.grid_t, ld, W, ldw, M, n, sp.scale * 0.70710678118654752440f, acc);
    return;
  }
#endif
  if constexpr (BASIS == RBF || BASIS == RSWAF) {
    // RBF: exp(-t'^2) with t' = (x - g) s / sqrt(2), so the exponent costs one product.
    const T s = BASIS == RBF ? sp.scale * T(0.70710678118654752440) : sp.scale;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) acc[i] = T(0);
    for (int64_t m = 0; m < M; ++m) {
      const T* __restrict g = sp.grid_t + m * ld;
      const T* __restrict w = W + m * ldw;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T t = (x[i] - g[i]) * s;
        T v;
        if constexpr (BASIS == RBF) {
          v = Math<T>::exp_neg(-(t * t));
        } else {
          const T th = Math<T>::tanh(t);
          v = T(1) - th * th;
        }
        acc[i] = std::fma(w[i], v, acc[i]);
      }
    }
  } else {
    basis_row<T, BASIS, false, false>(sp, x, n, B, nullptr, nullptr, work);
    contract(W, ldw, B, M, n, acc);
  }
}

// The backward of basis_contract for RBF and RSWAF, in one pass over the bases: with gw the
// gradient reaching the spline sum, adds gw * B_m to gc[m*ldc + i] (coefficients) and leaves
// sum_m W B_m (for w_spline), sum_m W dB_m/dx (for x) and sum_m W dB_m/dtau (for tau) in
// spline, dx and dt.
template <typename T, int BASIS, bool GC, bool SP, bool DX, bool DT>
void basis_contract_backward(const Spec<T>& sp, const T* __restrict x, int64_t n,
                             const T* __restrict W, int64_t ldw, const T* __restrict gw,
                             T* __restrict gc, int64_t ldc, T* __restrict spline,
                             T* __restrict dx, T* __restrict dt) {
  const int64_t M = sp.M, ld = sp.ld;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (SP) spline[i] = T(0);
    if constexpr (DX) dx[i] = T(0);
    if constexpr (DT) dt[i] = T(0);
  }
  if constexpr (BASIS == RBF) {
    // B = exp(-t'^2), t' = (x - g) s / sqrt(2): dB/dx = -sqrt(2) s B t' and
    // dB/dtau = 2 B t'^2 / tau; the constant factors are applied once after the sums.
    const T s = sp.scale * T(0.70710678118654752440);
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      rbf_backward_avx512<GC, SP, DX, DT>(x, sp.grid_t, ld, W, ldw, M, n, s, gw, gc, ldc, spline,
                                           dx, dt);
    } else
#endif
    for (int64_t m = 0; m < M; ++m) {
      const T* __restrict g = sp.grid_t + m * ld;
      const T* __restrict w = W + m * ldw;
      T* __restrict c = GC ? gc + m * ldc : nullptr;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T t = (x[i] - g[i]) * s;
        const T u = t * t;
        const T v = Math<T>::exp_neg(-u);
        if constexpr (GC) c[i] = std::fma(gw[i], v, c[i]);
        const T wv = w[i] * v;
        if constexpr (SP) spline[i] += wv;
        if constexpr (DX) dx[i] = std::fma(wv, t, dx[i]);
        if constexpr (DT) dt[i] = std::fma(wv, u, dt[i]);
      }
    }
    const T fx = -T(1.41421356237309504880) * sp.scale, ft = T(2) / sp.tau;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (DX) dx[i] *= fx;
      if constexpr (DT) dt[i] *= ft;
    }
  } else {
    const T s = sp.scale;
    for (int64_t m = 0; m < M; ++m) {
      const T* __restrict g = sp.grid_t + m * ld;
      const T* __restrict w = W + m * ldw;
      T* __restrict c = GC ? gc + m * ldc : nullptr;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T d = x[i] - g[i];
        const T th = Math<T>::tanh(d * s);
        const T v = T(1) - th * th;
        if constexpr (GC) c[i] = std::fma(gw[i], v, c[i]);
        if constexpr (SP) spline[i] = std::fma(w[i], v, spline[i]);
        if constexpr (DX) dx[i] = std::fma(w[i], T(-2) * th * v * s, dx[i]);
        if constexpr (DT) dt[i] = std::fma(w[i], T(2) * th * v * d * s * s, dt[i]);
      }
    }
  }
}

// Per-thread buffers of the evaluation of up to `width` columns.
template <typename T>
struct Rows {
  std::vector<T> buf;
  T *B, *dX, *dT, *work, *a, *da, *acc, *acc2, *gw, *gconst;
  Rows(const Spec<T>& sp, int64_t width) {
    const int64_t MW = sp.M * width, scratch = scratch_size(sp, width);
    buf.assign(3 * MW + scratch + 6 * width, T(0));
    T* p = buf.data();
    B = p, p += MW;
    dX = p, p += MW;
    dT = p, p += MW;
    work = p, p += scratch;
    a = p, p += width;
    da = p, p += width;
    acc = p, p += width;
    acc2 = p, p += width;
    gw = p, p += width;
    gconst = p;
  }
};

template <typename T, int BASIS>
void basis_any(const Spec<T>& sp, const T* x, int64_t n, Rows<T>& r, bool dx, bool dt) {
  if (dx && dt)
    basis_row<T, BASIS, true, true>(sp, x, n, r.B, r.dX, r.dT, r.work);
  else if (dx)
    basis_row<T, BASIS, true, false>(sp, x, n, r.B, r.dX, r.dT, r.work);
  else if (dt)
    basis_row<T, BASIS, false, true>(sp, x, n, r.B, r.dX, r.dT, r.work);
  else
    basis_row<T, BASIS, false, false>(sp, x, n, r.B, r.dX, r.dT, r.work);
}

// The columns [i0, i0 + n) of a layer: the grid pointer moves, its row stride stays.
template <typename T>
Spec<T> columns(const Spec<T>& sp, int64_t i0) {
  Spec<T> c = sp;
  c.grid_t = sp.grid_t ? sp.grid_t + i0 : nullptr;
  return c;
}

// out[s, o, i] = wsp[o, i] * sum_m c[o, m, i] B_m(x[s, i]) + wb[o, i] a(x[s, i]) (maths 2.1),
// over (sample, chunk of columns) work items. The univariate prior's pairwise evaluation is
// this with O = 1 over the flattened (o, i) columns (the caller lays the tables out so).
template <typename T, int BASIS>
void eval_fwd(const Spec<T>& sp, const T* coef_t, const T* wsp_t, const T* wb_t, const T* x,
              int64_t S, T* out, int threads) {
  const int64_t I = sp.I, O = sp.O, M = sp.M;
  const int64_t width = std::min(I, CHUNK), chunks = (I + width - 1) / width;
  const bool base = wb_t != nullptr && sp.act != A_NONE;
#pragma omp parallel num_threads(threads)
  {
    FlushDenormals ftz;
    Rows<T> r(sp, width);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < S * chunks; ++item) {
      const int64_t s = item / chunks, i0 = (item % chunks) * width;
      const int64_t n = std::min(width, I - i0);
      const T* xr = x + s * I + i0;
      if (O > 1) basis_any<T, BASIS>(columns(sp, i0), xr, n, r, false, false);
      if (base) activation_row<T>(sp.act, xr, n, r.a, nullptr);
      for (int64_t o = 0; o < O; ++o) {
        if (O > 1)
          contract(coef_t + o * M * I + i0, I, r.B, M, n, r.acc);
        else
          basis_contract<T, BASIS>(columns(sp, i0), xr, n, coef_t + i0, I, r.acc, r.B, r.work);
        T* y = out + (s * O + o) * I + i0;
        if (wsp_t) {
          const T* w = wsp_t + o * I + i0;
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) y[i] = w[i] * r.acc[i];
        } else {
          std::memcpy(y, r.acc, sizeof(T) * n);
        }
        if (base) {
          const T* w = wb_t + o * I + i0;
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) y[i] = std::fma(w[i], r.a[i], y[i]);
        }
      }
    }
  }
}

template <typename T>
void add_into(T* dst, const std::vector<T>& src) {
  if (!dst || src.empty()) return;
  const int64_t count = static_cast<int64_t>(src.size());
#pragma omp simd
  for (int64_t k = 0; k < count; ++k) dst[k] += src[k];
}

// sum_i g[i] * phi_i: the functions' values (w_spline * spline + w_base * a, with the spline
// sums in r.acc and the activations in r.a) weighted by g, for a fused value-and-gradient pass.
template <typename T>
T weighted_output(const Rows<T>& r, const T* g, const T* wsp, const T* wb, int64_t n) {
  T total = T(0);
#pragma omp simd reduction(+ : total)
  for (int64_t i = 0; i < n; ++i) {
    T y = wsp ? wsp[i] * r.acc[i] : r.acc[i];
    if (wb) y = std::fma(wb[i], r.a[i], y);
    total += g[i] * y;
  }
  return total;
}

// One (sample, chunk) item of the one-output backward (the pairwise evaluation) for RBF and
// RSWAF: one pass over the bases, nothing stored per basis.
template <typename T, int BASIS>
void pairwise_backward_item(const Spec<T>& sp, Rows<T>& r, const T* coef_t, const T* wsp_t,
                            const T* wb_t, const T* xr, const T* g, int64_t i0, int64_t n,
                            bool base, T* gxr, std::vector<T>& pg_coef, std::vector<T>& pg_wsp,
                            std::vector<T>& pg_wb, T* tau_total, T* value) {
  const int64_t I = sp.I;
  const Spec<T> c = columns(sp, i0);
  if (wsp_t) {
    const T* w = wsp_t + i0;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) r.gw[i] = g[i] * w[i];
  } else {
    std::memcpy(r.gw, g, sizeof(T) * n);
  }
  const bool gc = !pg_coef.empty(), spl = !pg_wsp.empty() || value, dx = gxr != nullptr;
  const bool dt = tau_total != nullptr;
  T* gcp = gc ? pg_coef.data() + i0 : nullptr;
  const T* W = coef_t + i0;
  // 16 combinations of what is needed, each a tight loop.
  const int key = (gc ? 8 : 0) | (spl ? 4 : 0) | (dx ? 2 : 0) | (dt ? 1 : 0);
  switch (key) {
#define TKAM_CASE(K, A, B_, C_, D_)                                                              \
  case K:                                                                                      \
    basis_contract_backward<T, BASIS, A, B_, C_, D_>(c, xr, n, W, I, r.gw, gcp, I, r.acc, r.acc2, \
                                                     r.dT);                                     \
    break;
    TKAM_CASE(0, false, false, false, false)
    TKAM_CASE(1, false, false, false, true)
    TKAM_CASE(2, false, false, true, false)
    TKAM_CASE(3, false, false, true, true)
    TKAM_CASE(4, false, true, false, false)
    TKAM_CASE(5, false, true, false, true)
    TKAM_CASE(6, false, true, true, false)
    TKAM_CASE(7, false, true, true, true)
    TKAM_CASE(8, true, false, false, false)
    TKAM_CASE(9, true, false, false, true)
    TKAM_CASE(10, true, false, true, false)
    TKAM_CASE(11, true, false, true, true)
    TKAM_CASE(12, true, true, false, false)
    TKAM_CASE(13, true, true, false, true)
    TKAM_CASE(14, true, true, true, false)
    TKAM_CASE(15, true, true, true, true)
#undef TKAM_CASE
  }
  if (!pg_wsp.empty()) {
    T* dst = pg_wsp.data() + i0;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = std::fma(g[i], r.acc[i], dst[i]);
  }
  if (base) activation_row<T>(sp.act, xr, n, r.a, dx ? r.da : nullptr);
  if (value) *value += weighted_output(r, g, wsp_t ? wsp_t + i0 : nullptr,
                                       base ? wb_t + i0 : nullptr, n);
  if (!pg_wb.empty()) {
    T* dst = pg_wb.data() + i0;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = std::fma(g[i], r.a[i], dst[i]);
  }
  if (dx) {
    if (base) {
      const T* w = wb_t + i0;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) gxr[i] = r.gw[i] * r.acc2[i] + g[i] * w[i] * r.da[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) gxr[i] = r.gw[i] * r.acc2[i];
    }
  }
  if (dt) {
    T partial = T(0);
#pragma omp simd reduction(+ : partial)
    for (int64_t i = 0; i < n; ++i) partial += r.gw[i] * r.dT[i];
    *tau_total += partial;
  }
}

#if defined(__AVX512F__)
// eval_bwd's weighted pass (row weights, one output, no dL/dx) for RBF in float32: blocks of 16
// columns, each owned by one thread, with the samples inside. A block's coefficient gradients
// (M vectors) stay in L1 over all samples instead of every sample streaming the whole (M, I)
// table through the cache, and every sum runs over the samples in order, so the result does
// not depend on the number of threads. Per sample the arithmetic is basis_contract_backward's.
template <bool GC, bool DT>
void rbf_weighted_avx512(const Spec<float>& sp, const float* coef_t, const float* wsp_t,
                         const float* wb_t, const float* x, const float* row_weights, int64_t S,
                         float* g_coef_t, float* g_wsp_t, float* g_wb_t, float* g_tau,
                         float* value, int threads) {
  const int64_t I = sp.I, M = sp.M, ld = sp.ld, blocks = (I + 15) / 16;
  const bool base = wb_t != nullptr && sp.act != A_NONE;
  const float s = sp.scale * 0.70710678118654752440f;
  std::vector<float> value_parts(blocks, 0.0f), tau_parts(blocks, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    FlushDenormals ftz;
    std::vector<float> gc_buffer(GC ? M * 16 : 0), packed(2 * S * 16);
    float* __restrict gc = gc_buffer.data();
    float* __restrict xs = packed.data();           // (S, 16): the block's inputs
    float* __restrict as = xs + S * 16;            // (S, 16): their base activations
    const __m512 sv = _mm512_set1_ps(s), zero = _mm512_setzero_ps();
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t i0 = b * 16;
      const __mmask16 k = tail_mask(I - i0);
      if constexpr (GC) std::fill(gc_buffer.begin(), gc_buffer.end(), 0.0f);
      const __m512 wsp = wsp_t ? _mm512_maskz_loadu_ps(k, wsp_t + i0) : _mm512_set1_ps(1.0f);
      const __m512 wb = base ? _mm512_maskz_loadu_ps(k, wb_t + i0) : zero;
      __m512 total = zero, g_wsp = zero, g_wb = zero, tau = zero;
      for (int64_t n = 0; n < S; ++n)
        _mm512_storeu_ps(xs + n * 16, _mm512_maskz_loadu_ps(k, x + n * I + i0));
      if (base) activation_row<float>(sp.act, xs, S * 16, as, nullptr);
      for (int64_t n = 0; n < S; ++n) {
        const __m512 w = _mm512_set1_ps(row_weights[n]);
        const __m512 xv = _mm512_loadu_ps(xs + n * 16);
        const __m512 gw = _mm512_mul_ps(w, wsp);
        __m512 spline = zero, d = zero;
        for (int64_t m = 0; m < M; ++m) {
          const __m512 t =
              _mm512_mul_ps(_mm512_sub_ps(xv, _mm512_maskz_loadu_ps(k, sp.grid_t + m * ld + i0)), sv);
          const __m512 u = _mm512_mul_ps(t, t);
          const __m512 v = exp_neg_avx512(_mm512_sub_ps(zero, u));
          if constexpr (GC) {
            float* c = gc + m * 16;
            _mm512_storeu_ps(c, _mm512_fmadd_ps(gw, v, _mm512_loadu_ps(c)));
          }
          const __m512 wv = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, coef_t + m * I + i0), v);
          spline = _mm512_add_ps(spline, wv);
          if constexpr (DT) d = _mm512_fmadd_ps(wv, u, d);
        }
        const __m512 a = base ? _mm512_maskz_loadu_ps(k, as + n * 16) : zero;
        // The weighted function values w_spline * spline + w_base * a, and the sums that give
        // the gradients of w_spline, w_base and tau.
        total = _mm512_fmadd_ps(w, _mm512_fmadd_ps(wb, a, _mm512_mul_ps(wsp, spline)), total);
        g_wsp = _mm512_fmadd_ps(w, spline, g_wsp);
        g_wb = _mm512_fmadd_ps(w, a, g_wb);
        if constexpr (DT) tau = _mm512_fmadd_ps(gw, d, tau);
      }
      if constexpr (GC)
        for (int64_t m = 0; m < M; ++m)
          _mm512_mask_storeu_ps(g_coef_t + m * I + i0, k, _mm512_loadu_ps(gc + m * 16));
      if (g_wsp_t) _mm512_mask_storeu_ps(g_wsp_t + i0, k, g_wsp);
      if (g_wb_t) _mm512_mask_storeu_ps(g_wb_t + i0, k, g_wb);
      value_parts[b] = _mm512_reduce_add_ps(_mm512_maskz_mov_ps(k, total));
      if constexpr (DT) tau_parts[b] = _mm512_reduce_add_ps(_mm512_maskz_mov_ps(k, tau));
    }
  }
  float value_total = 0.0f, tau_total = 0.0f;
  for (int64_t b = 0; b < blocks; ++b) {
    value_total += value_parts[b];
    tau_total += tau_parts[b];
  }
  if (value) *value = value_total;
  if (g_tau) *g_tau = DT ? tau_total * (2.0f / sp.tau) : 0.0f;
}
#endif

// The backward of eval_fwd: dL/dx, and dL/d(coef, w_spline, w_base, tau) accumulated per thread
// and summed at the end. The basis values and their derivatives are recomputed, not stored.
//
// With `row_weights`, the gradient of every output of sample s is row_weights[s] (gout unused):
// the backward of sum_s w_s sum_{o,i} y[s, o, i]; with `value`, that sum itself is returned,
// so one pass gives a weighted sum of function values and all its gradients.
template <typename T, int BASIS>
void eval_bwd(const Spec<T>& sp, const T* coef_t, const T* wsp_t, const T* wb_t, const T* x,
              const T* gout, const T* row_weights, int64_t S, T* gx, T* g_coef_t, T* g_wsp_t,
              T* g_wb_t, T* g_tau, T* value, int threads) {
  const int64_t I = sp.I, O = sp.O, M = sp.M;
  const int64_t width = std::min(I, CHUNK), chunks = (I + width - 1) / width;
  const bool base = wb_t != nullptr && sp.act != A_NONE;
  const bool need_dx = gx != nullptr, need_dt = g_tau != nullptr && BASIS != BSPLINE;
#if defined(__AVX512F__)
  if constexpr (BASIS == RBF && std::is_same_v<T, float>) {
    if (O == 1 && row_weights && !gx) {
      if (g_wb_t && !base) std::memset(g_wb_t, 0, sizeof(T) * I);
      const float* wb = base ? wb_t : nullptr;
      if (g_coef_t && g_tau)
        rbf_weighted_avx512<true, true>(sp, coef_t, wsp_t, wb, x, row_weights, S, g_coef_t,
                                        g_wsp_t, base ? g_wb_t : nullptr, g_tau, value, threads);
      else if (g_coef_t)
        rbf_weighted_avx512<true, false>(sp, coef_t, wsp_t, wb, x, row_weights, S, g_coef_t,
                                         g_wsp_t, base ? g_wb_t : nullptr, g_tau, value, threads);
      else if (g_tau)
        rbf_weighted_avx512<false, true>(sp, coef_t, wsp_t, wb, x, row_weights, S, g_coef_t,
                                         g_wsp_t, base ? g_wb_t : nullptr, g_tau, value, threads);
      else
        rbf_weighted_avx512<false, false>(sp, coef_t, wsp_t, wb, x, row_weights, S, g_coef_t,
                                          g_wsp_t, base ? g_wb_t : nullptr, g_tau, value, threads);
      return;
    }
  }
#endif
  if (g_coef_t) std::memset(g_coef_t, 0, sizeof(T) * O * M * I);
  if (g_wsp_t) std::memset(g_wsp_t, 0, sizeof(T) * O * I);
  if (g_wb_t) std::memset(g_wb_t, 0, sizeof(T) * O * I);
  T tau_total = T(0), value_total = T(0);
#pragma omp parallel num_threads(threads) reduction(+ : tau_total, value_total)
  {
    FlushDenormals ftz;
    Rows<T> r(sp, width);
    std::vector<T> pg_coef(g_coef_t ? O * M * I : 0), pg_wsp(g_wsp_t ? O * I : 0);
    std::vector<T> pg_wb(g_wb_t && base ? O * I : 0);
    T* val = value ? &value_total : nullptr;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < S * chunks; ++item) {
      const int64_t s = item / chunks, i0 = (item % chunks) * width;
      const int64_t n = std::min(width, I - i0);
      const T* xr = x + s * I + i0;
      if (row_weights) {
        const T w = row_weights[s];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) r.gconst[i] = w;
      }
      if constexpr (BASIS == RBF || BASIS == RSWAF) {
        if (O == 1) {
          const T* g = row_weights ? r.gconst : gout + s * I + i0;
          pairwise_backward_item<T, BASIS>(sp, r, coef_t, wsp_t, wb_t, xr, g, i0, n, base,
                                           gx ? gx + s * I + i0 : nullptr, pg_coef, pg_wsp,
                                           pg_wb, need_dt ? &tau_total : nullptr, val);
          continue;
        }
      }
      basis_any<T, BASIS>(columns(sp, i0), xr, n, r, need_dx, need_dt);
      if (base) activation_row<T>(sp.act, xr, n, r.a, need_dx ? r.da : nullptr);
      T* gxr = need_dx ? gx + s * I + i0 : nullptr;
      for (int64_t o = 0; o < O; ++o) {
        const T* g = row_weights ? r.gconst : gout + (s * O + o) * I + i0;
        const T* c = coef_t + o * M * I + i0;
        // gw = g * w_spline: the gradient reaching the spline sum.
        if (wsp_t) {
          const T* w = wsp_t + o * I + i0;
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) r.gw[i] = g[i] * w[i];
        } else {
          std::memcpy(r.gw, g, sizeof(T) * n);
        }
        if (!pg_coef.empty()) {
          T* gc = pg_coef.data() + o * M * I + i0;
          for (int64_t m = 0; m < M; ++m) {
            const T* b = r.B + m * n;
            T* dst = gc + m * I;
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) dst[i] = std::fma(r.gw[i], b[i], dst[i]);
          }
        }
        if (!pg_wsp.empty() || val) contract(c, I, r.B, M, n, r.acc);
        if (!pg_wsp.empty()) {
          T* dst = pg_wsp.data() + o * I + i0;
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) dst[i] = std::fma(g[i], r.acc[i], dst[i]);
        }
        if (val)
          *val += weighted_output(r, g, wsp_t ? wsp_t + o * I + i0 : nullptr,
                                  base ? wb_t + o * I + i0 : nullptr, n);
        if (!pg_wb.empty()) {
          T* dst = pg_wb.data() + o * I + i0;
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) dst[i] = std::fma(g[i], r.a[i], dst[i]);
        }
        if (gxr) {
          contract(c, I, r.dX, M, n, r.acc2);
          const bool first = o == 0;
          if (base) {
            const T* w = wb_t + o * I + i0;
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) {
              const T v = r.gw[i] * r.acc2[i] + g[i] * w[i] * r.da[i];
              gxr[i] = first ? v : gxr[i] + v;
            }
          } else {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) {
              const T v = r.gw[i] * r.acc2[i];
              gxr[i] = first ? v : gxr[i] + v;
            }
          }
        }
        if (need_dt) {
          contract(c, I, r.dT, M, n, r.acc);
          T partial = T(0);
#pragma omp simd reduction(+ : partial)
          for (int64_t i = 0; i < n; ++i) partial += r.gw[i] * r.acc[i];
          tau_total += partial;
        }
      }
    }
#pragma omp critical
    {
      add_into(g_coef_t, pg_coef);
      add_into(g_wsp_t, pg_wsp);
      add_into(g_wb_t, pg_wb);
    }
  }
  if (g_tau) *g_tau = need_dt ? tau_total : T(0);
  if (value) *value = value_total;
}

// Basis features: layout 0, feats[s, m, i] = B_m(x_si) and, with a base branch,
// feats[s, M, i] = a(x_si) (a summed layer's matmul operand); layout 1, feats[i, s, m] =
// B_m(x_si) without the base row (one batched matmul per input for the outer evaluation).
template <typename T, int BASIS>
void features_fwd(const Spec<T>& sp, const T* x, int64_t S, bool base, int layout, T* feats,
                  int threads) {
  const int64_t I = sp.I, M = sp.M, F = (M + (base ? 1 : 0)) * I;
#pragma omp parallel num_threads(threads)
  {
    FlushDenormals ftz;
    Rows<T> r(sp, I);
#pragma omp for schedule(static)
    for (int64_t s = 0; s < S; ++s) {
      const T* xr = x + s * I;
      if (layout == 0) {
        T* f = feats + s * F;
        basis_row<T, BASIS, false, false>(sp, xr, I, f, r.dX, r.dT, r.work);
        if (base) activation_row<T>(sp.act, xr, I, f + M * I, nullptr);
      } else {
        basis_row<T, BASIS, false, false>(sp, xr, I, r.B, r.dX, r.dT, r.work);
        for (int64_t i = 0; i < I; ++i) {
          T* f = feats + (i * S + s) * M;
          for (int64_t m = 0; m < M; ++m) f[m] = r.B[m * I + i];
        }
      }
    }
  }
}

// dL/dx and dL/dtau from dL/dfeats (in the features' layout).
template <typename T, int BASIS>
void features_bwd(const Spec<T>& sp, const T* x, const T* gfeats, int64_t S, bool base,
                  int layout, T* gx, T* g_tau, int threads) {
  const int64_t I = sp.I, M = sp.M, F = (M + (base ? 1 : 0)) * I;
  const bool need_dx = gx != nullptr, need_dt = g_tau != nullptr && BASIS != BSPLINE;
  T tau_total = T(0);
#pragma omp parallel num_threads(threads) reduction(+ : tau_total)
  {
    FlushDenormals ftz;
    Rows<T> r(sp, I);
    std::vector<T> gathered(layout == 0 ? 0 : M * I);
#pragma omp for schedule(static)
    for (int64_t s = 0; s < S; ++s) {
      const T* xr = x + s * I;
      const T* gf = gfeats + s * F;
      if (layout != 0) {  // this sample's gradient rows, (M, I) like the basis values
        for (int64_t i = 0; i < I; ++i) {
          const T* src = gfeats + (i * S + s) * M;
          for (int64_t m = 0; m < M; ++m) gathered[m * I + i] = src[m];
        }
        gf = gathered.data();
      }
      basis_any<T, BASIS>(sp, xr, I, r, need_dx, need_dt);
      if (need_dx) {
        contract(gf, I, r.dX, M, I, r.acc);
        T* out = gx + s * I;
        if (base) {
          activation_row<T>(sp.act, xr, I, r.a, r.da);
          const T* ga = gf + M * I;
#pragma omp simd
          for (int64_t i = 0; i < I; ++i) out[i] = std::fma(ga[i], r.da[i], r.acc[i]);
        } else {
          std::memcpy(out, r.acc, sizeof(T) * I);
        }
      }
      if (need_dt) {
        contract(gf, I, r.dT, M, I, r.acc);
        T partial = T(0);
#pragma omp simd reduction(+ : partial)
        for (int64_t i = 0; i < I; ++i) partial += r.acc[i];
        tau_total += partial;
      }
    }
  }
  if (g_tau) *g_tau = need_dt ? tau_total : T(0);
}

template <typename T>
Spec<T> make_spec(const int64_t* dims, const double* reals, const T* grid_t) {
  Spec<T> sp;
  sp.I = dims[0];
  sp.O = dims[1];
  sp.M = dims[2];
  sp.K = dims[3];
  sp.basis = static_cast<int>(dims[4]);
  sp.degree = static_cast<int>(dims[5]);
  sp.act = static_cast<int>(dims[6]);
  sp.grid_t = grid_t;
  sp.ld = sp.I;
  sp.scale = static_cast<T>(reals[0]);
  sp.tau = static_cast<T>(reals[1]);
  return sp;
}

#define TKAM_DISPATCH_BASIS(sp, FN, ...) \
  switch ((sp).basis) {                  \
    case BSPLINE:                        \
      FN<T, BSPLINE>(__VA_ARGS__);       \
      break;                             \
    case RBF:                            \
      FN<T, RBF>(__VA_ARGS__);           \
      break;                             \
    case RSWAF:                          \
      FN<T, RSWAF>(__VA_ARGS__);         \
      break;                             \
    case FOURIER:                        \
      FN<T, FOURIER>(__VA_ARGS__);       \
      break;                             \
    default:                             \
      FN<T, CHEBYSHEV>(__VA_ARGS__);     \
  }

template <typename T>
void eval_fwd_any(const int64_t* dims, const double* reals, const T* grid_t, const T* coef_t,
                  const T* wsp_t, const T* wb_t, const T* x, int64_t S, T* out, int threads) {
  const Spec<T> sp = make_spec<T>(dims, reals, grid_t);
  TKAM_DISPATCH_BASIS(sp, eval_fwd, sp, coef_t, wsp_t, wb_t, x, S, out, threads)
}

template <typename T>
void eval_bwd_any(const int64_t* dims, const double* reals, const T* grid_t, const T* coef_t,
                  const T* wsp_t, const T* wb_t, const T* x, const T* gout,
                  const T* row_weights, int64_t S, T* gx, T* g_coef_t, T* g_wsp_t, T* g_wb_t,
                  T* g_tau, T* value, int threads) {
  const Spec<T> sp = make_spec<T>(dims, reals, grid_t);
  TKAM_DISPATCH_BASIS(sp, eval_bwd, sp, coef_t, wsp_t, wb_t, x, gout, row_weights, S, gx,
                      g_coef_t, g_wsp_t, g_wb_t, g_tau, value, threads)
}

template <typename T>
void features_fwd_any(const int64_t* dims, const double* reals, const T* grid_t, const T* x,
                      int64_t S, int base, int layout, T* feats, int threads) {
  const Spec<T> sp = make_spec<T>(dims, reals, grid_t);
  TKAM_DISPATCH_BASIS(sp, features_fwd, sp, x, S, base != 0, layout, feats, threads)
}

template <typename T>
void features_bwd_any(const int64_t* dims, const double* reals, const T* grid_t, const T* x,
                      const T* gfeats, int64_t S, int base, int layout, T* gx, T* g_tau,
                      int threads) {
  const Spec<T> sp = make_spec<T>(dims, reals, grid_t);
  TKAM_DISPATCH_BASIS(sp, features_bwd, sp, x, gfeats, S, base != 0, layout, gx, g_tau, threads)
}

// W[m, i, o] = coef[i, o, m] * wsp[i, o] (m < M), W[M, i, o] = wb[i, o]: the weights of the
// summed layer's single matmul, laid out to match the features. One input row i at a time: its
// (O, M) coefficients are read in cache, the M + 1 output rows are written contiguously.
template <typename T>
void weights_fwd(const T* coef, const T* wsp, const T* wb, int64_t I, int64_t O, int64_t M,
                 T* W, int threads) {
  const int64_t IO = I * O;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < I; ++i) {
    const T* c = coef + i * O * M;
    const T* w = wsp ? wsp + i * O : nullptr;
    for (int64_t m = 0; m < M; ++m) {
      T* dst = W + m * IO + i * O;
      if (w) {
#pragma omp simd
        for (int64_t o = 0; o < O; ++o) dst[o] = c[o * M + m] * w[o];
      } else {
#pragma omp simd
        for (int64_t o = 0; o < O; ++o) dst[o] = c[o * M + m];
      }
    }
    if (wb) std::memcpy(W + M * IO + i * O, wb + i * O, sizeof(T) * O);
  }
}

template <typename T>
void weights_bwd(const T* coef, const T* wsp, const T* gW, int64_t I, int64_t O, int64_t M,
                 T* g_coef, T* g_wsp, int threads) {
  const int64_t IO = I * O;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < I; ++i) {
    for (int64_t o = 0; o < O; ++o) {
      const T* c = coef + (i * O + o) * M;
      const T w = wsp ? wsp[i * O + o] : T(1);
      T* gc = g_coef ? g_coef + (i * O + o) * M : nullptr;
      T acc = T(0);
      for (int64_t m = 0; m < M; ++m) {
        const T g = gW[m * IO + i * O + o];
        if (gc) gc[m] = g * w;
        acc += g * c[m];
      }
      if (g_wsp) g_wsp[i * O + o] = acc;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Inverse-transform sampling of piecewise-linear CDFs (maths 3.4).
//
// For a row with CDF values F_0 = 0 <= ... <= F_{n-1} = 1 at knots x_0 < ... < x_{n-1}, u maps
// to the interval j = min{j : F_j >= u} (clamped to 1..n-1, as torch.searchsorted with
// right=False) and to x_{j-1} + (x_j - x_{j-1}) (u - F_{j-1}) / (F_j - F_{j-1}). A guide table
// (guide[b] = min{j : F_j >= b / L}, L a power of two so that floor(u L) = b implies u >= b/L
// exactly) gives a starting index from which a short forward scan finds j.

// With slope non-null, *slope receives dx/du on the interval found: its width over its rise (0 on
// a flat interval), the derivative of the piecewise-linear inverse almost everywhere.
inline float invert_one(const float* __restrict F, const float* __restrict X,
                        const int32_t* __restrict guide, int64_t n, int64_t L, float u,
                        float* slope = nullptr) {
  int64_t b = static_cast<int64_t>(u * static_cast<float>(L));
  b = b < 0 ? 0 : (b >= L ? L - 1 : b);
  int64_t j = guide[b];
  // Usually zero or one step: two branch-free steps, then a loop for the rare longer scans.
  // F[n - 1] = 1 > u, so a comparison at the clamped index n - 1 never moves j past n.
  j += F[j < n ? j : n - 1] < u;
  j += F[j < n ? j : n - 1] < u;
  while (j < n && F[j] < u) ++j;
  j = j < 1 ? 1 : (j > n - 1 ? n - 1 : j);
  const float f_lo = F[j - 1], f_hi = F[j], x_lo = X[j - 1], x_hi = X[j];
  const float gap = f_hi - f_lo;
  float frac = gap > 0.0f ? (u - f_lo) / gap : 0.0f;
  frac = frac < 0.0f ? 0.0f : (frac > 1.0f ? 1.0f : frac);
  const float v = x_lo + (x_hi - x_lo) * frac;
  if (slope) *slope = gap > 0.0f ? (x_hi - x_lo) / gap : 0.0f;
  return v < x_lo ? x_lo : (v > x_hi ? x_hi : v);
}

// One row of floats sorted by value with their indices, ties in index order (the order of
// sorting (value, index) pairs): a stable LSD radix sort, four passes of 8 bits, on keys that
// order as the floats do (the sign bit flipped for positive values, every bit for negative ones).
// On exit index holds the order; keys, keys_out and index_out are scratch of length S.
void radix_sort_row(const float* values, int64_t S, std::vector<uint32_t>& keys,
                    std::vector<int32_t>& index, std::vector<uint32_t>& keys_out,
                    std::vector<int32_t>& index_out) {
  for (int64_t k = 0; k < S; ++k) {
    uint32_t bits;
    std::memcpy(&bits, values + k, sizeof(bits));
    keys[k] = bits ^ ((bits >> 31) ? 0xFFFFFFFFu : 0x80000000u);
    index[k] = static_cast<int32_t>(k);
  }
  for (int shift = 0; shift < 32; shift += 8) {
    int64_t start[257] = {0};
    for (int64_t k = 0; k < S; ++k) ++start[((keys[k] >> shift) & 0xFFu) + 1];
    if (start[((keys[0] >> shift) & 0xFFu) + 1] == S) continue;  // one bucket: order unchanged
    for (int b = 0; b < 256; ++b) start[b + 1] += start[b];
    for (int64_t k = 0; k < S; ++k) {
      const int64_t to = start[(keys[k] >> shift) & 0xFFu]++;
      keys_out[to] = keys[k];
      index_out[to] = index[k];
    }
    keys.swap(keys_out);
    index.swap(index_out);
  }
}

}  // namespace

#if defined(__AVX512F__)
// The merge of tkam_invert_shared_lanes_f32 (below), G blocks of 16 components at a time.
template <int G>
void invert_lanes_merge(const float* cdf_t, const float* knots, const float* sorted,
                        const int32_t* order, int64_t Q, int64_t P, int64_t n, int64_t S,
                        int64_t blocks, float* stage, float* sums, bool values, int threads) {
  // Each thread owns whole groups of G blocks of components (q), so the sums over p need no
  // atomics; the G blocks of a group are merged side by side, G independent chains of gathers
  // whose latencies overlap.
  const int64_t groups = (blocks + G - 1) / G;
  constexpr int64_t W = G * 16;  // the floats of a group's part of one row of the sums
#pragma omp parallel num_threads(threads)
  {
  // The group's sums, (S, W) and 64-byte aligned: every sample's update touches whole cache
  // lines of a compact buffer instead of straddling lines of the (S, Q) rows; copied at the end.
  std::vector<float> local_buffer(sums ? S * W + 16 : 0);
  float* local = local_buffer.data();
  while (sums && reinterpret_cast<uintptr_t>(local) % 64 != 0) ++local;
#pragma omp for schedule(static)
  for (int64_t group = 0; group < groups; ++group) {
  if (sums) std::fill(local, local + S * W, 0.0f);
  for (int64_t p = 0; p < P; ++p) {
    const float* F = cdf_t + p * n * Q;
    const float* X = knots + p * n;
    const float* u = sorted + p * S;
    const int32_t* ord = order + p * S;
    const __m512i Qv = _mm512_set1_epi32(static_cast<int32_t>(Q));
    const __m512i one = _mm512_set1_epi32(1);
    const __m512 ones = _mm512_set1_ps(1.0f), zeros = _mm512_setzero_ps();
    __mmask16 active[G];
    __m512i lane[G], j[G];
    __m512 f_cur[G], x_cur[G], f_prev[G], x_prev[G];
    int64_t q0[G];
    // Each lane carries its interval: j = min{j : F[j] >= u} so far, with F[j], X[j] and
    // F[j-1], X[j-1]. The sorted uniforms only move j forwards, so gathers happen only when a
    // lane advances (about once per sample for 16 lanes), never to re-read the same values.
    for (int g = 0; g < G; ++g) {
      q0[g] = (group * G + g) * 16;
      const int64_t width = std::max<int64_t>(0, std::min<int64_t>(16, Q - q0[g]));
      active[g] = static_cast<__mmask16>((1u << width) - 1u);
      lane[g] = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(q0[g])),
                                 _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                                   14, 15));
      j[g] = _mm512_setzero_si512();
      f_cur[g] = _mm512_mask_loadu_ps(ones, active[g], F + (width ? q0[g] : 0));  // F[0]
      x_cur[g] = _mm512_set1_ps(X[0]);
      f_prev[g] = f_cur[g], x_prev[g] = x_cur[g];
    }
    for (int64_t k = 0; k < S; ++k) {
      const __m512 uk = _mm512_set1_ps(u[k]);
      for (;;) {
        __mmask16 behind[G];
        int any = 0;
        for (int g = 0; g < G; ++g) {
          behind[g] = _mm512_mask_cmp_ps_mask(active[g], f_cur[g], uk, _CMP_LT_OQ);
          any |= behind[g];
        }
        if (!any) break;
        for (int g = 0; g < G; ++g) {
          if (!behind[g]) continue;
          f_prev[g] = _mm512_mask_mov_ps(f_prev[g], behind[g], f_cur[g]);
          x_prev[g] = _mm512_mask_mov_ps(x_prev[g], behind[g], x_cur[g]);
          j[g] = _mm512_mask_add_epi32(j[g], behind[g], j[g], one);
          f_cur[g] = _mm512_mask_i32gather_ps(
              f_cur[g], behind[g], _mm512_add_epi32(_mm512_mullo_epi32(j[g], Qv), lane[g]), F, 4);
          x_cur[g] = _mm512_mask_i32gather_ps(x_cur[g], behind[g], j[g], X, 4);
        }
      }
      const int64_t row = ord[k];
      for (int g = 0; g < G; ++g) {
        if (!active[g]) continue;
        __m512 f_lo = f_prev[g], f_hi = f_cur[g], x_lo = x_prev[g], x_hi = x_cur[g];
        // j = 0 only for u <= F[0] = 0: the first interval, (0, 1), as invert_one clamps it.
        const __mmask16 at_zero =
            _mm512_mask_cmpeq_epi32_mask(active[g], j[g], _mm512_setzero_si512());
        if (at_zero) {
          f_lo = _mm512_mask_mov_ps(f_lo, at_zero, f_cur[g]);
          x_lo = _mm512_mask_mov_ps(x_lo, at_zero, x_cur[g]);
          f_hi = _mm512_mask_i32gather_ps(f_hi, at_zero, _mm512_add_epi32(Qv, lane[g]), F, 4);
          x_hi = _mm512_mask_mov_ps(x_hi, at_zero, _mm512_set1_ps(X[1]));
        }
        const __m512 gap = _mm512_sub_ps(f_hi, f_lo);
        const __mmask16 open = _mm512_cmp_ps_mask(gap, zeros, _CMP_GT_OQ);
        __m512 frac = _mm512_maskz_div_ps(open, _mm512_sub_ps(uk, f_lo), gap);
        frac = _mm512_min_ps(_mm512_max_ps(frac, zeros), ones);
        __m512 v = _mm512_add_ps(x_lo, _mm512_mul_ps(_mm512_sub_ps(x_hi, x_lo), frac));
        v = _mm512_min_ps(_mm512_max_ps(v, x_lo), x_hi);
        if (sums) {
          float* dst = local + row * W + g * 16;
          _mm512_store_ps(dst, _mm512_add_ps(_mm512_load_ps(dst), v));
        }
        if (values) _mm512_mask_storeu_ps(stage + (p * S + row) * Q + q0[g], active[g], v);
      }
    }
  }
  if (sums) {
    const int64_t first = group * W, width = std::min<int64_t>(W, Q - first);
    for (int64_t row = 0; row < S; ++row)
      std::memcpy(sums + row * Q + first, local + row * W, sizeof(float) * width);
  }
  }
  }
}
#endif

extern "C" {

int tkam_abi_version() { return TKAM_ABI_VERSION; }
const char* tkam_codes() { return TKAM_CODES; }

void tkam_eval_fwd_f32(const int64_t* dims, const double* reals, const float* grid_t,
                       const float* coef_t, const float* wsp_t, const float* wb_t,
                       const float* x, int64_t S, float* out, int threads) {
  eval_fwd_any<float>(dims, reals, grid_t, coef_t, wsp_t, wb_t, x, S, out, threads);
}
void tkam_eval_fwd_f64(const int64_t* dims, const double* reals, const double* grid_t,
                       const double* coef_t, const double* wsp_t, const double* wb_t,
                       const double* x, int64_t S, double* out, int threads) {
  eval_fwd_any<double>(dims, reals, grid_t, coef_t, wsp_t, wb_t, x, S, out, threads);
}
void tkam_eval_bwd_f32(const int64_t* dims, const double* reals, const float* grid_t,
                       const float* coef_t, const float* wsp_t, const float* wb_t,
                       const float* x, const float* gout, const float* row_weights, int64_t S,
                       float* gx, float* g_coef_t, float* g_wsp_t, float* g_wb_t, float* g_tau,
                       float* value, int threads) {
  eval_bwd_any<float>(dims, reals, grid_t, coef_t, wsp_t, wb_t, x, gout, row_weights, S, gx,
                      g_coef_t, g_wsp_t, g_wb_t, g_tau, value, threads);
}
void tkam_eval_bwd_f64(const int64_t* dims, const double* reals, const double* grid_t,
                       const double* coef_t, const double* wsp_t, const double* wb_t,
                       const double* x, const double* gout, const double* row_weights,
                       int64_t S, double* gx, double* g_coef_t, double* g_wsp_t, double* g_wb_t,
                       double* g_tau, double* value, int threads) {
  eval_bwd_any<double>(dims, reals, grid_t, coef_t, wsp_t, wb_t, x, gout, row_weights, S, gx,
                       g_coef_t, g_wsp_t, g_wb_t, g_tau, value, threads);
}
void tkam_features_fwd_f32(const int64_t* dims, const double* reals, const float* grid_t,
                           const float* x, int64_t S, int base, int layout, float* feats,
                           int threads) {
  features_fwd_any<float>(dims, reals, grid_t, x, S, base, layout, feats, threads);
}
void tkam_features_fwd_f64(const int64_t* dims, const double* reals, const double* grid_t,
                           const double* x, int64_t S, int base, int layout, double* feats,
                           int threads) {
  features_fwd_any<double>(dims, reals, grid_t, x, S, base, layout, feats, threads);
}
void tkam_features_bwd_f32(const int64_t* dims, const double* reals, const float* grid_t,
                           const float* x, const float* gfeats, int64_t S, int base, int layout,
                           float* gx, float* g_tau, int threads) {
  features_bwd_any<float>(dims, reals, grid_t, x, gfeats, S, base, layout, gx, g_tau, threads);
}
void tkam_features_bwd_f64(const int64_t* dims, const double* reals, const double* grid_t,
                           const double* x, const double* gfeats, int64_t S, int base,
                           int layout, double* gx, double* g_tau, int threads) {
  features_bwd_any<double>(dims, reals, grid_t, x, gfeats, S, base, layout, gx, g_tau, threads);
}
void tkam_weights_fwd_f32(const float* coef, const float* wsp, const float* wb, int64_t I,
                          int64_t O, int64_t M, float* W, int threads) {
  weights_fwd<float>(coef, wsp, wb, I, O, M, W, threads);
}
void tkam_weights_fwd_f64(const double* coef, const double* wsp, const double* wb, int64_t I,
                          int64_t O, int64_t M, double* W, int threads) {
  weights_fwd<double>(coef, wsp, wb, I, O, M, W, threads);
}
void tkam_weights_bwd_f32(const float* coef, const float* wsp, const float* gW, int64_t I,
                          int64_t O, int64_t M, float* g_coef, float* g_wsp, int threads) {
  weights_bwd<float>(coef, wsp, gW, I, O, M, g_coef, g_wsp, threads);
}
void tkam_weights_bwd_f64(const double* coef, const double* wsp, const double* gW, int64_t I,
                          int64_t O, int64_t M, double* g_coef, double* g_wsp, int threads) {
  weights_bwd<double>(coef, wsp, gW, I, O, M, g_coef, g_wsp, threads);
}

// The sampling table of every prior component (maths 3.3) as
// tkam.prior.quadrature.gauss_legendre_table computes it, from the spline sums of the layer at
// each row's nodes, spline (R, N, O) for layer rows r and outputs o: the energy of component
// (q, p), with (r, o) = (p, q) when rows_are_inputs (univariate) and (q, p) otherwise, is
// wsp[r, o] * spline[r, g, o] + wb[r, o] * act[r, g] (wsp, wb, act may be null). log_w and
// log_pi0 are (R, N). Writes log_density and cdf laid out (R, N, O), like the spline sums, and
// log_z (Q, P); rule 0 midpoint, 1 left.
void tkam_quadrature_table_f32(const float* spline, const float* wsp, const float* wb,
                               const float* act, const float* log_w, const float* log_pi0,
                               int64_t Q, int64_t P, int64_t N, int rows_are_inputs, int rule,
                               float* log_density, float* cdf, float* log_z, int threads) {
  // Sixteen outputs of one row side by side: the spline sums of a row are (N, O) with the
  // outputs contiguous, so every step below is one vector operation over the 16 components.
  constexpr int64_t L = 16;
  const int64_t R = rows_are_inputs ? P : Q, O = rows_are_inputs ? Q : P;
  const int64_t blocks = (O + L - 1) / L;
#pragma omp parallel num_threads(threads)
  {
    FlushDenormals ftz;
    std::vector<float> buffer(2 * N * L);
    float* __restrict energy = buffer.data();  // (N, L): f + log pi_0
    float* __restrict mass = energy + N * L;   // (N, L)
#pragma omp for schedule(static)
    for (int64_t item = 0; item < R * blocks; ++item) {
      const int64_t r = item / blocks, o0 = (item % blocks) * L;
      const int64_t width = std::min(L, O - o0);
      float scale[L], base[L], top[L], total[L], lz[L];
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) {
        const bool on = l < width;
        scale[l] = on ? (wsp ? wsp[r * O + o0 + l] : 1.0f) : 0.0f;
        base[l] = on && wb ? wb[r * O + o0 + l] : 0.0f;
        top[l] = -INFINITY;
        total[l] = 0.0f;
      }
      for (int64_t g = 0; g < N; ++g) {
        const float* __restrict sp = spline + (r * N + g) * O + o0;
        const float a = act ? act[r * N + g] : 0.0f, pi = log_pi0[r * N + g];
        const float w = log_w[r * N + g];
#pragma omp simd
        for (int64_t l = 0; l < L; ++l) {
          const float e = std::fma(base[l], a, scale[l] * (l < width ? sp[l] : 0.0f)) + pi;
          energy[g * L + l] = e;
          mass[g * L + l] = e + w;
          top[l] = mass[g * L + l] > top[l] ? mass[g * L + l] : top[l];
        }
      }
      // log-sum-exp with the largest term factored out; all -inf (no support) gives -inf.
      for (int64_t g = 0; g < N; ++g) {
#pragma omp simd
        for (int64_t l = 0; l < L; ++l) {
          const bool finite = top[l] > -INFINITY && top[l] < INFINITY;
          const float m = finite ? exp_f(mass[g * L + l] - top[l]) : 0.0f;
          mass[g * L + l] = m;
          total[l] += m;
        }
      }
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) {
        const bool finite = top[l] > -INFINITY && top[l] < INFINITY;
        lz[l] = finite ? top[l] + std::log(total[l]) : top[l];
      }
      // CDF: the mass before each node (left) or up to its middle (midpoint), rescaled to [0, 1].
      float before[L], first[L];
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) {
        before[l] = 0.0f;
        first[l] = mass[l];
      }
      for (int64_t g = 0; g < N; ++g) {
#pragma omp simd
        for (int64_t l = 0; l < L; ++l) {
          const float m = mass[g * L + l];
          mass[g * L + l] = rule == 0 ? before[l] + 0.5f * m - 0.5f * first[l] : before[l];
          before[l] += m;
        }
      }
      float last[L];
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) last[l] = mass[(N - 1) * L + l];
      // Both tables in the spline sums' layout (R, N, O): whole vectors of 16 components.
      for (int64_t g = 0; g < N; ++g) {
        float* __restrict F = cdf + (r * N + g) * O + o0;
        float* __restrict D = log_density + (r * N + g) * O + o0;
#pragma omp simd
        for (int64_t l = 0; l < L; ++l) {
          float v = last[l] > 0.0f ? mass[g * L + l] / last[l] : 0.0f;
          v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
          v = g == N - 1 ? 1.0f : v;
          if (l < width) {
            F[l] = v;
            D[l] = energy[g * L + l] - lz[l];
          }
        }
      }
      for (int64_t l = 0; l < width; ++l) {
        const int64_t o = o0 + l;
        log_z[rows_are_inputs ? o * P + r : r * P + o] = lz[l];
      }
    }
  }
}

// Guide tables of C CDF rows of n values: guide[c, b] = min{j : F[c, j] >= b / L}.
void tkam_guide_table_f32(const float* cdf, int64_t C, int64_t n, int64_t L, int32_t* guide,
                          int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const float* F = cdf + c * n;
    int32_t* g = guide + c * L;
    int64_t j = 0;
    for (int64_t b = 0; b < L; ++b) {
      const float threshold = static_cast<float>(b) / static_cast<float>(L);
      while (j < n && F[j] < threshold) ++j;
      g[b] = static_cast<int32_t>(j);
    }
  }
}

// Univariate prior: out[s, q, p] inverts component c = q * P + p (CDF row c, knot row p) at the
// uniform u[p, s] shared by every q. The caller sorts each row's uniforms (`sorted`, with their
// sample indices `order`); every component then walks them alongside its CDF, so that the samples
// of one interval form a run that is interpolated with the interval's values held in registers
// (a vectorised loop) and scattered to their rows. The arithmetic is that of invert_one. With
// `sums`, also sums[s, q] = sum_p out[s, q, p] (the generator input); with out null, only that.
// The same for few samples per row (S below a few times n), where most intervals hold no
// sample: the merge advances per sample instead of per interval.
void tkam_invert_shared_sparse_f32(const float* cdf, const float* knots, const float* sorted,
                                   const int32_t* order, int64_t Q, int64_t P, int64_t n,
                                   int64_t S, float* out, float* sums, int threads) {
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> values(S);
    float* __restrict vs = values.data();
#pragma omp for schedule(static)
    for (int64_t q = 0; q < Q; ++q) {
      if (sums)
        for (int64_t s = 0; s < S; ++s) sums[s * Q + q] = 0.0f;
      for (int64_t p = 0; p < P; ++p) {
        const float* __restrict F = cdf + (q * P + p) * n;
        const float* __restrict X = knots + p * n;
        const float* __restrict u = sorted + p * S;
        const int32_t* __restrict ord = order + p * S;
        int64_t j = 0;  // the first j with F[j] >= u; F[n - 1] = 1 > u ends every scan
        for (int64_t k = 0; k < S; ++k) {
          const float uk = u[k];
          while (F[j] < uk) ++j;
          const int64_t jc = j < 1 ? 1 : j;
          const float f_lo = F[jc - 1], f_hi = F[jc], x_lo = X[jc - 1], x_hi = X[jc];
          const float gap = f_hi - f_lo;
          float frac = gap > 0.0f ? (uk - f_lo) / gap : 0.0f;
          frac = frac < 0.0f ? 0.0f : (frac > 1.0f ? 1.0f : frac);
          const float v = x_lo + (x_hi - x_lo) * frac;
          vs[k] = v < x_lo ? x_lo : (v > x_hi ? x_hi : v);
        }
        if (out)
          for (int64_t k = 0; k < S; ++k) out[(static_cast<int64_t>(ord[k]) * Q + q) * P + p] = vs[k];
        if (sums)
          for (int64_t k = 0; k < S; ++k) sums[static_cast<int64_t>(ord[k]) * Q + q] += vs[k];
      }
    }
  }
}

// The sparse merge with 16 components of a row side by side (AVX-512): the components share
// the row's uniforms (P, S), sorted here once per row, so each sorted uniform is merged with 16
// CDFs at once, lane by lane.
// cdf_t is the CDF table laid out (P, n, Q): cdf_t[(p * n + j) * Q + q] = F_qp[j]. Returns
// false (doing nothing) where AVX-512 is not available; the arithmetic is invert_one's.
int tkam_invert_shared_lanes_f32(const float* cdf_t, const float* knots, const float* uniforms,
                                 int64_t Q, int64_t P, int64_t n, int64_t S, float* out,
                                 float* sums, int threads) {
#if defined(__AVX512F__)
  const int64_t blocks = (Q + 15) / 16;
  // Each row's uniforms, sorted with their sample indices (ties keep the index order).
  std::vector<float> sorted_values(P * S);
  std::vector<int32_t> sorted_order(P * S);
#pragma omp parallel num_threads(threads)
  {
    std::vector<uint32_t> keys(S), keys_out(S);
    std::vector<int32_t> index(S), index_out(S);
#pragma omp for schedule(static)
    for (int64_t p = 0; p < P; ++p) {
      radix_sort_row(uniforms + p * S, S, keys, index, keys_out, index_out);
      for (int64_t k = 0; k < S; ++k) {
        sorted_order[p * S + k] = index[k];
        sorted_values[p * S + k] = uniforms[p * S + index[k]];
      }
    }
  }
  const float* sorted = sorted_values.data();
  const int32_t* order = sorted_order.data();
  // The samples are written (P, S, Q) first, 16 components per vector store, then transposed
  // to (S, Q, P) row by row: a direct write of each lane to its (S, Q, P) place would touch 16
  // cache lines per sample (stride P), which cost more than the merge itself.
  std::vector<float> staging(out ? P * S * Q : 0);
  float* stage = staging.data();
  // G blocks per group, up to three, as long as every thread gets a group.
  const int64_t per_thread = blocks / std::max(threads, 1);
  if (per_thread >= 3)
    invert_lanes_merge<3>(cdf_t, knots, sorted, order, Q, P, n, S, blocks, stage, sums, out, threads);
  else if (per_thread == 2)
    invert_lanes_merge<2>(cdf_t, knots, sorted, order, Q, P, n, S, blocks, stage, sums, out, threads);
  else
    invert_lanes_merge<1>(cdf_t, knots, sorted, order, Q, P, n, S, blocks, stage, sums, out, threads);
  if (out) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t row = 0; row < S; ++row)
      for (int64_t q = 0; q < Q; ++q) {
        float* dst = out + (row * Q + q) * P;
        for (int64_t p = 0; p < P; ++p) dst[p] = stage[(p * S + row) * Q + q];
      }
  }
  return 1;
#else
  (void)cdf_t, (void)knots, (void)uniforms, (void)Q, (void)P, (void)n, (void)S;
  (void)out, (void)sums, (void)threads;
  return 0;
#endif
}

void tkam_invert_shared_f32(const float* cdf, const float* knots, const float* sorted,
                            const int32_t* order, int64_t Q, int64_t P, int64_t n, int64_t S,
                            float* out, float* sums, int threads) {
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> values(S);
    float* __restrict vs = values.data();
#pragma omp for schedule(static)
    for (int64_t q = 0; q < Q; ++q) {
      if (sums)
        for (int64_t s = 0; s < S; ++s) sums[s * Q + q] = 0.0f;
      for (int64_t p = 0; p < P; ++p) {
        const float* __restrict F = cdf + (q * P + p) * n;
        const float* __restrict X = knots + p * n;
        const float* __restrict u = sorted + p * S;
        const int32_t* __restrict ord = order + p * S;
        int64_t k = 0;
        for (int64_t j = 1; j < n && k < S; ++j) {
          // Interval j takes F[j-1] < u <= F[j] (u <= F[1] for the first, the rest for the last).
          int64_t end = k;
          if (j == n - 1) {
            end = S;
          } else {
            while (end < S && u[end] <= F[j]) ++end;
          }
          const float f_lo = F[j - 1], f_hi = F[j], x_lo = X[j - 1], x_hi = X[j];
          const float gap = f_hi - f_lo, width = x_hi - x_lo;
#pragma omp simd
          for (int64_t m = k; m < end; ++m) {
            float frac = gap > 0.0f ? (u[m] - f_lo) / gap : 0.0f;
            frac = frac < 0.0f ? 0.0f : (frac > 1.0f ? 1.0f : frac);
            const float v = x_lo + width * frac;
            vs[m] = v < x_lo ? x_lo : (v > x_hi ? x_hi : v);
          }
          k = end;
        }
        if (out)
          for (int64_t m = 0; m < S; ++m) out[(static_cast<int64_t>(ord[m]) * Q + q) * P + p] = vs[m];
        if (sums)
          for (int64_t m = 0; m < S; ++m) sums[static_cast<int64_t>(ord[m]) * Q + q] += vs[m];
      }
    }
  }
}

// Mixture prior and independent uniforms: out[k] inverts component rows[k] (CDF row rows[k], knot
// row knot_rows[k]) at u[k], for k < count; slope (may be null) receives dx/du (invert_one).
void tkam_invert_rows_f32(const float* cdf, const float* knots, const int32_t* guide,
                          const int64_t* rows, const int64_t* knot_rows, const float* u,
                          int64_t n, int64_t L, int64_t count, float* out, float* slope,
                          int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t k = 0; k < count; ++k) {
    const int64_t c = rows[k];
    out[k] = invert_one(cdf + c * n, knots + knot_rows[k] * n, guide + c * L, n, L, u[k],
                        slope ? slope + k : nullptr);
  }
}

}  // extern "C"
