// A refinement level's per-element arithmetic (spec/REFINE.md §2): the
// value of the level below as binary32, the step of the level's codes, and
// the element's new value. Integer operations and IEEE binary32 with
// round-to-nearest-even (a division, two multiplications and an addition
// per element, no FMA); compiles as C++ and CUDA like quant/qrow_math.h, so
// every decoder writes the same bits.
#pragma once
#include <stdint.h>

#include "quant/exact_top_math.h"
#include "quant/qrow_math.h"

namespace wc::refine {

inline constexpr unsigned kMaxLevels = 8;           // a tensor's level_count at most (two parts a level, 16 parts)
inline constexpr uint32_t kMaxDivisor = 1u << 24;   // M: exact in binary32
inline constexpr unsigned kMaxShift = 24;           // S
// The codes' symbols: EXACT_TOP.md §3's of contexts >= 1 on 16-bit patterns.
WC_QHD exact::Geom code_geom() { return exact::Geom{16u, 0u, 0u}; }
inline constexpr unsigned kSymbolClass = 1;  // the context whose split every refinement context uses

// The bits of a dtype element (F16 8, BF16 9, F32 12) as binary32 bits, exact.
WC_QHD uint32_t f32_bits_of(uint32_t y, uint32_t dt) {
  return dt == qrow::kF32 ? y : dt == qrow::kBF16 ? y << 16 : qrow::f16_to_f32_bits(uint16_t(y));
}

// The step of a level's codes in a row: the row's step times binary32(1/M).
WC_QHD float code_step(int32_t base_exp, uint32_t e, uint32_t M) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(qrow::step_of(base_exp, e), __fdiv_rn(1.0f, float(M)));
#else
  return qrow::step_of(base_exp, e) * (1.0f / float(M));
#endif
}

// The signed code of 16-bit pattern d for an element whose value below has
// sign bit `neg` (§2: a positive code moves away from zero).
WC_QHD int32_t signed_code(uint32_t d, bool neg) {
  const int32_t r = int32_t(int16_t(uint16_t(d)));
  return neg ? -r : r;
}

// v = f + binary32(r) * s, each operation rounded (§2).
WC_QHD float apply(float f, int32_t r, float s) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(f, __fmul_rn(float(r), s));
#else
  return f + float(r) * s;
#endif
}

WC_QHD bool finite(float v) { return (qrow::f32_bits(v) & 0x7F800000u) != 0x7F800000u; }

}  // namespace wc::refine
