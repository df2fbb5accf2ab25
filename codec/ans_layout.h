// float_ans chunk layout and the decode primitives shared by the CPU reference
// decoder (codec/float_ans.cpp) and the CUDA kernel (gpu/float_ans_decode.cu).
// Everything here is integer-only and compiles as host and device code, so
// every decoder produces the same bits. The normative description of the
// format is spec/FLOAT_ANS.md.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define WC_HD __host__ __device__ __forceinline__
#else
#define WC_HD inline
#endif

namespace wc::fans::layout {

// ---- constants -----------------------------------------------------------
inline constexpr uint32_t kModeRaw = 0;    // payload = mode byte + raw bytes
inline constexpr uint32_t kModeRans = 1;   // payload = header + table + streams + raw plane
inline constexpr uint32_t kStateBits = 32;
inline constexpr uint32_t kLowerBound = 1u << 16;  // L: state lives in [L, 2^32)
inline constexpr uint32_t kWordBits = 16;           // renormalisation word
inline constexpr uint32_t kMinProbBits = 10;
inline constexpr uint32_t kMaxProbBits = 14;        // M = 2^prob_bits <= 2^14 (fits L/4)
inline constexpr uint32_t kMaxSymBits = 14;         // symbol alphabet <= 2^14
inline constexpr uint32_t kMaxTableSlots = 1u << kMaxProbBits;
inline constexpr uint32_t kMaxAlphabet = 1u << kMaxSymBits;
inline constexpr uint32_t kMinSubBits = 6;          // sub-stream length 2^b, b in [6, 15]
inline constexpr uint32_t kMaxSubBits = 15;         // so a word count fits in u16
inline constexpr uint32_t kMaxQ = 255;              // quantised log-frequency code
inline constexpr uint32_t kHeaderBytes = 4;         // mode, fields, b/prob_bits, reserved
inline constexpr uint32_t kGroupLanes = 32;         // sub-streams sharing one word stream (one GPU warp)
static_assert(kMaxProbBits <= 16 - 2, "need L / M >= 4");
static_assert((1u << kMaxSubBits) <= 65535, "word count must fit u16");

// Header byte 1: bits 0-3 k (mantissa bits in the symbol), bit 4 joint (sign in
// the symbol), bits 5-6 qshift (log-frequency resolution 2^-qshift), bit 7 zero.
// Header byte 2: bits 0-3 b - kMinSubBits, bits 4-7 prob_bits - kMinProbBits.
// Header byte 3: bits 0-1 egk (Exp-Golomb order of the table deltas), bits
// 2-6 z (low mantissa bits that are zero in every element and not stored;
// codecs float-ans-trim and float-ans-mixed only, else 0), bit 7 zero.
struct Header {
  uint32_t k, joint, qshift, sub_bits, prob_bits, egk;
  uint32_t z = 0;
};
WC_HD uint8_t pack_b1(const Header& h) { return uint8_t(h.k | (h.joint << 4) | (h.qshift << 5)); }
WC_HD uint8_t pack_b2(const Header& h) {
  return uint8_t((h.sub_bits - kMinSubBits) | ((h.prob_bits - kMinProbBits) << 4));
}
WC_HD uint8_t pack_b3(const Header& h) { return uint8_t(h.egk | (h.z << 2)); }

// Element geometry for a dtype: W bits per value, E exponent bits, m mantissa bits.
struct Geometry {
  uint32_t W, E, m;
};
// dtype ids as in format/dtype.h (stable): U8=1, F8_E5M2=3, F8_E4M3=4, U16=7,
// F16=8, BF16=9, F32=12. U8 and U16 are the integer items of lossy parts
// (quantized codes): coded with the F8_E4M3 and F16 geometries, whose symbol
// can cover a whole byte (k = 3, joint) or the top 14 bits.
WC_HD bool geometry_for(uint32_t dtype_id, Geometry* g) {
  switch (dtype_id) {
    case 1: *g = {8, 4, 3}; return true;
    case 7: *g = {16, 5, 10}; return true;
    case 3: *g = {8, 5, 2}; return true;
    case 4: *g = {8, 4, 3}; return true;
    case 8: *g = {16, 5, 10}; return true;
    case 9: *g = {16, 8, 7}; return true;
    case 12: *g = {32, 8, 23}; return true;
    default: return false;
  }
}

// Field split derived from (geometry, k, joint).
struct Split {
  uint32_t W;        // bits per value
  uint32_t S;        // symbol bits
  uint32_t r;        // low mantissa bits below the symbol
  uint32_t z;        // of those, the lowest z are zero in every element (not stored)
  uint32_t rr;       // r - z: mantissa bits stored raw
  uint32_t w;        // raw bits per element (rr, plus 1 when the sign is raw)
  uint32_t joint;
  uint32_t val_shift;  // table value holds output bits >> val_shift (16 for 32-bit types)
};
WC_HD bool make_split(const Geometry& g, uint32_t k, uint32_t joint, Split* s, uint32_t z = 0) {
  if (k > g.m || joint > 1) return false;
  uint32_t S = g.E + k + joint;
  if (S > kMaxSymBits) return false;
  if (z > g.m - k) return false;
  s->W = g.W;
  s->S = S;
  s->r = g.m - k;
  s->z = z;
  s->rr = s->r - z;
  s->w = s->rr + (joint ? 0u : 1u);
  s->joint = joint;
  s->val_shift = g.W > 16 ? g.W - 16 : 0;
  if (s->r < s->val_shift) return false;  // symbol bits must sit in the top 16
  return true;
}
// Symbol of a value and its output bits (the part of the value the symbol carries).
WC_HD uint32_t symbol_of(const Split& s, uint32_t v) {
  uint32_t magmask = (1u << (s.S - s.joint)) - 1u;
  uint32_t mag = (v >> s.r) & magmask;
  if (s.joint) return (mag << 1) | (v >> (s.W - 1));
  return mag;
}
WC_HD uint32_t symbol_value(const Split& s, uint32_t sym) {
  uint32_t v = s.joint ? (((sym >> 1) << s.r) | ((sym & 1u) << (s.W - 1))) : (sym << s.r);
  return v >> s.val_shift;
}
// Raw bits of a value: mantissa bits z..r-1, then (sign-raw mode) the sign at bit rr.
WC_HD uint64_t raw_of(const Split& s, uint32_t v) {
  uint64_t lo = (v >> s.z) & ((1u << s.rr) - 1u);
  if (!s.joint) lo |= uint64_t(v >> (s.W - 1)) << s.rr;
  return lo;
}
// Output bits of raw field `raw` (exactly w bits).
WC_HD uint32_t raw_value(const Split& s, uint64_t raw) {
  uint32_t lo = (uint32_t(raw) & ((1u << s.rr) - 1u)) << s.z;
  uint32_t sg = uint32_t(raw >> s.rr) & 1u;  // zero in joint mode (w == rr)
  return lo | (sg << (s.W - 1));
}

// ---- table normalisation ------------------------------------------------------
// 2^(j/8) in Q15, j = 0..7; qshift selects every 2^(3-qshift)-th entry.
WC_HD uint32_t frac_pow2_q15(uint32_t j8) {
  switch (j8) {
    case 0: return 32768; case 1: return 35734; case 2: return 38968; case 3: return 42495;
    case 4: return 46341; case 5: return 50535; case 6: return 55109; default: return 60097;
  }
}
// Weight of quantised log-frequency q >= 1 (0 means absent): 2^((q-1)/2^qshift), Q15.
WC_HD uint64_t q_weight(uint32_t q, uint32_t qshift) {
  uint32_t t = q - 1u;
  uint32_t e = t >> qshift;
  uint32_t fr = (t & ((1u << qshift) - 1u)) << (3 - qshift);
  if (e > 31) e = 31;
  return uint64_t(frac_pow2_q15(fr)) << e;
}

// floor(a / d) for a < 2^62 without a division in the loop: the quotient
// through inv = 1/d (a double) is within one of the exact one, and the
// remainder corrects it, so the result is exact for every input.
WC_HD uint64_t div_by_recip(uint64_t a, uint64_t d, double inv) {
  uint64_t v = uint64_t(double(a) * inv);
  int64_t r = int64_t(a - v * d);
  while (r < 0) --v, r += int64_t(d);
  while (uint64_t(r) >= d) ++v, r -= int64_t(d);
  return v;
}

// Weight of q from q_weight (the default source of normalize_first_pass).
struct QWeight {
  uint32_t qshift;
  WC_HD uint64_t operator()(uint8_t q) const { return q_weight(q, qshift); }
};

// First pass of the normalisation (spec §5): f_i = max(1, round(weight_i * M / T))
// and, when that falls short of M, the shortfall added to the lowest largest
// f. Returns false when no symbol is present or more symbols are present than
// slots; otherwise `excess` receives sum f - M (0 when already exact), which
// the caller takes back from the largest frequencies, at most half at a time.
// weight(q) gives q_weight(q, qshift) for q >= 1 (the encoder reads a table).
// a = weight * M + T / 2 < 2^61 (weight < 2^47, M <= 2^14).
template <typename F, typename Weight>
WC_HD bool normalize_first_pass_w(const uint8_t* q, uint32_t n, uint32_t prob_bits, F* f, uint64_t* excess,
                                  Weight weight) {
  const uint64_t M = uint64_t(1) << prob_bits;
  uint64_t total = 0;
  uint32_t present = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (q[i]) { total += weight(q[i]); ++present; }
  }
  if (present == 0 || present > M) return false;
  const double inv = 1.0 / double(total);
  const uint64_t half = total / 2;
  uint64_t sum = 0;
  uint32_t imax = 0;
  uint64_t fmax = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t v = 0;
    if (q[i]) {
      v = div_by_recip(weight(q[i]) * M + half, total, inv);
      if (v == 0) v = 1;
      if (v > fmax) { fmax = v; imax = i; }
    }
    f[i] = F(v);
    sum += v;
  }
  if (sum < M) f[imax] = F(f[imax] + (M - sum));
  *excess = sum > M ? sum - M : 0;
  return true;
}
template <typename F>
WC_HD bool normalize_first_pass(const uint8_t* q, uint32_t n, uint32_t qshift, uint32_t prob_bits, F* f,
                                uint64_t* excess) {
  return normalize_first_pass_w(q, n, prob_bits, f, excess, QWeight{qshift});
}

// The spec's excess removal as written: take from the lowest-index largest f,
// at most half of it, until the excess is gone. O(n) per step, so O(n x steps)
// (2^14 x 13k on a hostile table): the reference for tests and the fallback of
// normalize_freqs outside its preconditions. Continues from any state.
// *steps (if given) counts the steps, for tests.
template <typename F>
WC_HD bool remove_excess_scan(F* f, uint32_t n, uint64_t excess, uint64_t* steps = nullptr) {
  while (excess > 0) {
    if (steps) ++*steps;
    uint32_t bi = 0, bf = 0;
    for (uint32_t i = 0; i < n; ++i)
      if (f[i] > bf) { bf = f[i]; bi = i; }
    uint64_t d = bf / 2;
    if (d > excess) d = excess;
    if (d == 0) return false;  // unreachable: present <= M
    f[bi] = F(f[bi] - d);
    excess -= d;
  }
  return true;
}

// Reference normalisation (spec section 5, literally); slow. Tests compare
// normalize_freqs against it.
template <typename F>
WC_HD bool normalize_freqs_ref(const uint8_t* q, uint32_t n, uint32_t qshift, uint32_t prob_bits, F* f,
                               uint64_t* steps = nullptr) {
  uint64_t excess;
  if (!normalize_first_pass(q, n, qshift, prob_bits, f, &excess)) return false;
  return remove_excess_scan(f, n, excess, steps);
}

// Workspace of normalize_freqs, in u16 entries, for M = 2^prob_bits.
WC_HD constexpr uint32_t norm_order_entries(uint32_t prob_bits) { return 2u << prob_bits; }
WC_HD constexpr uint32_t norm_count_entries(uint32_t prob_bits) { return (1u << prob_bits) + 1u; }

// Normalises quantised log-frequencies q[0..n) to frequencies f[0..n) summing
// to exactly 2^prob_bits, every present symbol >= 1. Returns false when no
// symbol is present or more symbols are present than slots. Integer-only and
// deterministic; f (also on failure) and the result equal normalize_freqs_ref's
// for every input, in O(n + M) time with fixed workspace (one GPU thread can
// run it): order[norm_order_entries(prob_bits)], counts[norm_count_entries(prob_bits)].
// Needs n <= kMaxAlphabet and prob_bits <= kMaxProbBits (else the slow loop).
// F is uint32_t or uint16_t (f <= 2^14 fits). The encoder gets the same tables
// from its own heap-based loop (normalize_freqs_enc); tests check they agree.
//
// Why it is exact: the loop always takes the current maximum v (lowest index
// on ties) and leaves it at ceil(v/2) < v, or ends. So values are processed in
// descending order, each value's symbols in ascending index order, and the
// halved symbols come out in that order too. Symbols halved from an even v
// (resp. an odd v) therefore form a list sorted by (value desc, index asc),
// as does the initial list (counting sort): a three-way merge of their heads
// is the loop's order. Symbols at f <= 1 are never listed: the loop would
// have d = 0 there, so running out of listed symbols is its failure.
// Space: c2 (symbols with f >= 2) <= sum f - present = M + excess - present,
// and each step removes >= 1 so the queues get <= excess entries; excess <=
// present (rounding adds <= 1 per symbol), so c2 + queued <= M + present <= 2M.
template <typename F>
WC_HD bool normalize_freqs(const uint8_t* q, uint32_t n, uint32_t qshift, uint32_t prob_bits, F* f,
                           uint16_t* order, uint16_t* counts) {
  uint64_t excess;
  if (!normalize_first_pass(q, n, qshift, prob_bits, f, &excess)) return false;
  if (excess == 0) return true;
  if (n > kMaxAlphabet || prob_bits > kMaxProbBits) return remove_excess_scan(f, n, excess);
  const uint32_t M = 1u << prob_bits, cap = 2u * M;
  // Counting sort of the symbols with f >= 2 into order[0, c2) by (f desc, i
  // asc), over values up to the largest f only (usually well below M).
  uint32_t fmax = 0, c2 = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t v = f[i];
    if (v > fmax) fmax = v;
    c2 += v >= 2;
  }
  if (fmax > M || c2 > M) return remove_excess_scan(f, n, excess);  // unreachable: f <= M, see above
  for (uint32_t v = 2; v <= fmax; ++v) counts[v] = 0;
  for (uint32_t i = 0; i < n; ++i)
    if (f[i] >= 2) ++counts[f[i]];
  for (uint32_t v = fmax, pos = 0; v >= 2; --v) {  // start of each value's run
    const uint32_t c = counts[v];
    counts[v] = uint16_t(pos);
    pos += c;
  }
  for (uint32_t i = 0; i < n; ++i)
    if (f[i] >= 2) order[counts[f[i]]++] = uint16_t(i);
  // Sorted list order[s, c2); queue of halved even values order[eh, et)
  // growing up; of halved odd values order[cap - ot, cap - oh) growing down.
  uint32_t s = 0, eh = c2, et = c2, oh = 0, ot = 0;
  while (excess > 0) {
    uint32_t src = 0, bi = 0, bf = 0;
    if (s < c2) { bi = order[s]; bf = f[bi]; src = 1; }
    if (eh < et) {
      const uint32_t i = order[eh], v = f[i];
      if (v > bf || (v == bf && i < bi)) { bi = i; bf = v; src = 2; }
    }
    if (oh < ot) {
      const uint32_t i = order[cap - 1 - oh], v = f[i];
      if (v > bf || (v == bf && i < bi)) { bi = i; bf = v; src = 3; }
    }
    if (src == 0) return false;  // every f <= 1: the loop's d == 0
    if (src == 1) ++s;
    else if (src == 2) ++eh;
    else ++oh;
    uint64_t d = bf / 2;  // >= 1
    if (d > excess) d = excess;
    const uint32_t nf = bf - uint32_t(d);
    f[bi] = F(nf);
    excess -= d;
    if (excess == 0 || nf < 2) continue;
    if (et >= cap - ot) return remove_excess_scan(f, n, excess);  // unreachable, see above
    if (bf & 1u) order[cap - 1 - ot++] = uint16_t(bi);
    else order[et++] = uint16_t(bi);
  }
  return true;
}

WC_HD uint16_t load16(const uint8_t* p) { return uint16_t(p[0] | (uint32_t(p[1]) << 8)); }
WC_HD uint32_t load32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

// ---- decode tables ----------------------------------------------------------------
// slot entry: bits 0-15 freq (1..M, M itself only for a single-symbol table so
// 2^14 max), bits 16-31 slot - cumfreq. vals: output bits >> val_shift.
WC_HD uint32_t pack_slot(uint32_t freq, uint32_t bias) { return freq | (bias << 16); }

// Fills the slot tables from frequencies of symbols lo..lo+n-1.
template <typename F>
WC_HD void build_slots(const F* f, uint32_t n, uint32_t lo, const Split& s, uint32_t* slot,
                       uint16_t* vals) {
  uint32_t cum = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t fi = f[i];
    uint16_t v = uint16_t(symbol_value(s, lo + i));
    for (uint32_t j = 0; j < fi; ++j) {
      slot[cum + j] = pack_slot(fi, j);
      vals[cum + j] = v;
    }
    cum += fi;
  }
}

// One rANS decode step. Returns the table index (slot); updates x. No
// renormalisation.
WC_HD uint32_t rans_step(uint32_t& x, uint32_t prob_bits, const uint32_t* slot_tab) {
  uint32_t s = x & ((1u << prob_bits) - 1u);
  uint32_t e = slot_tab[s];
  x = (e & 0xFFFFu) * (x >> prob_bits) + (e >> 16);
  return s;
}

// Raw-plane access (byte-wise, bounds-checked: plane has plane_n bytes).
WC_HD uint64_t read_raw_bits(const uint8_t* plane, size_t plane_n, uint64_t bitpos, uint32_t w) {
  if (w == 0) return 0;
  uint64_t byte = bitpos >> 3;
  uint32_t sh = uint32_t(bitpos & 7);
  uint64_t acc = 0;
  uint32_t need = (sh + w + 7) >> 3;  // <= 4 bytes for w <= 24 (w <= 24 always)
  for (uint32_t b = 0; b < need; ++b) {
    uint64_t idx = byte + b;
    uint64_t v = idx < plane_n ? plane[idx] : 0;
    acc |= v << (8 * b);
  }
  return (acc >> sh) & ((uint64_t(1) << w) - 1u);
}

WC_HD void store_value(uint8_t* dst, uint64_t i, uint32_t W, uint32_t v) {
  uint8_t* p = dst + i * (W / 8);
  p[0] = uint8_t(v);
  if (W >= 16) p[1] = uint8_t(v >> 8);
  if (W == 32) { p[2] = uint8_t(v >> 16); p[3] = uint8_t(v >> 24); }
}

// ---- per-lane primitives (the GPU kernel runs these, one lane per thread) ---------
// Decodes element i of a lane with state x (updated, not renormalised) and
// stores it. Returns true iff the lane needs a renormalisation word (x < L).
WC_HD bool lane_decode(const Split& s, uint32_t prob_bits, const uint32_t* slot_tab, const uint16_t* vals,
                       uint32_t& x, uint64_t i, const uint8_t* plane, size_t plane_n, uint8_t* dst) {
  const uint32_t sl = rans_step(x, prob_bits, slot_tab);
  const uint32_t v = (uint32_t(vals[sl]) << s.val_shift) | raw_value(s, read_raw_bits(plane, plane_n, i * s.w, s.w));
  store_value(dst, i, s.W, v);
  return x < kLowerBound;
}
// Renormalises with word number idx of the group's word stream (nwords words,
// little-endian u16 at byte pointer words); a missing word clears ok.
WC_HD void lane_refill(uint32_t& x, const uint8_t* words, uint32_t nwords, uint64_t idx, bool& ok) {
  uint32_t wd = 0;
  if (idx < nwords) wd = uint32_t(words[2 * idx]) | (uint32_t(words[2 * idx + 1]) << 8);
  else ok = false;
  x = (x << 16) | wd;
}

// Decodes group g: lanes j0 .. j0 + lanes - 1 (lanes <= kGroupLanes) of nsub,
// n elements in the chunk, initial states at `states` (u32 each), words
// words[0..nwords). Step t decodes element t*nsub + j of every lane j with
// more than t symbols, lanes in increasing order; a lane that needs a word
// takes the next one of the group's stream (so the lanes that need one in a
// step take consecutive words, in lane order: a warp ballot + popc prefix on
// the GPU, a movemask-indexed permutation on the CPU). Returns true iff every
// initial state is >= L, every final state == L and exactly nwords words were
// consumed. Checked on every access: safe for any input. This is the
// reference for every decoder.
WC_HD bool decode_group(const Split& s, uint32_t prob_bits, const uint32_t* slot_tab, const uint16_t* vals,
                        const uint8_t* states, uint32_t lanes, uint64_t j0, const uint8_t* words, uint32_t nwords,
                        uint64_t nsub, uint64_t n, const uint8_t* plane, size_t plane_n, uint8_t* dst) {
  uint32_t x[kGroupLanes];
  bool ok = lanes >= 1 && lanes <= kGroupLanes;
  if (!ok) return false;
  for (uint32_t l = 0; l < lanes; ++l) {
    x[l] = load32(states + 4 * l);
    ok &= x[l] >= kLowerBound;
  }
  uint64_t used = 0;
  for (uint64_t i0 = j0; i0 < n; i0 += nsub) {  // step t: elements t*nsub + j0 + l
    for (uint32_t l = 0; l < lanes && i0 + l < n; ++l) {
      if (lane_decode(s, prob_bits, slot_tab, vals, x[l], i0 + l, plane, plane_n, dst))
        lane_refill(x[l], words, nwords, used++, ok);
    }
  }
  for (uint32_t l = 0; l < lanes; ++l) ok &= x[l] == kLowerBound;
  return ok && used == nwords;
}

// ---- table bitstream ----------------------------------------------------------------
// LSB-first bit reader over [p, p+n); reading past the end yields zeros and sets bad.
struct BitReader {
  const uint8_t* p;
  size_t n;
  uint64_t pos;  // bit position
  bool bad;
  WC_HD uint32_t bit() {
    uint64_t byte = pos >> 3;
    uint32_t v = 0;
    if (byte < n) v = (p[byte] >> (pos & 7)) & 1u;
    else bad = true;
    ++pos;
    return v;
  }
  WC_HD uint32_t bits(uint32_t k) {
    uint32_t v = 0;
    for (uint32_t i = 0; i < k; ++i) v |= bit() << i;
    return v;
  }
  // Exp-Golomb of order k: unary prefix of z zeros then a 1, then z + k bits.
  WC_HD uint32_t eg(uint32_t k) {
    uint32_t z = 0;
    while (bit() == 0) {
      if (++z > 24 || bad) { bad = true; return 0; }
    }
    uint32_t v = (1u << (z + k)) - (1u << k);
    return v + bits(z + k);
  }
};
WC_HD uint32_t zigzag_dec(uint32_t u) { return (u >> 1) ^ (0u - (u & 1u)); }

// Parses the table section: lo (S bits), count-1 (S bits), then count values of
// q each coded as EG(egk) of zigzag(q_i - q_{i-1}) with q_{-1} = 0. Every q must
// be in [0, 255]. Returns false on malformed input.
WC_HD bool parse_table(BitReader& br, uint32_t S, uint32_t egk, uint32_t* lo, uint32_t* count,
                       uint8_t* q) {
  *lo = br.bits(S);
  *count = br.bits(S) + 1;
  if (uint64_t(*lo) + *count > (uint64_t(1) << S)) return false;
  int32_t prev = 0;
  for (uint32_t i = 0; i < *count; ++i) {
    uint32_t u = br.eg(egk);
    if (br.bad) return false;
    int32_t cur = prev + int32_t(zigzag_dec(u));
    if (cur < 0 || cur > int32_t(kMaxQ)) return false;
    q[i] = uint8_t(cur);
    prev = cur;
  }
  return !br.bad;
}


// ---- whole-chunk structure ---------------------------------------------------------
struct ChunkLayout {
  uint32_t mode;
  Header h;
  Split s;
  uint64_t n;      // elements
  uint64_t nsub;   // sub-streams (lanes)
  uint64_t ngroups;  // groups of kGroupLanes lanes sharing a word stream
  uint32_t lo, count;  // symbol range of the table
  size_t table_off, table_n;  // table bytes (after the 4-byte header)
  size_t states_off;          // nsub x u32 initial states
  size_t counts_off;          // (ngroups - 1) x u32 word counts
  size_t streams_off, streams_n;
  size_t plane_off, plane_n;
};


// Parses and validates everything except the word-count sum (see
// check_counts) and the table normalisation. q must hold kMaxAlphabet bytes.
// `trim`: the chunk is codec float-ans-trim's, whose header may give z > 0.
// TableParser: how the table section is read (a CPU decoder passes one with
// the same results, reading many bits at a time).
struct TableParser {
  WC_HD bool operator()(BitReader& br, uint32_t S, uint32_t egk, uint32_t* lo, uint32_t* count, uint8_t* q) const {
    return parse_table(br, S, egk, lo, count, q);
  }
};
template <class TP = TableParser>
WC_HD bool parse_chunk(uint32_t dtype_id, const uint8_t* src, size_t src_n, size_t dst_n,
                       ChunkLayout* L, uint8_t* q, bool trim = false, TP table_parser = TP()) {
  Geometry g;
  if (!geometry_for(dtype_id, &g)) return false;
  const uint32_t esize = g.W / 8;
  if (dst_n % esize != 0 || src_n < 1) return false;
  L->n = dst_n / esize;
  L->mode = src[0];
  if (L->mode == kModeRaw) return src_n - 1 == dst_n;
  if (L->mode != kModeRans || src_n < kHeaderBytes || L->n == 0) return false;
  const uint32_t b1 = src[1], b2 = src[2], b3 = src[3];
  if ((b1 & 0x80u) || (b3 & (trim ? 0x80u : ~3u))) return false;
  Header& h = L->h;
  h.k = b1 & 15u;
  h.joint = (b1 >> 4) & 1u;
  h.qshift = (b1 >> 5) & 3u;
  h.sub_bits = (b2 & 15u) + kMinSubBits;
  h.prob_bits = (b2 >> 4) + kMinProbBits;
  h.egk = b3 & 3u;
  h.z = (b3 >> 2) & 31u;
  if (h.sub_bits > kMaxSubBits || h.prob_bits > kMaxProbBits) return false;
  if (!make_split(g, h.k, h.joint, &L->s, h.z)) return false;
  BitReader br{src + kHeaderBytes, src_n - kHeaderBytes, 0, false};
  if (!table_parser(br, L->s.S, h.egk, &L->lo, &L->count, q)) return false;
  L->table_off = kHeaderBytes;
  L->table_n = size_t((br.pos + 7) >> 3);
  if (br.pos & 7) {  // padding bits must be zero
    if (src[kHeaderBytes + (br.pos >> 3)] >> (br.pos & 7)) return false;
  }
  L->nsub = ((L->n - 1) >> h.sub_bits) + 1;
  L->ngroups = (L->nsub + kGroupLanes - 1) / kGroupLanes;
  size_t rest = src_n - kHeaderBytes - L->table_n;
  if (L->nsub > rest / 4) return false;  // cannot hold the states
  L->states_off = kHeaderBytes + L->table_n;
  L->counts_off = L->states_off + 4 * size_t(L->nsub);
  L->streams_off = L->counts_off + 4 * size_t(L->ngroups - 1);
  if (L->streams_off > src_n) return false;
  // plane bytes = ceil(n * w / 8), overflow-safe (w <= 24)
  const uint64_t n = L->n, w = L->s.w;
  const uint64_t plane_bits_hi = (n >> 3) * w, plane_rem = (n & 7) * w;
  uint64_t plane_n = plane_bits_hi + (plane_rem + 7) / 8;
  if (plane_n > src_n - L->streams_off) return false;
  L->plane_n = size_t(plane_n);
  L->plane_off = src_n - L->plane_n;
  L->streams_n = L->plane_off - L->streams_off;
  if (L->streams_n & 1) return false;
  return true;
}

// Length (symbols) of sub-stream j.
WC_HD uint64_t substream_len(const ChunkLayout& L, uint64_t j) {
  return L.n / L.nsub + (j < L.n % L.nsub ? 1u : 0u);
}
// Lanes of group g and their total symbol count.
WC_HD uint32_t group_lanes(const ChunkLayout& L, uint64_t g) {
  const uint64_t j0 = g * kGroupLanes;
  return uint32_t(L.nsub - j0 < kGroupLanes ? L.nsub - j0 : kGroupLanes);
}
WC_HD uint64_t group_symbols(const ChunkLayout& L, uint64_t g) {
  const uint64_t j0 = g * kGroupLanes, lanes = group_lanes(L, g), extra = L.n % L.nsub;
  uint64_t ex = extra > j0 ? extra - j0 : 0;
  if (ex > lanes) ex = lanes;
  return lanes * (L.n / L.nsub) + ex;
}
// Word count of group g (the last one is what remains); valid after check_counts.
WC_HD uint32_t word_count(const uint8_t* src, const ChunkLayout& L, uint64_t g, uint64_t sum_before) {
  if (g + 1 < L.ngroups) return load32(src + L.counts_off + 4 * g);
  return uint32_t(L.streams_n / 2 - sum_before);
}
// Checks that every explicit word count is at most its group's symbol count,
// that they fit the stream section, and that the implied last count is no
// larger than the last group's symbol count.
WC_HD bool check_counts(const uint8_t* src, const ChunkLayout& L) {
  uint64_t sum = 0;
  for (uint64_t g = 0; g + 1 < L.ngroups; ++g) {
    const uint32_t c = load32(src + L.counts_off + 4 * g);
    if (c > group_symbols(L, g)) return false;
    sum += c;
  }
  if (sum > L.streams_n / 2) return false;
  return L.streams_n / 2 - sum <= group_symbols(L, L.ngroups - 1);
}

}  // namespace wc::fans::layout
