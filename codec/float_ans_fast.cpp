// Fast CPU decoder for float_ans: 8 sub-streams decoded in lock-step for
// instruction-level parallelism; their elements are adjacent (element i is in
// sub-stream i mod nsub), so one step writes 8 consecutive values and reads
// one contiguous run of the raw plane. Output must equal layout::decode_substream
// bit for bit (tests compare them).
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
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


// ---- AVX2: 8*NV lanes (NV vectors of 8 states), 16-bit types only ----------------
// Requires every lane's reads to stay inside src (checked by the caller with 4
// bytes of slack: words are gathered as u32) and src_n < 2^31.
template <bool PDEP, unsigned NV>
__attribute__((target("avx2,bmi2"))) bool group_avx2(const uint8_t* src, uint8_t* dst, const ChunkLayout& L,
                                                     const uint32_t* slot, const uint16_t* vals, uint64_t j0,
                                                     const uint8_t* const* wptr, const uint32_t* wcount) {
  constexpr unsigned W = 16, P = 4, NL = 8 * NV;
  const Split& s = L.s;
  const uint32_t pb = L.h.prob_bits;
  const uint32_t w = s.w, r = s.r;
  const uint64_t nsub = L.nsub, n = L.n;
  const uint64_t base = n / nsub, extra = n % nsub;
  const uint8_t* plane = src + L.plane_off;
  const size_t plane_n = L.plane_n;
  const uint64_t lanemask = replicate(((uint64_t(1) << r) - 1) | (s.joint ? 0 : uint64_t(1) << (W - 1)), W);

  const __m256i pmask = _mm256_set1_epi32(int((1u << pb) - 1));
  const __m256i lo16 = _mm256_set1_epi32(0xFFFF);
  const __m256i zero = _mm256_setzero_si256();
  const __m128i pbv = _mm_cvtsi32_si128(int(pb));
  __m256i x[NV], o[NV];
  alignas(32) int32_t offs[NL];
  for (unsigned l = 0; l < NL; ++l) offs[l] = int32_t(wptr[l] - src);
  __m256i bad = zero;
  for (unsigned v = 0; v < NV; ++v) {
    x[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + L.states_off + 4 * j0 + 32 * v));
    o[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(offs + 8 * v));
    bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_srli_epi32(x[v], 16), zero));  // state < L
  }
  if (!_mm256_testz_si256(bad, bad)) return false;
  const int* slot_i = reinterpret_cast<const int*>(slot);
  const int* vals_i = reinterpret_cast<const int*>(vals);
  const int* src_i = reinterpret_cast<const int*>(src);

  uint64_t tfast = base;
  if (w != 0) {
    if (plane_n < 8) tfast = 0;
    else {
      const uint64_t imax = ((uint64_t(plane_n) - 8) * 8 + 7) / w;
      const uint64_t last_needed = j0 + NL - P;
      if (imax < last_needed) tfast = 0;
      else tfast = std::min<uint64_t>(tfast, (imax - last_needed) / nsub + 1);
    }
  }
  for (uint64_t t = 0; t < tfast; ++t) {
    __m256i vv[NV];
#pragma GCC unroll 4
    for (unsigned v = 0; v < NV; ++v) {
      const __m256i sl = _mm256_and_si256(x[v], pmask);
      const __m256i e = _mm256_i32gather_epi32(slot_i, sl, 4);
      vv[v] = _mm256_and_si256(_mm256_i32gather_epi32(vals_i, sl, 2), lo16);
      __m256i xx = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_and_si256(e, lo16), _mm256_srl_epi32(x[v], pbv)),
                                    _mm256_srli_epi32(e, 16));
      const __m256i nd = _mm256_cmpeq_epi32(_mm256_srli_epi32(xx, 16), zero);
      const __m256i wd = _mm256_mask_i32gather_epi32(zero, src_i, o[v], nd, 1);
      x[v] = _mm256_blendv_epi8(xx, _mm256_or_si256(_mm256_slli_epi32(xx, 16), _mm256_and_si256(wd, lo16)), nd);
      o[v] = _mm256_sub_epi32(o[v], _mm256_add_epi32(nd, nd));
    }
    const uint64_t i0 = t * nsub + j0;
#pragma GCC unroll 4
    for (unsigned v = 0; v < NV; v += 2) {
      __m256i v16;
      uint64_t rw[4];
      const unsigned nq = v + 1 < NV ? 4 : 2;  // values: 16, or 8 for the last odd vector
      const uint64_t ib = i0 + 8 * v;
      for (unsigned q = 0; q < nq; ++q) {
        const uint64_t bit = (ib + q * P) * w;
        rw[q] = spread<W, PDEP>(ld64(plane + (bit >> 3)) >> (bit & 7), lanemask, w, r);
      }
      if (v + 1 < NV) {
        v16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(vv[v], vv[v + 1]), 0xD8);
        const __m256i rv = _mm256_set_epi64x(int64_t(rw[3]), int64_t(rw[2]), int64_t(rw[1]), int64_t(rw[0]));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * ib), _mm256_or_si256(v16, rv));
      } else {
        v16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(vv[v], vv[v]), 0xD8);
        const __m128i rv = _mm_set_epi64x(int64_t(rw[1]), int64_t(rw[0]));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * ib),
                         _mm_or_si128(_mm256_castsi256_si128(v16), rv));
      }
    }
  }
  alignas(32) uint32_t xs[NL];
  for (unsigned v = 0; v < NV; ++v) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(xs + 8 * v), x[v]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(offs + 8 * v), o[v]);
  }
  bool ok = true;
  for (unsigned l = 0; l < NL; ++l) {
    const uint64_t len = base + (j0 + l < extra ? 1 : 0);
    uint32_t xx = xs[l];
    const uint8_t* p = src + offs[l];
    for (uint64_t t = tfast; t < len; ++t) {
      const uint64_t i = t * nsub + j0 + l;
      const uint32_t sl = rans_step(xx, pb, slot);
      if (xx < kLowerBound) { xx = (xx << 16) | ld16(p); p += 2; }
      const uint32_t v = uint32_t(vals[sl]) | raw_value(s, read_raw_bits(plane, plane_n, i * w, w));
      store_value(dst, i, W, v);
    }
    ok &= (xx == kLowerBound) & (p == wptr[l] + 2 * uint64_t(wcount[l]));
  }
  return ok;
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

bool has_avx2() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
#else
  return false;
#endif
}

// 0 portable scalar, 1 scalar + pdep, 2 AVX2 + pdep, 3 AVX2 without pdep
int auto_kernel() {
  static const int k = has_avx2() ? (pdep_is_fast() ? 2 : 3) : (pdep_is_fast() ? 1 : 0);
  return k;
}

}  // namespace

void force_kernel(int which) noexcept { g_forced.store(which); }
int active_kernel() noexcept {
  int f = g_forced.load();
  if (f >= 2 && !has_avx2()) f = 0;
  if (f == 1 && !__builtin_cpu_supports("bmi2")) f = 0;
  return f >= 0 ? f : auto_kernel();
}

bool decode_fast(const uint8_t* src, size_t src_n, uint8_t* dst, const ChunkLayout& L,
                 const uint32_t* slot, const uint16_t* vals) noexcept {
  const int kern = active_kernel();
  const bool pdep = kern == 1 || kern == 2;
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
  if (kern >= 2 && L.s.W == 16 && src_n < (size_t(1) << 31)) {
    const bool pd = kern == 2;
    for (unsigned NL : {32u, 16u, 8u}) {
      GroupFn fnv = NL == 32 ? (pd ? group_avx2<true, 4> : group_avx2<false, 4>)
                  : NL == 16 ? (pd ? group_avx2<true, 2> : group_avx2<false, 2>)
                             : (pd ? group_avx2<true, 1> : group_avx2<false, 1>);
      for (; j0 + NL <= nsub; j0 += NL) {
        const uint8_t* wp[32];
        uint32_t wc[32];
        bool safe = true;
        uint64_t o = off;
        for (unsigned l = 0; l < NL; ++l) {
          wc[l] = word_count(src, L, j0 + l, sum);
          sum += wc[l];
          wp[l] = src + o;
          const uint64_t len = base + (j0 + l < extra ? 1 : 0);
          safe &= o + 2 * len + 4 <= src_n;
          o += 2 * uint64_t(wc[l]);
        }
        if (safe) {
          ok &= fnv(src, dst, L, slot, vals, j0, wp, wc);
        } else {
          for (unsigned l = 0; l < NL; ++l)
            ok &= decode_substream(L.s, L.h.prob_bits, slot, vals, load32(src + L.states_off + 4 * (j0 + l)),
                                   wp[l], wc[l], j0 + l, nsub, L.n, src + L.plane_off, L.plane_n, dst);
        }
        off = o;
      }
    }
  }
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
