// qrow per-element arithmetic (spec/QROW.md §2-3), shared by the CPU decoders
// (quant/qrow.cpp) and the CUDA kernel (gpu/qrow_decode.cu) so that every
// decoder writes the same bits. Integer operations and one binary32
// multiplication per element; compiles as C++ and as CUDA.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define WC_QHD __host__ __device__ __forceinline__
#else
#define WC_QHD inline
#endif

namespace wc::qrow {

// dtype ids as in format/dtype.h (stable): F16 = 8, BF16 = 9, F32 = 12.
inline constexpr uint32_t kF16 = 8, kBF16 = 9, kF32 = 12;
inline constexpr int kMinBaseExp = -126;  // step exponents stay normal
inline constexpr int kMaxBaseExp = 96;    // |code| * step < 2^128: finite
inline constexpr uint32_t kGridBits = 4;  // 1/16-octave step grid

WC_QHD uint32_t f32_bits(float x) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(x);
#else
  uint32_t b;
  memcpy(&b, &x, 4);
  return b;
#endif
}
WC_QHD float f32_from_bits(uint32_t b) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(b);
#else
  float x;
  memcpy(&x, &b, 4);
  return x;
#endif
}

WC_QHD int32_t unzigzag(uint32_t u) { return int32_t(u >> 1) ^ -int32_t(u & 1); }
WC_QHD uint32_t zigzag(int32_t q) { return (uint32_t(q) << 1) ^ uint32_t(q >> 31); }

// The step of a row: (1 + (e & 15) / 16) * 2^(B + (e >> 4)), built from its
// bits (exact; no transcendental function, so no library can differ).
WC_QHD float step_of(int32_t base_exp, uint32_t e) {
  uint32_t ex = uint32_t(base_exp + int32_t(e >> kGridBits) + 127);
  return f32_from_bits((ex << 23) | ((e & 15u) << 19));
}

// One element: binary32(q) * step, rounded to nearest even. __fmul_rn on the
// device keeps nvcc from contracting it into anything else.
WC_QHD float value_of(uint32_t u, float step) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(float(unzigzag(u)), step);
#else
  return float(unzigzag(u)) * step;
#endif
}

WC_QHD uint16_t f32_to_bf16_rne(uint32_t b) { return uint16_t((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16); }

// binary32 -> binary16, round to nearest even, subnormals, overflow to inf.
// Inputs are finite (qrow values always are); NaN is mapped to a quiet NaN.
WC_QHD uint16_t f32_to_f16_rne(uint32_t b) {
  const uint32_t sign = (b >> 16) & 0x8000u;
  const uint32_t a = b & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) return uint16_t(sign | (a > 0x7F800000u ? 0x7E00u : 0x7C00u));
  if (a >= 0x477FF000u) return uint16_t(sign | 0x7C00u);  // rounds to >= 2^16: inf
  if (a >= 0x38800000u) {                                 // normal binary16 result
    uint32_t m = a - 0x38000000u;                         // rebias exponent (127 -> 15)
    m += 0xFFFu + ((m >> 13) & 1u);
    return uint16_t(sign | (m >> 13));
  }
  if (a < 0x33000000u) return uint16_t(sign);  // below half the smallest subnormal
  // subnormal: shift the 24-bit significand into place, round to nearest even
  const uint32_t e = a >> 23, shift = 126u - e;  // 14..24 for e in [102, 112]
  const uint32_t sig = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t half = 1u << (shift - 1), rest = sig & ((1u << shift) - 1u);
  uint32_t r = sig >> shift;
  if (rest > half || (rest == half && (r & 1u))) ++r;
  return uint16_t(sign | r);
}

// binary16 bits -> binary32 bits, exact (every binary16 value is a binary32
// value; subnormals normalised, Inf and NaN payloads kept).
WC_QHD uint32_t f16_to_f32_bits(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, ex = (h >> 10) & 31u, man = h & 0x3FFu;
  if (ex == 31) return sign | 0x7F800000u | (man << 13);
  if (ex != 0) return sign | ((ex + 112u) << 23) | (man << 13);
  if (man == 0) return sign;
  int e = -1;  // subnormal: normalise
  uint32_t m = man;
  do ++e, m <<= 1;
  while (!(m & 0x400u));
  return sign | (uint32_t(112 - e) << 23) | ((m & 0x3FFu) << 13);
}

// Writes y in dtype `dt` (little-endian) at element index i of dst.
WC_QHD void store(uint32_t dt, float y, uint8_t* dst, size_t i) {
  const uint32_t b = f32_bits(y);
  if (dt == kF32) {
    dst[4 * i] = uint8_t(b), dst[4 * i + 1] = uint8_t(b >> 8), dst[4 * i + 2] = uint8_t(b >> 16),
    dst[4 * i + 3] = uint8_t(b >> 24);
  } else {
    const uint16_t h = dt == kBF16 ? f32_to_bf16_rne(b) : f32_to_f16_rne(b);
    dst[2 * i] = uint8_t(h), dst[2 * i + 1] = uint8_t(h >> 8);
  }
}

WC_QHD uint32_t dtype_bytes(uint32_t dt) { return dt == kF32 ? 4u : 2u; }

}  // namespace wc::qrow
