// Fast CPU decoder for float_ans. A group of up to 32 lanes (sub-streams)
// shares one word stream; step t decodes element t*nsub + j of every lane j
// of the group in lane order, so the lanes of a group write consecutive
// elements and read one contiguous run of the raw plane.
//
// AVX2 kernel (every type and z, packed or wide table, groups of 8 lanes or
// more): per 8 lanes eight loads of a packed slot entry (freq-1 | symbol
// index | bias, field widths per chunk, see Tables) give the next state and
// the symbol (tables whose index does not fit: eight 8-byte loads of a 6-byte
// slot, entry and u16 index, split by two shufps; scalar loads and inserts
// beat vpgatherdd on Zen 3 and Zen 4); the output bits are computed from the
// index; the lanes needing a renormalisation word take consecutive words,
// expanded with a movemask-indexed pshufb of 8 words broadcast to both
// halves; the raw fields of 8 elements (w bytes) are spread with one pshufb +
// variable shift. The kernel is bound by the latency of one step's chain
// (slot extraction, table load, multiply, need mask, word lookup), so the
// code keeps that chain short. Groups of fewer than 8 lanes (small tensors)
// run scalar steps with the states in registers (BMI2 build where pdep is
// fast); everything else (tables with prob_bits > 12, the last steps near the
// end of the payload) runs the checked scalar group decoder. Output equals
// layout::decode_group bit for bit (tests compare them).
#include <immintrin.h>

#include <array>
#include <atomic>
#include <cstring>

#include "codec/float_ans_internal.h"

namespace wc::fans::detail {

using namespace layout;

namespace {

inline uint64_t ld64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
inline uint32_t ld16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
// read instead of a word past the end of a group's words (the value is unused)
alignas(2) constexpr uint8_t kZeroWord[2] = {0, 0};
// the raw plane read when w == 0 (no plane: every bit in the symbol), so
// the unchecked 8-byte field read at bit 0 stays in bounds
alignas(8) constexpr uint8_t kZeroPlane[8] = {};

// A raw field (rr mantissa bits, then the sign when raw) put in place: the
// mantissa bits at z.., the sign at W - 1 (a joint-sign field has no sign bit
// above rr, so it adds 0 there)
template <unsigned W>
inline uint32_t place_raw(uint64_t raw, uint32_t lowmask, uint32_t rr, uint32_t z) {
  return ((uint32_t(raw) & lowmask) << z) | (uint32_t(raw >> rr) & 1u) << (W - 1);
}
template <unsigned W>
inline void store_elem(uint8_t* dst, uint64_t i, uint32_t v) {
  if constexpr (W == 8) dst[i] = uint8_t(v);
  else if constexpr (W == 16) { const uint16_t h = uint16_t(v); std::memcpy(dst + 2 * i, &h, 2); }
  else std::memcpy(dst + 4 * i, &v, 4);
}

// Table policies for the scalar decoder: step(x) decodes one symbol, updates
// x (no renormalisation) and returns the symbol's output bits (full width).
struct RefTab {
  const uint32_t* slot;
  const uint16_t* vals;
  uint32_t pb, vshift;
  inline uint32_t step(uint32_t& x) const {
    const uint32_t sl = x & ((1u << pb) - 1u);
    const uint32_t e = slot[sl];
    x = (e & 0xFFFFu) * (x >> pb) + (e >> 16);
    return uint32_t(vals[sl]) << vshift;
  }
};
template <bool BIG, unsigned W = 16>
struct PackTab {  // BIG: more than 256 symbols, the output bits computed from the index
  const uint32_t* t;
  const uint32_t* val8;
  uint32_t pb, fb, lo, r, joint;
  inline uint32_t step(uint32_t& x) const {
    const uint32_t e = t[x & ((1u << pb) - 1u)];
    const uint32_t xs = x >> pb;
    // (freq - 1) * xs + (xs + bias), the sum beside the multiply (not folded
    // into ((freq - 1) + 1) * xs: one step less after the load)
    uint32_t xb = xs + (e >> (32 - fb));
    __asm__("" : "+r"(xb));
    x = (e & ((1u << fb) - 1u)) * xs + xb;
    const uint32_t idx = (e >> fb) & ((1u << (32 - 2 * fb)) - 1u);
    if constexpr (BIG) {
      const uint32_t sym = lo + idx;
      return joint ? ((sym >> 1) << r) | ((sym & 1u) << (W - 1)) : sym << r;
    } else {
      return val8[idx];
    }
  }
};

// Wide table (see Tables): the entry and the symbol index from one slot of
// wide3; the output bits computed from the index as layout::symbol_value.
template <unsigned W>
struct WideTab {
  const uint16_t* w3;
  uint32_t pb, lo, r, joint;
  inline uint32_t step(uint32_t& x) const {
    const uint16_t* q = w3 + 3 * size_t(x & ((1u << pb) - 1u));
    uint32_t e;
    std::memcpy(&e, q, 4);
    const uint32_t sym = lo + q[2], xs = x >> pb;
    uint32_t xb = xs + (e >> 20);
    __asm__("" : "+r"(xb));
    x = (e & 0xFFFu) * xs + xb;
    return joint ? ((sym >> 1) << r) | ((sym & 1u) << (W - 1)) : sym << r;
  }
};

// x = need ? (x << 16) | word : x as a conditional move: the compiler makes
// it a branch, which mispredicts about once per six symbols (and only looks
// cheap when one chunk is decoded over and over)
inline uint32_t renorm(uint32_t x, uint32_t wd) {
#if defined(__x86_64__)
  const uint32_t alt = (x << 16) | wd;
  __asm__("cmpl $0xffff, %1\n\tcmovbe %2, %0" : "=r"(x) : "r"(x), "r"(alt), "0"(x) : "cc");
  return x;
#else
  return x < kLowerBound ? (x << 16) | wd : x;
#endif
}

// Steps t0.. of a group of NL < 8 lanes (chunks of a few sub-streams: small
// tensors), each lane's state in a register: a step's lanes are independent
// rANS chains, so the loop runs at the latency of one decode step for NL
// elements. Reads are unchecked while the step's elements, words (at most
// one per lane) and 8-byte raw-field reads stay in bounds; returns the first
// step not done (group_scalar finishes, checked). PDEP: built for BMI2 with
// a fast pdep, which puts a raw field's bits in place in one instruction.
template <unsigned W, unsigned NL, class Tab, bool PDEP>
__attribute__((always_inline)) inline uint64_t regs_steps(const Tab& tabref, const ChunkLayout& L, const uint8_t* src,
                                                          uint32_t* xio, uint64_t j0, uint64_t t0, const uint8_t*& pref,
                                                          const uint8_t* pend, uint8_t* dst) {
  const Tab tab = tabref;  // locals only: the stores to dst may alias anything reached through a pointer
  uint32_t x[NL];
  for (uint32_t l = 0; l < NL; ++l) x[l] = xio[l];
  const uint64_t nsub = L.nsub, n = L.n;
  const uint32_t w = L.s.w, rr = L.s.rr, z = L.s.z;
  // w == 0: every field read is at bit 0 of an 8-byte zero plane (the
  // payload's plane may be empty and end the chunk)
  const uint8_t* plane = w ? src + L.plane_off : kZeroPlane;
  const uint64_t fastbits = L.plane_n >= 8 ? (uint64_t(L.plane_n) - 8) * 8 : 0;  // reads of 8 bytes stay inside
  const uint32_t lowmask = (1u << rr) - 1u;
  const uint64_t wmask = (uint64_t(1) << w) - 1u;
  // where pdep puts the raw field's bits: mantissa bits z.., the sign (when raw) at W - 1
  const uint32_t dep = (lowmask << z) | (L.s.joint ? 0u : 1u << (W - 1));
  const uint8_t* p = pref;
  uint64_t t = t0, i0 = t0 * nsub + j0;
  for (; i0 + NL <= n && (i0 + NL) * w <= fastbits && pend - p >= ptrdiff_t(2 * NL); ++t, i0 += nsub) {
#pragma GCC unroll 8
    for (uint32_t l = 0; l < NL; ++l) {
      const uint64_t i = i0 + l;
      uint32_t xx = x[l];
      uint32_t v = tab.step(xx);
      const bool need = xx < kLowerBound;
      p += 2 * uint32_t(need);
      xx = renorm(xx, ld16(p - 2 * uint32_t(need)));
      x[l] = xx;
      const uint64_t bit = i * w;
      if constexpr (PDEP) {
        const uint32_t raw = uint32_t(ld64(plane + (bit >> 3)) >> (bit & 7)), m = dep;
        uint32_t d;
        __asm__("pdep %2, %1, %0" : "=r"(d) : "r"(raw), "r"(m));
        v |= d;
      } else {
        const uint64_t raw = (ld64(plane + (bit >> 3)) >> (bit & 7)) & wmask;
        v |= place_raw<W>(raw, lowmask, rr, z);
      }
      store_elem<W>(dst, i, v);
    }
  }
  for (uint32_t l = 0; l < NL; ++l) xio[l] = x[l];
  pref = p;
  return t;
}
template <unsigned W, unsigned NL, class Tab>
uint64_t group_scalar_regs(const Tab& tab, const ChunkLayout& L, const uint8_t* src, uint32_t* xio, uint64_t j0,
                           uint64_t t0, const uint8_t*& pref, const uint8_t* pend, uint8_t* dst) {
  return regs_steps<W, NL, Tab, false>(tab, L, src, xio, j0, t0, pref, pend, dst);
}
template <unsigned W, unsigned NL, class Tab>
__attribute__((target("bmi,bmi2"))) uint64_t group_scalar_regs_bmi2(const Tab& tab, const ChunkLayout& L,
                                                                    const uint8_t* src, uint32_t* xio, uint64_t j0,
                                                                    uint64_t t0, const uint8_t*& pref,
                                                                    const uint8_t* pend, uint8_t* dst) {
  return regs_steps<W, NL, Tab, true>(tab, L, src, xio, j0, t0, pref, pend, dst);
}

// Decodes steps t0.. of a group (states x[0..lanes), word pointer p, words end
// pend) with checked reads. Returns false if a word past pend was needed.
template <unsigned W, class Tab>
bool group_scalar(const Tab& tabref, const ChunkLayout& L, const uint8_t* src, uint32_t* xio, uint32_t lanes,
                  uint64_t j0, uint64_t t0, const uint8_t*& pref, const uint8_t* pend, uint8_t* dst) {
  // locals only: the byte stores to dst may alias anything reached through a pointer
  const Tab tab = tabref;
  const Split s = L.s;
  uint32_t x[kGroupLanes];
  for (uint32_t l = 0; l < lanes; ++l) x[l] = xio[l];
  const uint64_t nsub = L.nsub, n = L.n;
  const uint32_t w = s.w, rr = s.rr, z = s.z;
  const uint8_t* plane = src + L.plane_off;
  const size_t plane_n = L.plane_n;
  const uint64_t fastbits = plane_n >= 8 ? (uint64_t(plane_n) - 8) * 8 : 0;  // reads of 8 bytes stay inside
  const uint32_t lowmask = (1u << rr) - 1u;
  const uint64_t wmask = (uint64_t(1) << w) - 1u;
  const uint8_t* p = pref;
  bool ok = true;
  for (uint64_t i0 = t0 * nsub + j0; i0 < n; i0 += nsub) {
    const uint32_t nl = uint32_t(n - i0 < lanes ? n - i0 : lanes);
    for (uint32_t l = 0; l < nl; ++l) {
      const uint64_t i = i0 + l;
      uint32_t xx = x[l];
      uint32_t v = tab.step(xx);
      // branch-free renormalisation: whether a word is needed is data-dependent
      // and unpredictable (about one symbol in six)
      const bool need = xx < kLowerBound;
      const bool have = p < pend;
      const uint32_t wd = ld16(have ? p : kZeroWord);
      ok &= have | !need;
      xx = renorm(xx, wd);
      p += 2 * uint32_t(need);
      x[l] = xx;
      const uint64_t bit = i * w;
      uint64_t raw;
      if (bit < fastbits) raw = (ld64(plane + (bit >> 3)) >> (bit & 7)) & wmask;
      else raw = read_raw_bits(plane, plane_n, bit, w);
      v |= place_raw<W>(raw, lowmask, rr, z);
      store_elem<W>(dst, i, v);
    }
  }
  for (uint32_t l = 0; l < lanes; ++l) xio[l] = x[l];
  pref = p;
  return ok;
}

// pshufb control per need mask m: lane l of m takes word number (popcount of
// m below l) of 8 words broadcast to both 128-bit halves, zero-extended to 32
// bits; lanes outside m get 0 (8 KiB)
constexpr std::array<uint8_t, 256 * 32> make_expand_lut() {
  std::array<uint8_t, 256 * 32> t{};
  for (unsigned m = 0; m < 256; ++m) {
    unsigned c = 0;
    for (unsigned l = 0; l < 8; ++l) {
      const bool in = m >> l & 1;
      uint8_t* e = &t[m * 32 + (l & 3) * 4 + (l >= 4 ? 16 : 0)];
      e[0] = in ? uint8_t(2 * c) : 0x80;
      e[1] = in ? uint8_t(2 * c + 1) : 0x80;
      e[2] = e[3] = 0x80;
      if (in) ++c;
    }
  }
  return t;
}
alignas(64) constexpr std::array<uint8_t, 256 * 32> kExpand = make_expand_lut();

// Eight table entries by scalar loads: on Zen 3 a vpgatherdd of 8 takes about
// 8 cycles of throughput, 8 loads and inserts fewer; a wide table's second
// lookup (the u16 symbol index) reuses the extracted slots.
__attribute__((target("avx2"), always_inline)) inline __m128i ld4x(const void* a, const void* b, const void* c,
                                                                  const void* d) {
  int va, vb, vc, vd;
  std::memcpy(&va, a, 4), std::memcpy(&vb, b, 4), std::memcpy(&vc, c, 4), std::memcpy(&vd, d, 4);
  return _mm_insert_epi32(_mm_insert_epi32(_mm_insert_epi32(_mm_cvtsi32_si128(va), vb, 1), vc, 2), vd, 3);
}
__attribute__((target("avx2"), always_inline)) inline __m256i combine8(const void* a, const void* b, const void* c,
                                                                    const void* d, const void* e, const void* f,
                                                                    const void* g, const void* h) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(ld4x(a, b, c, d)), ld4x(e, f, g, h), 1);
}
// wide tables: 8 slots of 6 bytes (entry, index) by four 16-byte pairs of
// 8-byte loads, split into entries and indices (garbage above bit 15) by two
// shufps
__attribute__((target("avx2"), always_inline)) inline __m128i ld2q(const uint16_t* w3, uint32_t a, uint32_t b) {
  long long va, vb;
  std::memcpy(&va, w3 + 3 * size_t(a), 8), std::memcpy(&vb, w3 + 3 * size_t(b), 8);
  return _mm_insert_epi64(_mm_cvtsi64_si128(va), vb, 1);
}
template <bool WIDE>
__attribute__((target("avx2"), always_inline)) inline void lookup8(const uint32_t* tab, const uint16_t* w3, __m256i sl,
                                                                __m256i& e, __m256i& si, uint64_t pm) {
  const __m128i lo = _mm256_castsi256_si128(sl), hi = _mm256_extracti128_si256(sl, 1);
  const uint64_t a = uint64_t(_mm_cvtsi128_si64(lo)), b = uint64_t(_mm_extract_epi64(lo, 1));
  const uint64_t c = uint64_t(_mm_cvtsi128_si64(hi)), d = uint64_t(_mm_extract_epi64(hi, 1));
  const uint64_t mk = pm | pm << 32;
  const uint64_t am = a & mk, bm = b & mk, cm = c & mk, dm = d & mk;
  const uint32_t i0 = uint32_t(am), i1 = uint32_t(am >> 32), i2 = uint32_t(bm), i3 = uint32_t(bm >> 32);
  const uint32_t i4 = uint32_t(cm), i5 = uint32_t(cm >> 32), i6 = uint32_t(dm), i7 = uint32_t(dm >> 32);
  if constexpr (WIDE) {
    const __m256 A = _mm256_castsi256_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(ld2q(w3, i0, i1)), ld2q(w3, i4, i5), 1));
    const __m256 B = _mm256_castsi256_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(ld2q(w3, i2, i3)), ld2q(w3, i6, i7), 1));
    e = _mm256_castps_si256(_mm256_shuffle_ps(A, B, 0x88));
    si = _mm256_castps_si256(_mm256_shuffle_ps(A, B, 0xDD));
  } else {
    e = combine8(tab + i0, tab + i1, tab + i2, tab + i3, tab + i4, tab + i5, tab + i6, tab + i7);
  }
}

// 16-bit outputs of two vectors (16 elements): symbol indices sa, sb and raw
// fields ra, rb (both < 2^16) packed to 16-bit lanes; value = symbol bits |
// raw bits, then one lane fix-up (the packs work per 128-bit half)
// NAT: ra holds the 16 raw fields already on 16-bit lanes in element order
// (rb unused): only the symbol bits get the lane fix-up.
template <bool JOINT, bool NAT = false>
__attribute__((target("avx2"), always_inline)) inline __m256i value16(__m256i sa, __m256i sb, __m256i ra, __m256i rb,
                                                                   __m256i lo16, __m128i rv, __m128i zv, bool zon,
                                                                   __m256i sgm16, __m128i sgsh, __m256i lowm16) {
  const __m256i sym = _mm256_add_epi16(_mm256_packus_epi32(sa, sb), lo16);
  __m256i raw = NAT ? ra : _mm256_packus_epi32(ra, rb), val;
  if constexpr (JOINT) {
    val = _mm256_or_si256(_mm256_sll_epi16(_mm256_srli_epi16(sym, 1), rv), _mm256_slli_epi16(sym, 15));
    if (zon) raw = _mm256_sll_epi16(raw, zv);
  } else {
    val = _mm256_sll_epi16(sym, rv);
    const __m256i sg = _mm256_sll_epi16(_mm256_and_si256(raw, sgm16), sgsh);
    raw = _mm256_and_si256(raw, lowm16);
    if (zon) raw = _mm256_sll_epi16(raw, zv);
    raw = _mm256_or_si256(raw, sg);
  }
  if constexpr (NAT) return _mm256_or_si256(_mm256_permute4x64_epi64(val, 0xD8), raw);
  return _mm256_permute4x64_epi64(_mm256_or_si256(val, raw), 0xD8);
}

// AVX2 steps of a group of `lanes` lanes, 8*NV - 7 .. 8*NV (8-, 16- and 32-bit
// types, packed or wide table, any z). Runs steps 0.. while every load stays
// inside src and the plane and every store inside dst; returns the first step
// not done (states in x, p advanced). A step stores 8*NV elements from its
// first one: with fewer lanes (only the last group of a chunk) the surplus
// elements are those of lanes 0..6 one step later, which the caller decodes
// afterwards (it runs such a group before the others).
template <unsigned W, bool JOINT, unsigned NV, bool WIDE>
__attribute__((target("avx2,bmi2,popcnt"))) uint64_t group_avx2(const uint32_t* ptab, const uint16_t* psym, uint32_t fb,
                                                                const ChunkLayout& L,
                                                                const uint8_t* src, size_t src_n, uint32_t* xs,
                                                                uint32_t lanes, uint64_t j0, const uint8_t*& pref,
                                                                uint8_t* dst) {
  const Split& s = L.s;
  const uint32_t pb = L.h.prob_bits, w = s.w, r = s.r, rr = s.rr, z = s.z;
  const uint64_t nsub = L.nsub, n = L.n;
  const uint8_t* plane = src + L.plane_off;
  const uint64_t plane_n = L.plane_n;
  // stores: elements i0 .. i0 + 8*NV - 1 with i0 = t*nsub + j0 (t < n / nsub
  // follows for whole groups)
  if (n < j0 + 8 * NV) return 0;
  uint64_t tfast = (n - j0 - 8 * NV) / nsub + 1;
  // The raw fields of 8 elements span w bytes from bit i0*w, at a phase
  // i0*w mod 8 (0 when nsub is a multiple of 8) that selects the shuffle and
  // shifts. 8- and 16-bit types (w <= 11): one 16-byte load, broadcast to
  // both halves (7 + 7w bits + 4 bytes <= 14 bytes). 32-bit types (w <= 24):
  // elements 0-3 from a 16-byte load at the run's start, elements 4-7 from
  // one at byte hb = (phase + 4w)/8 (each field's 4 bytes lie within its 16:
  // (3w + 7)/8 + 1 + 4 <= 15).
  const uint32_t hbmax = W == 32 ? (7 + 4 * w) >> 3 : 0;
  // w == 0 (FP8 with every mantissa bit in the symbol and the sign too): no
  // raw plane; 16-bit types always have one (S <= 14 leaves r >= 2)
  if (w != 0) {
    const uint64_t need = 16 + hbmax + uint64_t(NV - 1) * w;
    if (plane_n < need) return 0;
    const uint64_t maxi = (plane_n - need) * 8 / w;  // highest first element of a step's plane run
    if (maxi < j0) return 0;
    const uint64_t tt = (maxi - j0) / nsub + 1;
    if (tt < tfast) tfast = tt;
  }
  const uint8_t* const src_end = src + src_n;
  const uint64_t pmask64 = (1u << pb) - 1u;
  // entry fields (see Tables): freq - 1 in bits 0..fb-1, the symbol index
  // above (packed), the bias in the top fb bits
  const __m256i fmask = _mm256_set1_epi32(int((1u << fb) - 1u)), imask = _mm256_set1_epi32(int((1u << (32 - 2 * fb)) - 1u));
  const __m128i fbv = _mm_cvtsi32_si128(int(fb)), bshv = _mm_cvtsi32_si128(int(32 - fb));
  const __m256i m16 = _mm256_set1_epi32(0xFFFF);
  const __m256i one = _mm256_set1_epi32(1);
  const __m128i pbv = _mm_cvtsi32_si128(int(pb)), rv = _mm_cvtsi32_si128(int(r)), zv = _mm_cvtsi32_si128(int(z));
  const __m256i lov = _mm256_set1_epi32(int(L.lo));
  const __m256i lowm = _mm256_set1_epi32(int((1u << rr) - 1u));
  const __m256i sgm = _mm256_set1_epi32(int(1u << rr));
  const __m128i sgsh = _mm_cvtsi32_si128(int(W - 1 - rr));
  const __m256i lo16 = _mm256_set1_epi16(short(L.lo)), wmask = _mm256_set1_epi32(int((1u << w) - 1u));
  const __m256i lowm16 = _mm256_set1_epi16(short((1u << rr) - 1u)), sgm16 = _mm256_set1_epi16(short(1u << rr));
  // lanes of the last vector that exist (the others never take a word)
  const bool partial = lanes < 8 * NV;
  const unsigned mlive = (1u << (lanes - 8 * (NV - 1))) - 1u;
  alignas(32) uint8_t shb[8][32];
  alignas(32) uint32_t shv[8][8];
  uint32_t hbt[8];
  for (unsigned ph = 0; ph < 8; ++ph) {
    const unsigned hb = W == 32 ? (ph + 4 * w) >> 3 : 0;
    hbt[ph] = hb;
    for (unsigned l = 0; l < 8; ++l) {
      const unsigned bit = ph + l * w, b0 = (bit >> 3) - (l >= 4 ? hb : 0);
      for (unsigned k = 0; k < 4; ++k)
        shb[ph][(l & 3) * 4 + k + (l >= 4 ? 16 : 0)] = uint8_t(b0 + k < 16 ? b0 + k : 0x80);
      shv[ph][l] = bit & 7;
    }
  }
  // 16-bit types with w <= 8 whose steps all start at bit phase 0 (nsub and
  // j0 multiples of 8): a pair of vectors' 16 fields lie in 2w <= 16 bytes;
  // each lane takes its field's 2 bytes (pshufb), a multiply by 2^(16-s-w)
  // moves the field to the top and a shift by 16 - w to the bottom, clean
  const bool raw16 = W == 16 && w <= 8 && (nsub * w) % 8 == 0 && (j0 * w) % 8 == 0;
  alignas(32) uint8_t sb16[32];
  alignas(32) uint16_t mu16[16];
  for (unsigned e = 0; e < 16; ++e) {
    const unsigned bit = e * w, b0 = bit >> 3, sft = bit & 7;
    sb16[2 * e] = uint8_t(b0);
    sb16[2 * e + 1] = uint8_t(b0 + 1 < 16 ? b0 + 1 : 0x80);
    mu16[e] = uint16_t(1u << (w <= 8 ? 16 - sft - w : 0));
  }
  const __m256i shuf16 = _mm256_load_si256(reinterpret_cast<const __m256i*>(sb16));
  const __m256i mul16 = _mm256_load_si256(reinterpret_cast<const __m256i*>(mu16));
  const __m128i sh16 = _mm_cvtsi32_si128(int(16 - w));
  __m256i x[NV];
  for (unsigned v = 0; v < NV; ++v) x[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + 8 * v));
  const uint8_t* p = pref;
  uint64_t t = 0;
  for (; t < tfast; ++t) {
    if (p + 16 * NV > src_end) break;  // word loads stay inside src
    const uint64_t i0 = t * nsub + j0;
    const uint8_t* pl = plane + ((i0 * w) >> 3);
    const unsigned ph = unsigned(i0 * w) & 7;
    const __m256i shuf = _mm256_load_si256(reinterpret_cast<const __m256i*>(shb[ph]));
    const __m256i shift = _mm256_load_si256(reinterpret_cast<const __m256i*>(shv[ph]));
    const uint32_t hb = hbt[ph];
    __m256i o[NV], r16[NV];
#pragma GCC unroll 4
    for (unsigned v = 0; v < NV; ++v) {
      const __m256i sl = x[v];  // masked to the slot in the scalar registers
      // the symbol index: bits 12-19 of the entry, or (wide tables) from the
      // u16 index table
      __m256i e, si;
      lookup8<WIDE>(ptab, psym, sl, e, si, pmask64);
      if constexpr (WIDE) si = _mm256_and_si256(si, m16);
      else si = _mm256_and_si256(_mm256_srl_epi32(e, fbv), imask);
      // xn = (freq - 1) * xsh + (xsh + bias): the sum beside the multiply
      // (the compiler would fold it into ((freq - 1) + 1) * xsh + bias, one
      // more step after the table load)
      const __m256i xsh = _mm256_srl_epi32(x[v], pbv);
      __m256i xb = _mm256_add_epi32(xsh, _mm256_srl_epi32(e, bshv));
      __asm__("" : "+x"(xb));
      const __m256i xn = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_and_si256(e, fmask), xsh), xb);
      // lanes needing a word (xn < 2^16): its high half is zero, so bit 31 of
      // a 16-bit compare, which movmskps and blendvps read
      const __m256 nd = _mm256_castsi256_ps(_mm256_cmpeq_epi16(xn, _mm256_setzero_si256()));
      unsigned m = unsigned(_mm256_movemask_ps(nd));
      if (v == NV - 1 && partial) m &= mlive;
      const __m256i wv = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      const __m256i wd = _mm256_shuffle_epi8(wv, _mm256_load_si256(reinterpret_cast<const __m256i*>(&kExpand[m * 32])));
      // the shift blended in beside the lookup, the words (zero in the
      // other lanes) or-ed in last; a dead lane (beyond lanes, m cleared)
      // may take the shift but no word, and its state is never used
      x[v] = _mm256_or_si256(
          _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(xn), _mm256_castsi256_ps(_mm256_slli_epi32(xn, 16)), nd)),
          wd);
      p += 2 * _mm_popcnt_u32(m);
      if constexpr (W == 16) {  // the value is assembled on 16-bit lanes, two vectors at once (below)
        o[v] = si;
        const bool last_alone = (NV & 1) && v == NV - 1;
        if (!raw16 || last_alone)
          r16[v] = _mm256_and_si256(
              _mm256_srlv_epi32(_mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128(
                                                        reinterpret_cast<const __m128i*>(pl + v * w))),
                                                    shuf),
                                shift),
              wmask);
        // each pair's value as soon as it is complete: fewer live vectors
        // (with all four kept to the end, the wide table's lookups spilled)
        if (v & 1) {
          __m256i val;
          if (raw16) {  // the pair's 16 fields (2w <= 16 bytes) on 16-bit lanes
            const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pl + (v - 1) * w)));
            const __m256i f = _mm256_srl_epi16(_mm256_mullo_epi16(_mm256_shuffle_epi8(b, shuf16), mul16), sh16);
            val = value16<JOINT, true>(o[v - 1], o[v], f, f, lo16, rv, zv, z != 0, sgm16, sgsh, lowm16);
          } else {
            val = value16<JOINT>(o[v - 1], o[v], r16[v - 1], r16[v], lo16, rv, zv, z != 0, sgm16, sgsh, lowm16);
          }
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * (i0 + 8 * (v - 1))), val);
        }
        continue;
      }
      const __m256i sym = _mm256_add_epi32(si, lov);
      __m256i val;
      if constexpr (JOINT)
        val = _mm256_or_si256(_mm256_sll_epi32(_mm256_srli_epi32(sym, 1), rv),
                              _mm256_slli_epi32(_mm256_and_si256(sym, one), W - 1));
      else
        val = _mm256_sll_epi32(sym, rv);
      if (w == 0) {  // (a loop-invariant branch)
        o[v] = val;
        continue;
      }
      __m256i rb;
      if constexpr (W == 32)
        rb = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(pl + v * w + hb),
                                 reinterpret_cast<const __m128i*>(pl + v * w));
      else
        rb = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pl + v * w)));
      const __m256i f = _mm256_srlv_epi32(_mm256_shuffle_epi8(rb, shuf), shift);
      __m256i raw = _mm256_and_si256(f, lowm);
      if (z != 0) raw = _mm256_sll_epi32(raw, zv);  // (a loop-invariant branch)
      if constexpr (!JOINT) raw = _mm256_or_si256(raw, _mm256_sll_epi32(_mm256_and_si256(f, sgm), sgsh));
      o[v] = _mm256_or_si256(val, raw);
    }
    if constexpr (W == 32) {
#pragma GCC unroll 4
      for (unsigned v = 0; v < NV; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 4 * (i0 + 8 * v)), o[v]);
    } else if constexpr (W == 16) {
      // indices and raw fields (both < 2^16) of two vectors packed to 16-bit
      // lanes; value = symbol bits | raw bits, then one lane fix-up
      if constexpr (NV & 1) {  // the last vector alone (the pairs are stored above)
        const __m256i pk = value16<JOINT>(o[NV - 1], o[NV - 1], r16[NV - 1], r16[NV - 1], lo16, rv, zv, z != 0, sgm16, sgsh, lowm16);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * (i0 + 8 * (NV - 1))), _mm256_castsi256_si128(pk));
      }
    } else if constexpr (NV == 4) {  // bytes, 32 lanes: two narrowing packs, one lane fix-up, one store
      const __m256i c = _mm256_packus_epi16(_mm256_packus_epi32(o[0], o[1]), _mm256_packus_epi32(o[2], o[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i0),
                          _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    } else {  // bytes: each vector's 8 values narrow to 8 bytes (4 from each 128-bit half)
#pragma GCC unroll 4
      for (unsigned v = 0; v < NV; ++v) {
        const __m256i h = _mm256_packus_epi32(o[v], o[v]);
        const __m256i b = _mm256_packus_epi16(h, h);
        const uint64_t eight = uint32_t(_mm256_extract_epi32(b, 0)) | uint64_t(uint32_t(_mm256_extract_epi32(b, 4))) << 32;
        std::memcpy(dst + i0 + 8 * v, &eight, 8);
      }
    }
  }
  for (unsigned v = 0; v < NV; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(xs + 8 * v), x[v]);
  pref = p;
  return t;
}

using AvxFn = uint64_t (*)(const uint32_t*, const uint16_t*, uint32_t, const ChunkLayout&, const uint8_t*, size_t, uint32_t*,
                           uint32_t, uint64_t, const uint8_t*&, uint8_t*);

std::atomic<int> g_forced{-1};

bool has_avx2() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
#else
  return false;
#endif
}

// 0/1 scalar, 2/3 AVX2 (1 and 3 are kept as aliases for older callers)
int auto_kernel() {
  static const int k = has_avx2() ? 2 : 0;
  return k;
}

template <unsigned W, bool JOINT, bool WIDE>
void avx_fns(AvxFn* fns) {
  fns[1] = group_avx2<W, JOINT, 1, WIDE>;
  fns[2] = group_avx2<W, JOINT, 2, WIDE>;
  fns[3] = group_avx2<W, JOINT, 3, WIDE>;
  fns[4] = group_avx2<W, JOINT, 4, WIDE>;
}

// BMI2 with a fast pdep (microcoded, very slow, before Zen 3)
bool fast_bmi2() {
#if defined(__x86_64__)
  static const bool f = (__builtin_cpu_init(), __builtin_cpu_supports("bmi2")) &&
                        !(__builtin_cpu_is("amd") && (__builtin_cpu_is("znver1") || __builtin_cpu_is("znver2")));
  return f;
#else
  return false;
#endif
}

template <unsigned W, class Tab>
using RegsFn = uint64_t (*)(const Tab&, const ChunkLayout&, const uint8_t*, uint32_t*, uint64_t, uint64_t,
                            const uint8_t*&, const uint8_t*, uint8_t*);
template <unsigned W, class Tab>
constexpr RegsFn<W, Tab> kRegs[8] = {nullptr,
                                     group_scalar_regs<W, 1, Tab>,
                                     group_scalar_regs<W, 2, Tab>,
                                     group_scalar_regs<W, 3, Tab>,
                                     group_scalar_regs<W, 4, Tab>,
                                     group_scalar_regs<W, 5, Tab>,
                                     group_scalar_regs<W, 6, Tab>,
                                     group_scalar_regs<W, 7, Tab>};
template <unsigned W, class Tab>
constexpr RegsFn<W, Tab> kRegsBmi2[8] = {nullptr,
                                         group_scalar_regs_bmi2<W, 1, Tab>,
                                         group_scalar_regs_bmi2<W, 2, Tab>,
                                         group_scalar_regs_bmi2<W, 3, Tab>,
                                         group_scalar_regs_bmi2<W, 4, Tab>,
                                         group_scalar_regs_bmi2<W, 5, Tab>,
                                         group_scalar_regs_bmi2<W, 6, Tab>,
                                         group_scalar_regs_bmi2<W, 7, Tab>};

// ptab: the packed table (psym null) or, psym set, the wide one (psym: wide3; ptab only non-null); null: no
// AVX2 kernel for this chunk.
template <unsigned W, class Tab>
bool decode_all(const Tab& tab, const uint8_t* src, size_t src_n, uint8_t* dst, const ChunkLayout& L,
                const uint32_t* ptab, const uint16_t* psym, uint32_t fb, int kern) {
  const bool avx = kern >= 2;
  // kernel 0 keeps the plain scalar build (so tests cover both)
  const RegsFn<W, Tab>* regs = kern >= 1 && fast_bmi2() ? kRegsBmi2<W, Tab> : kRegs<W, Tab>;
  AvxFn fns[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
  if constexpr (W == 16 || W == 32) {
    if (avx && ptab) {
      if (L.s.joint) psym ? avx_fns<W, true, true>(fns) : avx_fns<W, true, false>(fns);
      else psym ? avx_fns<W, false, true>(fns) : avx_fns<W, false, false>(fns);
    }
  } else if constexpr (W == 8) {  // FP8: always a packed table (at most 256 symbols)
    if (avx && ptab && !psym) L.s.joint ? avx_fns<8, true, false>(fns) : avx_fns<8, false, false>(fns);
  }
  // the last group first: with a lane count not a multiple of 8 the kernel's
  // surplus stores land on elements of group 0 (or of its own later steps),
  // decoded afterwards
  uint64_t explicit_sum = 0;
  for (uint64_t g = 0; g + 1 < L.ngroups; ++g) explicit_sum += load32(src + L.counts_off + 4 * g);
  uint64_t off = L.streams_off, sum = 0;
  bool ok = true;
  for (uint64_t k = 0; k < L.ngroups; ++k) {
    const uint64_t g = k == 0 ? L.ngroups - 1 : k - 1;
    const uint64_t before = k == 0 ? explicit_sum : sum;
    const uint32_t c = word_count(src, L, g, before);
    const uint32_t lanes = group_lanes(L, g);
    const uint64_t j0 = g * kGroupLanes;
    const uint8_t* p = src + (k == 0 ? L.streams_off + 2 * explicit_sum : off);
    const uint8_t* const pend = p + 2 * uint64_t(c);
    uint32_t x[kGroupLanes];
    bool gok = true;
    for (uint32_t l = 0; l < lanes; ++l) {
      x[l] = load32(src + L.states_off + 4 * (j0 + l));
      gok &= x[l] >= kLowerBound;
    }
    for (uint32_t l = lanes; l < kGroupLanes; ++l) x[l] = kLowerBound;
    uint64_t t0 = 0;
    // fewer than 8 lanes: the scalar steps are faster than one vector
    if (lanes >= 8 && fns[(lanes + 7) / 8]) t0 = fns[(lanes + 7) / 8](ptab, psym, fb, L, src, src_n, x, lanes, j0, p, dst);
    else if (lanes < 8) t0 = regs[lanes](tab, L, src, x, j0, 0, p, pend, dst);
    gok &= group_scalar<W>(tab, L, src, x, lanes, j0, t0, p, pend, dst);
    for (uint32_t l = 0; l < lanes; ++l) gok &= x[l] == kLowerBound;
    ok &= gok && p == pend;
    if (k != 0) {
      off += 2 * uint64_t(c);
      sum += c;
    }
  }
  return ok;
}

}  // namespace

void force_kernel(int which) noexcept { g_forced.store(which); }
int active_kernel() noexcept {
  int f = g_forced.load();
  if (f >= 2 && !has_avx2()) f = 0;
  return f >= 0 ? f : auto_kernel();
}

bool decode_fast(const uint8_t* src, size_t src_n, uint8_t* dst, const ChunkLayout& L, const Tables& T) noexcept {
  const int avx = active_kernel();
  const uint32_t pb = L.h.prob_bits, lo = L.lo, r = L.s.r, joint = L.s.joint;
  if (T.packed) {
    const uint32_t fb = T.fbits;
    if (L.count <= 256) {
      const PackTab<false> tab{T.pslot, T.val8, pb, fb, lo, r, joint};
      switch (L.s.W) {
        case 8: return decode_all<8>(tab, src, src_n, dst, L, T.pslot, nullptr, fb, avx);
        case 16: return decode_all<16>(tab, src, src_n, dst, L, T.pslot, nullptr, fb, avx);
        default: return decode_all<32>(tab, src, src_n, dst, L, T.pslot, nullptr, fb, avx);
      }
    }
    if (L.s.W == 16) {  // more than 256 symbols: 16- and 32-bit types only
      const PackTab<true, 16> tab{T.pslot, nullptr, pb, fb, lo, r, joint};
      return decode_all<16>(tab, src, src_n, dst, L, T.pslot, nullptr, fb, avx);
    }
    const PackTab<true, 32> tab{T.pslot, nullptr, pb, fb, lo, r, joint};
    return decode_all<32>(tab, src, src_n, dst, L, T.pslot, nullptr, fb, avx);
  }
  if (T.wide) {  // 16- and 32-bit types only
    if (L.s.W == 16) {
      const WideTab<16> tab{T.wide3, pb, lo, r, joint};
      return decode_all<16>(tab, src, src_n, dst, L, T.pslot, T.wide3, 12, avx);
    }
    const WideTab<32> tab{T.wide3, pb, lo, r, joint};
    return decode_all<32>(tab, src, src_n, dst, L, T.pslot, T.wide3, 12, avx);
  }
  const RefTab tab{T.slot, T.vals, pb, L.s.val_shift};
  switch (L.s.W) {
    case 8: return decode_all<8>(tab, src, src_n, dst, L, nullptr, nullptr, 12, avx);
    case 16: return decode_all<16>(tab, src, src_n, dst, L, nullptr, nullptr, 12, avx);
    default: return decode_all<32>(tab, src, src_n, dst, L, nullptr, nullptr, 12, avx);
  }
}

}  // namespace wc::fans::detail
