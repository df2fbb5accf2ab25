// The exact top layer's per-element arithmetic (spec/EXACT_TOP.md §2-3):
// the order map of float bit patterns, an element's context and the split
// of a residual into symbol and raw bits. Integer operations only, so every
// decoder (CPU, a CUDA port) restores the same bits; compiles as C++ and
// CUDA like quant/qrow_math.h.
#pragma once
#include <stdint.h>

#include "quant/qrow_math.h"

namespace wc::exact {

inline constexpr unsigned kMaxContexts = 32;
inline constexpr unsigned kRawContexts = 33;  // contexts 0..32 before the clamp to C - 1
inline constexpr uint32_t kStateLow = 1u << 16;

// Bits of v up to its highest set one (0 for v = 0).
WC_QHD unsigned bit_length(uint32_t v) {
#ifdef __CUDA_ARCH__
  return 32u - unsigned(__clz(int(v)));
#else
  return v ? 32u - unsigned(__builtin_clz(v)) : 0u;
#endif
}

// ord (§2): an involution on W-bit patterns that orders them by value as
// two's-complement integers. `h` = 2^(W-1).
// (Branch-free: the sign of a weight is a coin toss a branch would miss.)
WC_QHD uint32_t ord(uint32_t x, uint32_t h) { return x ^ ((0u - uint32_t(x >= h)) & (h - 1)); }

// Original bits from level-0 bits y and residual d (W-bit, mask = 2^W - 1):
// ord(ord(y) + d) for y >= 0, ord(ord(y) - d) for a negative y.
WC_QHD uint32_t restore(uint32_t y, uint32_t d, uint32_t h, uint32_t mask) {
  const uint32_t neg = 0u - uint32_t(y >= h);  // all ones for a negative y
  return ord((ord(y, h) + ((d ^ neg) - neg)) & mask, h);
}
// Its inverse for the encoder: the residual that restores w from y.
WC_QHD uint32_t residual(uint32_t y, uint32_t w, uint32_t h, uint32_t mask) {
  const uint32_t dw = ord(w, h) - ord(y, h);
  return (y >= h ? 0u - dw : dw) & mask;
}

// Mantissa width of the dtype (ids as qrow_math.h: F16 8, BF16 9, F32 12).
WC_QHD constexpr unsigned mant_bits(uint32_t dt) { return dt == qrow::kF32 ? 23u : dt == qrow::kF16 ? 10u : 7u; }
WC_QHD constexpr unsigned width(uint32_t dt) { return dt == qrow::kF32 ? 32u : 16u; }

// The patterns the residuals are taken on (§2): the dtype's with the low Z
// mantissa bits cut (Z: the tables' trim, low bits that are zero in every
// original of the tensor: an F32 tensor of F16 or BF16 values).
struct Geom {
  unsigned w, mant, z;  // coded width and mantissa width (the dtype's less z), z
};
WC_QHD Geom geom(uint32_t dt, unsigned z) { return Geom{width(dt) - z, mant_bits(dt) - z, z}; }
WC_QHD uint32_t low_mask(unsigned w) { return w == 32 ? 0xFFFFFFFFu : (1u << w) - 1u; }

// A W-bit pattern with its low z magnitude bits cut is a (W - z)-bit one
// with the sign still on top: x >> z; and back, x << z (the cut bits zero).

// The raw context (0..32) of an element whose level-0 bits are y, in a row
// whose step is 2^E times (1 + (e & 15) / 16) (§3): 0 for a level-0 value of
// ±0, else by half-octaves of |y| / 2^E, which is about |q| times the step's
// mantissa, so a context gathers elements whose level-0 bins hold about as
// many values of the dtype. The tables clamp it to C - 1. Only y and the
// row's step are needed: a runtime holding level 0 applies level 1 onto it.
WC_QHD unsigned raw_context(uint32_t y, uint32_t dt, int32_t E) {
  const unsigned m = mant_bits(dt), w = width(dt);
  const uint32_t mag = y & ((1u << (w - 1)) - 1u);
  const int32_t bias = dt == qrow::kF16 ? 15 : 127;
  const uint32_t x = mag >> m, f = mag & ((1u << m) - 1u);
  int32_t L = int32_t(x) - bias;         // floor(log2 |y|) of a normal y (or ±Inf)
  uint32_t t = (f >> (m - 1u)) & 1u;     // the bit below the leading one
  if (mag - 1u < (1u << m) - 1u) {       // subnormal: 0 < mag < 2^m (rare; zero, common, is chosen below without a branch)
    const unsigned n = bit_length(f);
    L = int32_t(n) - int32_t(m) - bias, t = n >= 2 ? (f >> (n - 2u)) & 1u : 0u;
  }
  int32_t c = 1 + 2 * (L - E) + int32_t(t);
  c = c < 1 ? 1 : c > 32 ? 32 : c;
  return mag ? unsigned(c) : 0u;
}

// Alphabet of context c (§3).
WC_QHD uint32_t alphabet(unsigned c, Geom g) { return c == 0 ? 1u << (g.w - (g.mant - 2u)) : 8u * (g.w - 2u); }

struct Split {
  uint32_t sym, raw;  // symbol, raw bits' value
  unsigned nraw;      // raw bit count
};

// The symbol and raw bits of residual d (a g.w-bit pattern) in context c.
WC_QHD Split split(uint32_t d, unsigned c, Geom g) {
  const uint32_t h = 1u << (g.w - 1);
  const uint32_t s = (d & h) ? 1u : 0u;
  const uint32_t mask = low_mask(g.w);
  const uint32_t m = s ? ((0u - d) & mask) - 1u : d;  // |d| - s
  Split o;
  if (c == 0) {
    const unsigned r = g.mant - 2u;
    o.sym = ((m >> r) << 1) | s, o.raw = m & ((1u << r) - 1u), o.nraw = r;
  } else if (m < 4) {
    o.sym = (m << 1) | s, o.raw = 0, o.nraw = 0;
  } else {
    const unsigned n = bit_length(m), r = n - 3u;
    o.sym = ((4u + 4u * (n - 3u) + ((m >> r) & 3u)) << 1) | s, o.raw = m & ((1u << r) - 1u), o.nraw = r;
  }
  return o;
}

// Raw bit count of symbol `sym` in context c.
WC_QHD unsigned raw_bits(uint32_t sym, unsigned c, Geom g) {
  if (c == 0) return g.mant - 2u;
  const uint32_t k = sym >> 1;
  return k < 4 ? 0u : (k - 4u) / 4u;
}

// The residual from a symbol and its raw bits (the inverse of split).
WC_QHD uint32_t join(uint32_t sym, uint32_t raw, unsigned c, Geom g) {
  const uint32_t mask = low_mask(g.w);
  const uint32_t s = sym & 1u, k = sym >> 1;
  uint32_t m;
  if (c == 0) m = (k << (g.mant - 2u)) | raw;
  else if (k < 4) m = k;
  else {
    const unsigned r = (k - 4u) / 4u;
    m = ((4u + (k - 4u) % 4u) << r) | raw;
  }
  return s ? (0u - (m + 1u)) & mask : m;
}

}  // namespace wc::exact
