// Fast CPU decoder for float_ans: 8 sub-streams decoded in lock-step for
// instruction-level parallelism; their elements are adjacent (element i is in
// sub-stream i mod nsub), so one step writes 8 consecutive values and reads
// one contiguous run of the raw plane. Output must equal layout::decode_substream
// bit for bit (tests compare them).
#include <cpuid.h>

#include <atomic>
#include <cstring>

#include "codec/float_ans_internal.h"

namespace wc::fans::detail {

using namespace layout;

namespace {

inline uint64_t ld64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
inline uint32_t ld16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }

constexpr unsigned G = 8;  // lanes

inline uint64_t replicate(uint64_t m, unsigned W) {
  uint64_t r = 0;
  for (unsigned i = 0; i < 64; i += W) r |= m << i;
  return r;
}

// pdep through inline asm so the portable build needs no -mbmi2; only reached
// from the BMI2 kernel, selected at run time.
inline uint64_t pdep64(uint64_t a, uint64_t m) {
#if defined(__x86_64__)
  uint64_t r;
  __asm__("pdep %2, %1, %0" : "=r"(r) : "r"(a), "rm"(m));
  return r;
#else
  uint64_t r = 0;
  for (uint64_t bb = 1; m; bb += bb) {
    if (a & bb) r |= m & -m;
    m &= m - 1;
  }
  return r;
#endif
}

// Spreads P = 64/W raw fields of w bits (packed from bit 0 of raw) into P lanes
// of W bits each: low r bits to the bottom, bit r (sign, when raw) to the top.
template <unsigned W, bool PDEP>
__attribute__((always_inline)) inline uint64_t spread(uint64_t raw, uint64_t lanemask, uint32_t w, uint32_t r) {
  if constexpr (PDEP) {
    return pdep64(raw, lanemask);
  } else {
    constexpr unsigned P = 64 / W;
    const uint64_t lowmask = (uint64_t(1) << r) - 1;
    uint64_t out = 0;
    for (unsigned l = 0; l < P; ++l) {
      const uint64_t fld = raw >> (l * w);
      uint64_t v = (fld & lowmask) | (((fld >> r) & 1) << (W - 1));
      out |= v << (l * W);
    }
    return out & lanemask;
  }
}

template <unsigned W, bool PDEP>
__attribute__((always_inline)) inline bool decode_group_body(const uint8_t* src, uint8_t* dst, const ChunkLayout& L, const uint32_t* slot,
                      const uint16_t* vals, uint64_t j0, const uint8_t* const* wptr,
                      const uint32_t* wcount) {
  constexpr unsigned P = 64 / W;  // values per 64-bit output word
  const Split& s = L.s;
  const uint32_t pb = L.h.prob_bits;
  const uint32_t pmask = (1u << pb) - 1;
  const uint32_t w = s.w, r = s.r;
  const uint64_t nsub = L.nsub, n = L.n;
  const uint64_t base = n / nsub, extra = n % nsub;
  const uint8_t* plane = src + L.plane_off;
  const size_t plane_n = L.plane_n;
  const uint64_t lanemask = replicate(((uint64_t(1) << r) - 1) | (s.joint ? 0 : uint64_t(1) << (W - 1)), W);
  const uint32_t vshift = s.val_shift;

  uint32_t x[G];
  const uint8_t* p[G];
  for (unsigned l = 0; l < G; ++l) {
    x[l] = load32(src + L.states_off + 4 * (j0 + l));
    p[l] = wptr[l];
    if (x[l] < kLowerBound) return false;
  }
  // steps whose raw loads (8 bytes at the bit of element i0 + 8 - P) stay inside the plane
  uint64_t tfast = base;
  if (w != 0) {
    if (plane_n < 8) tfast = 0;
    else {
      const uint64_t maxbit = (uint64_t(plane_n) - 8) * 8;  // start bit must be <= maxbit + 7 (byte <= plane_n-8)
      const uint64_t imax = (maxbit + 7) / w;               // highest element whose load is safe
      const uint64_t last_needed = j0 + G - P;              // offset of the last load's element in a step
      if (imax < last_needed) tfast = 0;
      else {
        uint64_t tt = (imax - last_needed) / nsub + 1;
        if (tt < tfast) tfast = tt;
      }
    }
  }
  for (uint64_t t = 0; t < tfast; ++t) {
    const uint64_t i0 = t * nsub + j0;
    uint32_t sv[G];
#pragma GCC unroll 8
    for (unsigned l = 0; l < G; ++l) {
      const uint32_t sl = x[l] & pmask;
      const uint32_t e = slot[sl];
      sv[l] = vals[sl];
      uint32_t xx = (e & 0xFFFFu) * (x[l] >> pb) + (e >> 16);
      const uint32_t wd = ld16(p[l]);
      const bool rn = xx < kLowerBound;
      xx = rn ? (xx << 16) | wd : xx;
      p[l] += rn ? 2 : 0;
      x[l] = xx;
    }
#pragma GCC unroll 8
    for (unsigned q = 0; q < G / P; ++q) {
      const uint64_t ib = i0 + q * P;
      const uint64_t bit = ib * w;
      const uint64_t raw = ld64(plane + (bit >> 3)) >> (bit & 7);
      uint64_t o = spread<W, PDEP>(raw, lanemask, w, r);
#pragma GCC unroll 8
      for (unsigned l = 0; l < P; ++l) o |= uint64_t(sv[q * P + l]) << (vshift + l * W);
      std::memcpy(dst + ib * (W / 8), &o, 8);
    }
  }
  // remaining steps, element by element with checked raw reads
  for (unsigned l = 0; l < G; ++l) {
    const uint64_t len = base + (j0 + l < extra ? 1 : 0);
    uint32_t xx = x[l];
    for (uint64_t t = tfast; t < len; ++t) {
      const uint64_t i = t * nsub + j0 + l;
      const uint32_t sl = rans_step(xx, pb, slot);
      if (xx < kLowerBound) { xx = (xx << 16) | ld16(p[l]); p[l] += 2; }
      const uint32_t v = (uint32_t(vals[sl]) << vshift) | raw_value(s, read_raw_bits(plane, plane_n, i * w, w));
      store_value(dst, i, W, v);
    }
    x[l] = xx;
  }
  bool ok = true;
  for (unsigned l = 0; l < G; ++l) ok &= (x[l] == kLowerBound) & (p[l] == wptr[l] + 2 * uint64_t(wcount[l]));
  return ok;
}

template <unsigned W>
__attribute__((target("bmi2"))) bool group_bmi2(const uint8_t* src, uint8_t* dst, const ChunkLayout& L,
                                                const uint32_t* slot, const uint16_t* vals, uint64_t j0,
                                                const uint8_t* const* wptr, const uint32_t* wcount) {
  return decode_group_body<W, true>(src, dst, L, slot, vals, j0, wptr, wcount);
}
template <unsigned W>
bool group_plain(const uint8_t* src, uint8_t* dst, const ChunkLayout& L, const uint32_t* slot,
                 const uint16_t* vals, uint64_t j0, const uint8_t* const* wptr, const uint32_t* wcount) {
  return decode_group_body<W, false>(src, dst, L, slot, vals, j0, wptr, wcount);
}

using GroupFn = bool (*)(const uint8_t*, uint8_t*, const ChunkLayout&, const uint32_t*, const uint16_t*,
                         uint64_t, const uint8_t* const*, const uint32_t*);

std::atomic<int> g_forced{-1};

bool pdep_is_fast() {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("bmi2")) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  const bool amd = b == 0x68747541;  // "Auth"enticAMD
  if (!amd) return true;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  unsigned family = (a >> 8) & 0xF;
  if (family == 0xF) family += (a >> 20) & 0xFF;
  return family >= 0x19;  // pdep is microcoded (slow) before Zen 3
#else
  return false;
#endif
}

int auto_kernel() {
  static const int k = pdep_is_fast() ? 1 : 0;
  return k;
}

}  // namespace

void force_kernel(int which) noexcept { g_forced.store(which); }
int active_kernel() noexcept {
  int f = g_forced.load();
  if (f == 1 && !__builtin_cpu_supports("bmi2")) f = 0;
  return f >= 0 ? f : auto_kernel();
}

bool decode_fast(const uint8_t* src, size_t src_n, uint8_t* dst, const ChunkLayout& L,
                 const uint32_t* slot, const uint16_t* vals) noexcept {
  const bool pdep = active_kernel() == 1;
  GroupFn fn;
  switch (L.s.W) {
    case 8: fn = pdep ? group_bmi2<8> : group_plain<8>; break;
    case 16: fn = pdep ? group_bmi2<16> : group_plain<16>; break;
    default: fn = pdep ? group_bmi2<32> : group_plain<32>; break;
  }
  const uint64_t nsub = L.nsub;
  const uint64_t base = L.n / nsub, extra = L.n % nsub;
  uint64_t off = L.streams_off, sum = 0;
  bool ok = true;
  uint64_t j0 = 0;
  for (; j0 + G <= nsub; j0 += G) {
    const uint8_t* wp[G];
    uint32_t wc[G];
    bool safe = true;
    uint64_t o = off;
    for (unsigned l = 0; l < G; ++l) {
      wc[l] = word_count(src, L, j0 + l, sum);
      sum += wc[l];
      wp[l] = src + o;
      const uint64_t len = base + (j0 + l < extra ? 1 : 0);
      safe &= o + 2 * len + 2 <= src_n;  // every possible read stays in src
      o += 2 * uint64_t(wc[l]);
    }
    if (safe) {
      ok &= fn(src, dst, L, slot, vals, j0, wp, wc);
    } else {
      for (unsigned l = 0; l < G; ++l)
        ok &= decode_substream(L.s, L.h.prob_bits, slot, vals, load32(src + L.states_off + 4 * (j0 + l)), wp[l],
                               wc[l], j0 + l, nsub, L.n, src + L.plane_off, L.plane_n, dst);
    }
    off = o;
  }
  for (uint64_t j = j0; j < nsub; ++j) {
    const uint32_t c = word_count(src, L, j, sum);
    ok &= decode_substream(L.s, L.h.prob_bits, slot, vals, load32(src + L.states_off + 4 * j), src + off, c, j,
                           nsub, L.n, src + L.plane_off, L.plane_n, dst);
    off += 2 * uint64_t(c);
    sum += c;
  }
  return ok;
}

}  // namespace wc::fans::detail
