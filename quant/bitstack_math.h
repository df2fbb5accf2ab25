// A sign-magnitude block's per-element arithmetic (spec/BITSTACK.md §2):
// the rank-r magnitude U[i]·W[.][j] and the element's new value. IEEE
// binary32 with round-to-nearest-even, the sums in the spec's order (the
// products of binary16 values are exact, so a fused multiply-add would give
// the same bits); compiles as C++ and CUDA like quant/qrow_math.h, so every
// decoder writes the same bits.
#pragma once
#include <stdint.h>

#include "quant/qrow_math.h"

namespace wc::bitstack {

inline constexpr unsigned kMaxRank = 16;
inline constexpr unsigned kHeaderBytes = 4;  // u8 r, u8 0, u16 0

// The factors' bytes for a tensor of rows x cols at rank r (§3).
WC_QHD uint64_t factor_bytes(unsigned r, uint64_t rows, uint64_t cols) {
  return kHeaderBytes + 2ull * r * (rows + cols);
}

WC_QHD bool f16_finite(uint16_t h) { return (h & 0x7C00u) != 0x7C00u; }
WC_QHD float f16_value(uint16_t h) { return qrow::f32_from_bits(qrow::f16_to_f32_bits(h)); }

// m = u[0] w[0], then m = m + u[q] w[q] for q = 1..r-1 (u: the row's r
// factors, w: column j's, `ws` apart), each operation rounded.
WC_QHD float magnitude(const float* u, const float* w, uint64_t ws, unsigned r) {
#ifdef __CUDA_ARCH__
  float m = __fmul_rn(u[0], w[0]);
  for (unsigned q = 1; q < r; ++q) m = __fadd_rn(m, __fmul_rn(u[q], w[q * ws]));
#else
  float m = u[0] * w[0];
  for (unsigned q = 1; q < r; ++q) m = m + u[q] * w[q * ws];
#endif
  return m;
}

// v = f + m (s = 0) or f - m (s = 1), rounded.
WC_QHD float apply(float f, float m, uint32_t s) {
#ifdef __CUDA_ARCH__
  return s ? __fsub_rn(f, m) : __fadd_rn(f, m);
#else
  return s ? f - m : f + m;
#endif
}

}  // namespace wc::bitstack
