// AVX2 / BMI2 kernels of the float_ans encoder (see codec/float_ans_enc.h).
// Compiled with target attributes; chosen at run time. Output equals the
// portable encoder's byte for byte.
//
// rANS steps: a group's 32 lanes are 4 vectors of 8 lanes (a partial group
// of 8, 16 or 24 lanes: 1, 2 or 3); step t reads 32
// consecutive elements. Per vector one gather (f-1 | cum << 14) gives the
// symbol's parameters; the lanes that emit push their low 16 bits onto the
// group's stack in lane order (a movemask-indexed pshufb compacts them to the
// top of 8 words), vectors from lane 24-31 down to 0-7, the mirror of the
// decoder's expansion. x / f is x times a float reciprocal of f, corrected by
// the remainder; the reciprocal is divided out of the gathered entry, off the
// state's dependency chain (a second gather of a tabled reciprocal cost more
// than the division on Zen 3).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "codec/float_ans_enc.h"
#include "codec/float_ans_hist.h"

namespace wc::fans::detail {

namespace {

#if defined(__x86_64__) || defined(__i386__)

struct alignas(16) CompactLut {
  uint8_t b[256][16];
};
constexpr CompactLut make_compact_lut() {
  CompactLut L{};
  for (unsigned m = 0; m < 256; ++m) {
    unsigned c = 0;
    for (unsigned l = 0; l < 8; ++l) c += (m >> l) & 1;
    for (unsigned p = 0; p < 16; ++p) L.b[m][p] = 0x80;
    unsigned k = 0;
    for (unsigned l = 0; l < 8; ++l)
      if ((m >> l) & 1) {
        const unsigned pos = 8 - c + k++;
        L.b[m][2 * pos] = uint8_t(2 * l);
        L.b[m][2 * pos + 1] = uint8_t(2 * l + 1);
      }
  }
  return L;
}
constexpr CompactLut kLut = make_compact_lut();

template <unsigned W>
__attribute__((target("avx2,bmi2"), always_inline)) inline __m256i load8(const uint8_t* src, uint64_t i) {
  if constexpr (W == 8) return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i)));
  else if constexpr (W == 16)
    return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i)));
  else return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 4 * i));
}

// The table entry of each of 8 values.
template <unsigned W, unsigned JOINT>
__attribute__((target("avx2,bmi2"), always_inline)) inline __m256i gather_entry(const int* ta, __m256i val,
                                                                              __m128i rcnt, __m256i magmask) {
  __m256i idx = _mm256_and_si256(_mm256_srl_epi32(val, rcnt), magmask);
  if constexpr (JOINT) idx = _mm256_or_si256(_mm256_slli_epi32(idx, 1), _mm256_srli_epi32(val, W - 1));
  return _mm256_i32gather_epi32(ta, idx, 4);
}

// BIG: some f > M / 2, so a state can reach 2^31 and needs the unsigned
// conversion to float.
// NV: vectors of 8 lanes (a group of 8 * NV lanes, or with PART of `lanes`
// lanes, 8 * (NV - 1) < lanes < 8 * NV: the last vector's lanes from
// lanes - 8 * (NV - 1) on are idle).
// An idle lane never emits, so the words of the live lanes are those the
// portable steps write; its state is garbage and never stored by the
// caller. It reads the elements that follow the group's (the next step's
// first sub-streams: this is the chunk's last group), which are the chunk's
// own values, so their table entries exist; at the first step the group
// runs (t = base - 1) those may lie past the chunk, and the live lanes'
// values are copied to a buffer, the idle lanes repeating the first.
template <unsigned W, unsigned JOINT, bool BIG, int NV, bool PART>
__attribute__((target("avx2,bmi2"))) void enc_steps(const VecEncArgs& a, const uint8_t* src, uint64_t nsub,
                                                    uint64_t base, uint64_t j0, unsigned lanes, uint32_t* xs,
                                                    uint16_t** ppp) {
  constexpr unsigned kEs = W / 8;
  const unsigned live = PART ? lanes - 8 * unsigned(NV - 1) : 8;
  const __m256i live_mask =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(int(live)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  alignas(32) uint8_t edge[8 * kEs];
  __m256i x[NV];
  for (int v = 0; v < NV; ++v) x[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + 8 * v));
  uint16_t* pp = *ppp;
  const __m128i rcnt = _mm_cvtsi32_si128(int(a.rbits));
  const __m128i ecnt = _mm_cvtsi32_si128(int(32 - a.prob_bits));
  const __m256i magmask = _mm256_set1_epi32(int(a.magmask));
  const __m256i m14 = _mm256_set1_epi32(0x3FFF);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256 two32 = _mm256_set1_ps(4294967296.0f);
  const __m256 bias = _mm256_set1_ps(1.0f + 0x1p-21f);
  const __m256 one_ps = _mm256_set1_ps(1.0f);
  const __m256i mM = _mm256_set1_epi32(int(1u << a.prob_bits));
  // low 16 bits of each 32-bit lane, packed to the low 8 bytes of each half
  const __m256i low16 = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                         0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
  const int* ta = reinterpret_cast<const int*>(a.a);
  // The table lookups depend on the input only: the gathers for step t - 1
  // are issued during step t, off the state's dependency chain.
  auto lookup = [&](uint64_t t, int v) __attribute__((always_inline, target("avx2,bmi2"))) {
    const uint64_t i = t * nsub + j0 + 8 * unsigned(v);
    if (PART && v == NV - 1 && t + 1 == base) {
      for (unsigned l = 0; l < 8; ++l) std::memcpy(edge + l * kEs, src + (i + (l < live ? l : 0)) * kEs, kEs);
      return gather_entry<W, JOINT>(ta, load8<W>(edge, 0), rcnt, magmask);
    }
    return gather_entry<W, JOINT>(ta, load8<W>(src, i), rcnt, magmask);
  };
  __m256i next[NV];
  if (base)
    for (int v = 0; v < NV; ++v) next[v] = lookup(base - 1, v);
  for (uint64_t t = base; t-- > 0;) {
    const uint64_t tn = t ? t - 1 : 0;
    for (int v = NV - 1; v >= 0; --v) {
      const __m256i A = next[v];
      next[v] = lookup(tn, v);
      // Everything but x comes from the table entry (gathered a step ahead),
      // so the reciprocal of f and M - f are off the state's dependency chain:
      // on it, one multiply instead of a division.
      const __m256i fm1 = _mm256_and_si256(A, m14);
      const __m256i cum = _mm256_srli_epi32(A, 14);
      const __m256i f = _mm256_add_epi32(fm1, one);
      const __m256i cmpl = _mm256_sub_epi32(mM, f);  // M - f
      const __m256 rf = _mm256_div_ps(one_ps, _mm256_mul_ps(_mm256_cvtepi32_ps(f), bias));
      __m256i xv = x[v];
      __m256i emit = _mm256_cmpgt_epi32(_mm256_srl_epi32(xv, ecnt), fm1);
      if (PART && v == NV - 1) emit = _mm256_and_si256(emit, live_mask);
      const unsigned m = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(emit)));
      {
        const __m256i p = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(xv, low16), _MM_SHUFFLE(3, 1, 2, 0));
        const __m128i words = _mm_shuffle_epi8(_mm256_castsi256_si128(p),
                                               _mm_load_si128(reinterpret_cast<const __m128i*>(kLut.b[m])));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(pp - 8), words);
        pp -= __builtin_popcount(m);
      }
      xv = _mm256_blendv_epi8(xv, _mm256_srli_epi32(xv, 16), emit);
      // q0 = trunc(float(x) * float(1 / float(f * (1 + 2^-21)))) is
      // q = floor(x / f) or q - 1: five roundings of relative error <= 2^-24
      // (x, f, the biased f, its reciprocal, the product) stay below the
      // bias, and q < 2^(32 - prob_bits) <= 2^20 keeps the shortfall under 1.
      // One remainder test fixes it, so the result is exact whatever the
      // rounding (and equal to the portable encoder's). The new state is
      // x + cum + q * (M - f), q = q0 + over.
      __m256 xf = _mm256_cvtepi32_ps(xv);  // x >= 2^31 converts as x - 2^32
      if constexpr (BIG) xf = _mm256_add_ps(xf, _mm256_and_ps(_mm256_castsi256_ps(_mm256_srai_epi32(xv, 31)), two32));
      const __m256i q = _mm256_cvttps_epi32(_mm256_mul_ps(xf, rf));
      const __m256i rem = _mm256_sub_epi32(xv, _mm256_mullo_epi32(q, f));
      const __m256i over = _mm256_cmpgt_epi32(rem, fm1);
      const __m256i xc = _mm256_add_epi32(_mm256_add_epi32(xv, cum), _mm256_mullo_epi32(q, cmpl));
      x[v] = _mm256_add_epi32(xc, _mm256_and_si256(cmpl, over));
    }
  }
  for (int v = 0; v < NV; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(xs + 8 * v), x[v]);
  *ppp = pp;
}

// Appends fields of up to 64 bits to a plane LSB-first, storing whole
// 64-bit words as they fill (the plane's layout: see pack_plane in
// codec/float_ans.cpp).
struct BitSink {
  uint8_t* out;
  uint64_t acc = 0;
  unsigned nb = 0;
  __attribute__((always_inline)) void push(uint64_t f, unsigned bits) {
    acc |= f << nb;
    const unsigned tot = nb + bits;
    if (tot >= 64) {
      std::memcpy(out, &acc, 8);
      out += 8;
      acc = nb ? f >> (64 - nb) : 0;
      nb = tot - 64;
    } else {
      nb = tot;
    }
  }
  void flush() {
    while (nb > 0) {
      *out++ = uint8_t(acc);
      acc >>= 8;
      nb = nb > 8 ? nb - 8 : 0;
    }
  }
};

template <unsigned W>
__attribute__((target("avx2,bmi2"))) void pack_plane_t(uint32_t pmask, const uint8_t* src, uint64_t n,
                                                        uint8_t* out) {
  constexpr unsigned per = 64 / W;  // values per 64-bit word
  uint64_t mask = 0;
  for (unsigned j = 0; j < per; ++j) mask |= uint64_t(pmask) << (W * j);
  const unsigned w = unsigned(__builtin_popcount(pmask));
  const unsigned len = per * w;
  uint64_t i = 0;
  if (w <= 8) {
    // 8 values fill exactly w bytes: each block is one 8-byte store that the
    // next block's store partly overwrites (no bit accumulator to carry), as
    // long as 8 bytes fit in the plane.
    const uint64_t plane_n = (n >> 3) * w + ((n & 7) * w + 7) / 8;
    uint64_t o = 0;
    for (; i + 8 <= n && o + 8 <= plane_n; i += 8, o += w) {
      uint64_t u = 0;
      for (unsigned j = 0; j < 8 / per; ++j) {
        uint64_t v;
        std::memcpy(&v, src + (i + j * per) * (W / 8), 8);
        u |= _pext_u64(v, mask) << (j * len);
      }
      std::memcpy(out + o, &u, 8);
    }
    out += o;
  }
  BitSink bs{out};
  const uint8_t* p = src + i * (W / 8);
  for (; i + per <= n; i += per, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    bs.push(_pext_u64(v, mask), len);
  }
  for (; i < n; ++i) bs.push(_pext_u32(load_val<W>(src, i), pmask), w);
  bs.flush();
}

// The same plane without pext (microcoded on AMD before Zen 3): 32 bytes
// of values at a time, each value's field ((v >> z) & (2^rr - 1), then the
// sign above it unless joint) computed in its lane, then neighbouring
// fields joined by shifts, lanes of W bits into lanes of 2W and so on, up
// to four 64-bit words of 64 / W fields each.
template <unsigned W>
__attribute__((target("avx2,bmi2"))) void pack_plane_vec_t(uint32_t z, uint32_t rr, bool joint, const uint8_t* src,
                                                            uint64_t n, uint8_t* out) {
  constexpr unsigned per = 64 / W;  // fields per 64-bit word
  const unsigned w = rr + (joint ? 0u : 1u);
  const uint32_t lowmask = (1u << rr) - 1u, signbit = joint ? 0u : 1u;
  const __m128i zc = _mm_cvtsi32_si128(int(z)), rc = _mm_cvtsi32_si128(int(rr));
  const __m128i w1 = _mm_cvtsi32_si128(int(w)), w2 = _mm_cvtsi32_si128(int(2 * w)),
                w4 = _mm_cvtsi32_si128(int(4 * w));
  BitSink bs{out};
  uint64_t i = 0;
  constexpr unsigned vn = 32 / (W / 8);  // values per vector
  for (; i + vn <= n; i += vn) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i * (W / 8)));
    __m256i f;
    if constexpr (W == 8) {
      // 16-bit shifts: the bits a byte takes from its neighbour lie above rr
      // (rr + z <= 7), masked off with the rest
      const __m256i m = _mm256_and_si256(_mm256_srl_epi16(v, zc), _mm256_set1_epi8(char(lowmask)));
      const __m256i sg = _mm256_and_si256(_mm256_srli_epi16(v, 7), _mm256_set1_epi8(char(signbit)));
      f = _mm256_or_si256(m, _mm256_sll_epi16(sg, rc));
      const __m256i lo8 = _mm256_set1_epi16(0xFF);
      f = _mm256_or_si256(_mm256_and_si256(f, lo8), _mm256_sll_epi16(_mm256_srli_epi16(f, 8), w1));
      const __m256i lo16 = _mm256_set1_epi32(0xFFFF);
      f = _mm256_or_si256(_mm256_and_si256(f, lo16), _mm256_sll_epi32(_mm256_srli_epi32(f, 16), w2));
      f = _mm256_or_si256(_mm256_and_si256(f, _mm256_set1_epi64x(0xFFFFFFFF)),
                          _mm256_sll_epi64(_mm256_srli_epi64(f, 32), w4));
    } else if constexpr (W == 16) {
      const __m256i m = _mm256_and_si256(_mm256_srl_epi16(v, zc), _mm256_set1_epi16(short(lowmask)));
      const __m256i sg = _mm256_and_si256(_mm256_srli_epi16(v, 15), _mm256_set1_epi16(short(signbit)));
      f = _mm256_or_si256(m, _mm256_sll_epi16(sg, rc));
      const __m256i lo16 = _mm256_set1_epi32(0xFFFF);
      f = _mm256_or_si256(_mm256_and_si256(f, lo16), _mm256_sll_epi32(_mm256_srli_epi32(f, 16), w1));
      f = _mm256_or_si256(_mm256_and_si256(f, _mm256_set1_epi64x(0xFFFFFFFF)),
                          _mm256_sll_epi64(_mm256_srli_epi64(f, 32), w2));
    } else {
      const __m256i m = _mm256_and_si256(_mm256_srl_epi32(v, zc), _mm256_set1_epi32(int(lowmask)));
      const __m256i sg = _mm256_and_si256(_mm256_srli_epi32(v, 31), _mm256_set1_epi32(int(signbit)));
      f = _mm256_or_si256(m, _mm256_sll_epi32(sg, rc));
      f = _mm256_or_si256(_mm256_and_si256(f, _mm256_set1_epi64x(0xFFFFFFFF)),
                          _mm256_sll_epi64(_mm256_srli_epi64(f, 32), w1));
    }
    alignas(32) uint64_t u[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(u), f);
    for (unsigned j = 0; j < 4; ++j) bs.push(u[j], per * w);
  }
  for (; i < n; ++i) {
    const uint32_t v = load_val<W>(src, i);
    bs.push(((v >> z) & lowmask) | ((v >> (W - 1)) & signbit) << rr, w);
  }
  bs.flush();
}

// Counts keys v >> sh into the four sub-histograms and finds the range of
// v & (2^(W-1) - 1) in the same pass: the keys are shifted 16 or 32 bytes at
// a time and read back from a small buffer, so the scalar loop only counts.
template <unsigned W>
__attribute__((target("avx2,bmi2"))) void count_minmax_t(const uint8_t* src, uint64_t n, uint32_t sh, bool sample,
                                                         uint16_t* const* h, uint32_t* mn, uint32_t* mx,
                                                         uint32_t* any) {
  using T = std::conditional_t<W == 8, uint8_t, std::conditional_t<W == 16, uint16_t, uint32_t>>;
  constexpr unsigned per = 32 / sizeof(T);
  constexpr uint32_t magmask = (uint32_t(1) << (W - 1)) - 1u;
  __m256i vor = _mm256_setzero_si256();
  const __m128i cnt = _mm_cvtsi32_si128(int(sh));
  __m256i vmn, vmx, vmask;
  if constexpr (W == 8) vmn = _mm256_set1_epi8(char(0xFF)), vmask = _mm256_set1_epi8(0x7F);
  else if constexpr (W == 16) vmn = _mm256_set1_epi16(-1), vmask = _mm256_set1_epi16(0x7FFF);
  else vmn = _mm256_set1_epi32(-1), vmask = _mm256_set1_epi32(0x7FFFFFFF);
  vmx = _mm256_setzero_si256();
  const __m256i keymask8 = _mm256_set1_epi8(char(0xFFu >> sh));  // W = 8: bytes shifted as 16-bit lanes
  alignas(32) T keys[per];
  uint64_t i = 0;
  for (; i + per <= n; i += per) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i * sizeof(T)));
    const __m256i m = _mm256_and_si256(v, vmask);
    vor = _mm256_or_si256(vor, v);
    __m256i k;
    if constexpr (W == 8) {
      vmn = _mm256_min_epu8(vmn, m), vmx = _mm256_max_epu8(vmx, m);
      k = _mm256_and_si256(_mm256_srl_epi16(v, cnt), keymask8);
    } else if constexpr (W == 16) {
      vmn = _mm256_min_epu16(vmn, m), vmx = _mm256_max_epu16(vmx, m);
      k = _mm256_srl_epi16(v, cnt);
    } else {
      vmn = _mm256_min_epu32(vmn, m), vmx = _mm256_max_epu32(vmx, m);
      k = _mm256_srl_epi32(v, cnt);
    }
    if (sample && !in_sample(i)) continue;  // per divides 64: whole vectors in or out
    _mm256_store_si256(reinterpret_cast<__m256i*>(keys), k);
    for (unsigned j = 0; j < per; j += 4) {
      ++h[0][keys[j]];
      ++h[1][keys[j + 1]];
      ++h[2][keys[j + 2]];
      ++h[3][keys[j + 3]];
    }
  }
  alignas(32) T lo[per], hi[per], ors[per];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lo), vmn);
  _mm256_store_si256(reinterpret_cast<__m256i*>(hi), vmx);
  _mm256_store_si256(reinterpret_cast<__m256i*>(ors), vor);
  uint32_t a = magmask, b = 0, o = 0;
  for (unsigned j = 0; j < per; ++j) a = std::min<uint32_t>(a, lo[j]), b = std::max<uint32_t>(b, hi[j]), o |= ors[j];
  for (unsigned j = 0; i < n; ++i, ++j) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    if (!sample || in_sample(i)) ++h[j & 3][v >> sh];
    a = std::min<uint32_t>(a, v & magmask), b = std::max<uint32_t>(b, v & magmask), o |= v;
  }
  *mn = a;
  *mx = b;
  *any = o;
}

// All ones in the 32-bit lanes whose key (< 2^16) has its bit set in `bits`.
__attribute__((target("avx2"), always_inline)) inline __m256i keys_present(const uint32_t* bits, __m256i key) {
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i word = _mm256_i32gather_epi32(reinterpret_cast<const int*>(bits), _mm256_srli_epi32(key, 5), 4);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_srlv_epi32(word, _mm256_and_si256(key, _mm256_set1_epi32(31))), one),
                            one);
}

// mark_missing for the elements outside the sample: a vector whose keys all
// lie in one of the two windows (runs of keys already present) is skipped;
// the rare others are looked up one by one.
template <unsigned W>
__attribute__((target("avx2,bmi2"))) void mark_missing_t(const uint8_t* src, uint64_t n, uint32_t sh,
                                                         const uint32_t* w, uint64_t* top) {
  using T = std::conditional_t<W == 8, uint8_t, std::conditional_t<W == 16, uint16_t, uint32_t>>;
  constexpr unsigned per = 32 / sizeof(T);
  const __m128i cnt = _mm_cvtsi32_si128(int(sh));
  __m256i lo0, hi0, lo1, hi1;
  if constexpr (W == 8) {
    lo0 = _mm256_set1_epi8(char(w[0])), hi0 = _mm256_set1_epi8(char(w[1]));
    lo1 = _mm256_set1_epi8(char(w[2])), hi1 = _mm256_set1_epi8(char(w[3]));
  } else if constexpr (W == 16) {
    lo0 = _mm256_set1_epi16(short(w[0])), hi0 = _mm256_set1_epi16(short(w[1]));
    lo1 = _mm256_set1_epi16(short(w[2])), hi1 = _mm256_set1_epi16(short(w[3]));
  } else {
    lo0 = _mm256_set1_epi32(int(w[0])), hi0 = _mm256_set1_epi32(int(w[1]));
    lo1 = _mm256_set1_epi32(int(w[2])), hi1 = _mm256_set1_epi32(int(w[3]));
  }
  const __m256i keymask8 = _mm256_set1_epi8(char(0xFFu >> sh));
  // W = 16: which keys are present, one bit each, built at the first vector
  // the windows do not cover and kept up to date as keys are marked
  thread_local std::vector<uint32_t> bitmap;
  uint32_t* bits = nullptr;
  auto present_bits = [&] {
    if (!bits) {
      const uint32_t nkeys = 1u << (16 - sh);
      bitmap.assign((nkeys + 31) / 32, 0);
      for (uint32_t key = 0; key < nkeys; ++key)
        if (top[key]) bitmap[key >> 5] |= 1u << (key & 31);
      bits = bitmap.data();
    }
    return bits;
  };
  for (uint64_t i = 0; i < n; i += 64) {
    if (in_sample(i)) continue;
    const uint64_t end = std::min(n, i + 64);
    uint64_t j = i;
    for (; j + per <= end; j += per) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j * sizeof(T)));
      __m256i k, in;
      if constexpr (W == 8) {  // a key equals its clamp to [lo, hi] when inside
        k = _mm256_and_si256(_mm256_srl_epi16(v, cnt), keymask8);
        in = _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_min_epu8(_mm256_max_epu8(k, lo0), hi0), k),
                             _mm256_cmpeq_epi8(_mm256_min_epu8(_mm256_max_epu8(k, lo1), hi1), k));
      } else if constexpr (W == 16) {
        k = _mm256_srl_epi16(v, cnt);
        in = _mm256_or_si256(_mm256_cmpeq_epi16(_mm256_min_epu16(_mm256_max_epu16(k, lo0), hi0), k),
                             _mm256_cmpeq_epi16(_mm256_min_epu16(_mm256_max_epu16(k, lo1), hi1), k));
      } else {
        k = _mm256_srl_epi32(v, cnt);
        in = _mm256_or_si256(_mm256_cmpeq_epi32(_mm256_min_epu32(_mm256_max_epu32(k, lo0), hi0), k),
                             _mm256_cmpeq_epi32(_mm256_min_epu32(_mm256_max_epu32(k, lo1), hi1), k));
      }
      // one bit per byte of the lanes outside both windows; lane l's lowest
      // byte is byte l * sizeof(T)
      uint32_t out = ~uint32_t(_mm256_movemask_epi8(in));
      if (!out) continue;
      if constexpr (W == 16) {
        // keys outside the windows may still be present (FP8 pairs: the
        // second value's top bits interleave the keys, so the windows are
        // short): looked up in the bitmap, eight at a time
        const __m256i lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(k));
        const __m256i hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(k, 1));
        const uint32_t* pb = present_bits();
        const __m256i got =
            _mm256_permute4x64_epi64(_mm256_packs_epi32(keys_present(pb, lo), keys_present(pb, hi)), 0xD8);
        out &= ~uint32_t(_mm256_movemask_epi8(got));
        if (!out) continue;
      }
      alignas(32) T keys[per];
      _mm256_store_si256(reinterpret_cast<__m256i*>(keys), k);
      if constexpr (W == 16) out &= 0x55555555u;
      else if constexpr (W == 32) out &= 0x11111111u;
      for (; out; out &= out - 1) {
        const T key = keys[unsigned(__builtin_ctz(out)) / sizeof(T)];
        top[key] += top[key] == 0;
        if constexpr (W == 16) bits[key >> 5] |= 1u << (key & 31);
      }
    }
    for (; j < end; ++j) {
      T v;
      std::memcpy(&v, src + j * sizeof(T), sizeof(T));
      top[v >> sh] += top[v >> sh] == 0;
    }
  }
}

bool cpu_ok() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
}
// pext is microcoded (about 250 cycles where Zen 3 and Intel take 3) before
// Zen 3: there the raw plane is packed without it (pack_plane_vec_t)
bool pext_ok() {
  __builtin_cpu_init();
  return !(__builtin_cpu_is("amd") && (__builtin_cpu_is("znver1") || __builtin_cpu_is("znver2")));
}

#else
bool cpu_ok() { return false; }
bool pext_ok() { return false; }
#endif

std::atomic<int> g_force{-1};

}  // namespace

#if defined(__x86_64__) || defined(__i386__)
template <int NV, bool PART>
EncStepsFn pick_steps(unsigned W, unsigned joint, bool big) {
  if (big) {
    if (W == 8) return joint ? enc_steps<8, 1, true, NV, PART> : enc_steps<8, 0, true, NV, PART>;
    if (W == 16) return joint ? enc_steps<16, 1, true, NV, PART> : enc_steps<16, 0, true, NV, PART>;
    return joint ? enc_steps<32, 1, true, NV, PART> : enc_steps<32, 0, true, NV, PART>;
  }
  if (W == 8) return joint ? enc_steps<8, 1, false, NV, PART> : enc_steps<8, 0, false, NV, PART>;
  if (W == 16) return joint ? enc_steps<16, 1, false, NV, PART> : enc_steps<16, 0, false, NV, PART>;
  return joint ? enc_steps<32, 1, false, NV, PART> : enc_steps<32, 0, false, NV, PART>;
}
template <int NV>
EncStepsFn pick_steps(unsigned W, unsigned joint, bool big, unsigned lanes) {
  return lanes % 8 ? pick_steps<NV, true>(W, joint, big) : pick_steps<NV, false>(W, joint, big);
}
#endif

EncStepsFn enc_steps_avx2(unsigned W, unsigned joint, bool big, unsigned lanes) {
#if defined(__x86_64__) || defined(__i386__)
  if (lanes < kMinVecLanes || lanes > 32) return nullptr;
  switch ((lanes + 7) / 8) {
    case 1: return pick_steps<1>(W, joint, big, lanes);
    case 2: return pick_steps<2>(W, joint, big, lanes);
    case 3: return pick_steps<3>(W, joint, big, lanes);
    default: return pick_steps<4>(W, joint, big, lanes);
  }
#else
  (void)W, (void)joint, (void)big, (void)lanes;
  return nullptr;
#endif
}

void pack_plane_bmi2(unsigned W, uint32_t pmask, const uint8_t* src, uint64_t n, uint8_t* out) {
#if defined(__x86_64__) || defined(__i386__)
  if (W == 8) pack_plane_t<8>(pmask, src, n, out);
  else if (W == 16) pack_plane_t<16>(pmask, src, n, out);
  else pack_plane_t<32>(pmask, src, n, out);
#else
  (void)W, (void)pmask, (void)src, (void)n, (void)out;
#endif
}

void pack_plane_avx2(unsigned W, uint32_t z, uint32_t rr, bool joint, const uint8_t* src, uint64_t n, uint8_t* out) {
#if defined(__x86_64__) || defined(__i386__)
  if (W == 8) pack_plane_vec_t<8>(z, rr, joint, src, n, out);
  else if (W == 16) pack_plane_vec_t<16>(z, rr, joint, src, n, out);
  else pack_plane_vec_t<32>(z, rr, joint, src, n, out);
#else
  (void)W, (void)z, (void)rr, (void)joint, (void)src, (void)n, (void)out;
#endif
}

void count_minmax_avx2(unsigned W, const uint8_t* src, uint64_t n, uint32_t sh, bool sample, uint16_t* const* h,
                       uint32_t* mn, uint32_t* mx, uint32_t* any) {
#if defined(__x86_64__) || defined(__i386__)
  if (W == 8) count_minmax_t<8>(src, n, sh, sample, h, mn, mx, any);
  else if (W == 16) count_minmax_t<16>(src, n, sh, sample, h, mn, mx, any);
  else count_minmax_t<32>(src, n, sh, sample, h, mn, mx, any);
#else
  (void)W, (void)src, (void)n, (void)sh, (void)sample, (void)h, (void)mn, (void)mx, (void)any;
#endif
}

void mark_missing_avx2(unsigned W, const uint8_t* src, uint64_t n, uint32_t sh, const uint32_t* windows,
                       uint64_t* top) {
#if defined(__x86_64__) || defined(__i386__)
  if (W == 8) mark_missing_t<8>(src, n, sh, windows, top);
  else if (W == 16) mark_missing_t<16>(src, n, sh, windows, top);
  else mark_missing_t<32>(src, n, sh, windows, top);
#else
  (void)W, (void)src, (void)n, (void)sh, (void)windows, (void)top;
#endif
}

bool fast_encoder() noexcept {
  static const bool ok = cpu_ok();
  const int f = g_force.load(std::memory_order_relaxed);
  return ok && f != 0;
}

bool fast_pext() noexcept {
  static const bool ok = pext_ok();
  return ok && fast_encoder() && g_force.load(std::memory_order_relaxed) != 2;
}

void force_encoder(int which) noexcept { g_force.store(which, std::memory_order_relaxed); }

}  // namespace wc::fans::detail
