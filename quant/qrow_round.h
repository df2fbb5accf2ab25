// The qrow encoder's rounding (quant/qrow.h's Plan): a value's code, to
// nearest or by rate and distortion, and the same for a whole row at once.
// The row loop is the encoder's hottest (every plan of the rate-distortion
// curve rounds its sample rows three times), so it has an AVX2 body beside
// the scalar one; both give the codes of round_one, bit for bit (a test
// compares them on edge values and random rows).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "quant/qrow_math.h"

namespace wc::qrow {

// How the values of one row are rounded.
struct RoundParams {
  double inv = 1;         // 1 / the row's step
  float flim = 0;         // the largest |code| (max_code)
  float mu_r = 0;         // weight of the rate term for this row
  // Rate in bits of each zigzag code 0 .. nb - 1, then at [nb] the rate of
  // every code past them; null: round to nearest.
  const float* bits = nullptr;
  uint32_t nb = 0;
};

// The code (>= 0, sign apart) of a = |x| / step for a value of sign `neg`:
// 0 for a NaN; to nearest (at most flim) without a table; with one, flim
// when a >= flim, else the k in max(0, floor(a) - 1) .. floor(a) + 2 (k <=
// flim) of least (a - k)^2 + mu_r * bits(zigzag(+-k)), the first of equals.
// Every operation binary32 with round to nearest, no fused multiply-add.
inline int32_t round_one(float a, bool neg, const RoundParams& p) {
  if (!(a >= 0)) return 0;  // NaN (callers keep such tensors exact; never a code from it)
  if (!p.bits) {
    const float r = std::floor(a + 0.5f);
    return int32_t(r < p.flim ? r : p.flim);
  }
  if (a >= p.flim) return int32_t(p.flim);
  const int32_t f = int32_t(a);
  float best = INFINITY;
  int32_t q = 0;
  for (int32_t k = f > 0 ? f - 1 : 0; k <= f + 2 && float(k) <= p.flim; ++k) {
    const float d = a - float(k);
    const uint32_t z = zigzag(neg ? -k : k);
    const float cost = d * d + p.mu_r * p.bits[z < p.nb ? z : p.nb];
    if (cost < best) best = cost, q = k;
  }
  return q;
}

// out[c] = zigzag(+-code) of x[c] for c < n (a = |x[c]| * inv rounded once
// from double to binary32; neg = x[c] < 0); returns the largest out[c] (0
// for n = 0). The AVX2 body where the CPU has it.
uint32_t round_row(const float* x, size_t n, const RoundParams& p, uint16_t* out);
// The scalar body alone (the reference the AVX2 one is tested against).
uint32_t round_row_scalar(const float* x, size_t n, const RoundParams& p, uint16_t* out);

}  // namespace wc::qrow
