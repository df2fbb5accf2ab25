#include "quant/exact_top.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "format/bytes.h"
#include "quant/float_load.h"
#include "quant/refine_math.h"
#include "platform/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace wc::exact {

namespace {

uint32_t load_bits(const uint8_t* p, uint64_t i, unsigned wb) {
  return wb == 4 ? load_u32(p + 4 * i) : load_u16(p + 2 * i);
}
void store_bits(uint8_t* p, uint64_t i, unsigned wb, uint32_t v) {
  if (wb == 4) store_u32(p + 4 * i, v);
  else store_u16(p + 2 * i, uint16_t(v));
}

// uvar (§4): LEB128 of at most 4 bytes.
bool read_uvar(const uint8_t*& p, const uint8_t* end, uint32_t& v) {
  v = 0;
  for (unsigned i = 0; i < 4; ++i) {
    if (p == end) return false;
    const uint8_t b = *p++;
    v |= uint32_t(b & 0x7F) << (7 * i);
    if (!(b & 0x80)) return true;
  }
  return false;
}
void put_uvar(std::vector<uint8_t>& o, uint32_t v) {
  while (v >= 0x80) o.push_back(uint8_t(v | 0x80)), v >>= 7;
  o.push_back(uint8_t(v));
}

struct Elem {
  unsigned ctx;
  Split s;
};

// The step exponent of a row (QROW.md §2).
int32_t row_exp(int32_t base_exp, uint8_t e) { return base_exp + int32_t(e >> 4); }

// The residual of element i (§2: on patterns with the low z bits cut).
uint32_t residual_of(uint32_t dt, Geom g, const uint8_t* orig, const uint8_t* recon, uint64_t i) {
  const unsigned wb = width(dt) / 8;
  return residual(load_bits(recon, i, wb) >> g.z, load_bits(orig, i, wb) >> g.z, 1u << (g.w - 1), low_mask(g.w));
}

// The clamped context of element i of a tile whose bits below are `recon`,
// in a row whose context exponent (its step's, less the shift) is E.
unsigned context_of(uint32_t dt, unsigned C, const uint8_t* recon, int32_t E, uint64_t i) {
  const uint32_t y = load_bits(recon, i, width(dt) / 8);
  return std::min(raw_context(y, dt, E), C - 1);
}

// Symbol, raw bits and clamped context of element i of a tile (in a row of
// context exponent E): the exact top layer's residual, or a refinement
// level's code d[i].
Elem element(uint32_t dt, Geom g, unsigned C, const uint8_t* orig, const uint8_t* recon, int32_t E, uint64_t i) {
  Elem el;
  el.ctx = context_of(dt, C, recon, E, i);
  el.s = split(residual_of(dt, g, orig, recon, i), el.ctx, g);
  return el;
}
Elem code_element(uint32_t dt, unsigned C, const uint8_t* below, int32_t E, uint64_t i, const uint16_t* d) {
  Elem el;
  el.ctx = context_of(dt, C, below, E, i);
  el.s = split(d[i], refine::kSymbolClass, refine::code_geom());
  return el;
}

// f(i, E) for every element i of a tile, row by row (E: the row's context
// exponent, its step's less `shift`).
template <class F>
void for_elements(int32_t base_exp, const uint8_t* e, unsigned shift, uint64_t rows, uint64_t cols, F&& f) {
  for (uint64_t r = 0, i = 0; r < rows; ++r) {
    const int32_t E = row_exp(base_exp, e[r]) - int32_t(shift);
    for (uint64_t j = 0; j < cols; ++j, ++i) f(i, E);
  }
}

// The symbols of context c: the exact top layer's own (context 0 differs
// from the rest, EXACT_TOP.md §3), a refinement level's those of contexts
// >= 1 on 16-bit codes (REFINE.md §2).
unsigned symbol_class(const Tables& tb, unsigned c) { return tb.M ? refine::kSymbolClass : c; }
Geom symbol_geom(const Tables& tb, uint32_t dt) { return tb.M ? refine::code_geom() : geom(dt, tb.Z); }

}  // namespace

namespace {

// The per-context lists (§4) from p to end, for tables whose header is read.
bool parse_contexts(const uint8_t* p, const uint8_t* end, uint32_t dt, Tables& tb) {
  const Geom g = symbol_geom(tb, dt);
  for (unsigned c = 0; c < tb.C; ++c) {
    Context& x = tb.ctx[c];
    x.sym.clear(), x.freq.clear(), x.cum.assign(1, 0), x.dec.clear();
    const unsigned cls = symbol_class(tb, c);
    const uint32_t a = alphabet(cls, g);
    uint32_t cnt;
    if (!read_uvar(p, end, cnt) || cnt > a) return false;
    uint64_t next = 0, total = 0;  // the least symbol the next may be
    for (uint32_t j = 0; j < cnt; ++j) {
      uint32_t gap, fm1;
      if (!read_uvar(p, end, gap) || !read_uvar(p, end, fm1)) return false;
      const uint64_t s = next + gap;
      if (s >= a || fm1 >= (1u << tb.P)) return false;
      total += uint64_t(fm1) + 1;
      if (total > (1u << tb.P)) return false;
      x.sym.push_back(uint32_t(s)), x.freq.push_back(fm1 + 1), x.cum.push_back(uint32_t(total));
      const unsigned nr = raw_bits(uint32_t(s), cls, g);
      // join() with no raw bits and no sign gives the magnitude's upper bits
      const uint32_t base = join(uint32_t(s) & ~1u, 0, cls, g);
      x.dec.push_back({base, uint16_t(fm1 + 1), uint16_t(total - fm1 - 1), uint8_t(nr), uint8_t(s & 1)});
      next = s + 1;
    }
    if (cnt && total != (1u << tb.P)) return false;
  }
  return p == end;
}

}  // namespace

bool parse_tables(const uint8_t* p, size_t n, uint32_t dt, Tables& tb) {
  if (n < 4) return false;
  tb.C = p[0], tb.P = p[1], tb.Z = p[2], tb.S = p[3], tb.M = 0;
  if (tb.C < 1 || tb.C > kMaxContexts || tb.P < 8 || tb.P > 15 || tb.Z > mant_bits(dt) - 2 ||
      tb.S > refine::kMaxShift)
    return false;
  return parse_contexts(p + 4, p + n, dt, tb);
}

bool parse_refine_tables(const uint8_t* p, size_t n, Tables& tb) {
  if (n < 8) return false;
  tb.C = p[0], tb.P = p[1], tb.Z = 0, tb.S = p[3], tb.M = load_u32(p + 4);
  if (tb.C < 1 || tb.C > kMaxContexts || tb.P < 8 || tb.P > 15 || p[2] || tb.S > refine::kMaxShift || tb.M < 2 ||
      tb.M > refine::kMaxDivisor)
    return false;
  return parse_contexts(p + 8, p + n, qrow::kBF16, tb);
}

namespace {

// A refinement level applied to a row in place (REFINE.md §2): each
// element's bits below as binary32 (load_floats: refine::f32_bits_of's),
// its code d with the row's code step s, the row written back at once
// (store_floats: qrow::store's bits). False, the row left as it was, when a
// value is not finite (then the tile is invalid).
bool refine_row(uint32_t dt, uint8_t* row, const uint16_t* d, uint64_t cols, float s) {
  const DType t = static_cast<DType>(dt);  // qrow's dtype ids are the container's
  thread_local std::vector<float> fv;
  fv.resize(size_t(cols));
  float* __restrict const v = fv.data();
  load_floats(t, row, size_t(cols), v);
  // (branch-free, so that it vectorises: each lane the same IEEE operations)
  uint32_t bad = 0;  // an Inf or a NaN among them
  for (uint64_t j = 0; j < cols; ++j) {
    const float f = v[j];
    v[j] = refine::apply(f, refine::signed_code(d[j], (qrow::f32_bits(f) >> 31) != 0), s);
    bad |= uint32_t(!refine::finite(v[j]));
  }
  if (!bad) store_floats(t, v, size_t(cols), row);
  return !bad;
}

// Mode 1's element loop (§5) for a dtype of W bits and `mant` mantissa bits:
// row by row (one step exponent each), a slot-to-symbol table per context
// built when the tile first meets it, the raw bits from a 64-bit window.
// kRefine: the symbols are a refinement level's codes (REFINE.md).
template <unsigned W, unsigned kMant, bool kRefine>
Errc decode_elements(const Tables& tb, int32_t base_exp, uint64_t rows, uint64_t cols, const uint8_t* e, uint32_t* x,
                     const uint8_t* words, const uint8_t* wend, const uint8_t* rb, const uint8_t* rend, uint8_t* dst) {
  constexpr unsigned wb = W / 8;
  constexpr uint32_t dt = W == 32 ? qrow::kF32 : kMant == 10 ? qrow::kF16 : qrow::kBF16;
  const unsigned z = tb.Z;  // the residuals' patterns: the dtype's with z low bits cut
  const uint32_t h = 1u << (W - 1 - z), mask = low_mask(W - z);
  const uint32_t pmask = (1u << tb.P) - 1;
  // Per context, slot -> the index of the symbol whose range holds it: built
  // for a context when the tile first meets it (a tile of 2^18 elements uses
  // about half of its contexts), in a per-thread buffer.
  thread_local std::vector<uint16_t> lut;
  lut.resize(size_t(tb.C) << tb.P);
  uint16_t* const lutp = lut.data();
  bool built[kMaxContexts] = {};
  // Two passes a row, so that the raw-bit reader's serial chain does not wait
  // on each symbol's table loads: the row's symbols first (four rANS states
  // in flight), each element's entry kept (a row's worth: in L1); then its
  // raw bits.
  thread_local std::vector<uint64_t> ent;  // per element: magnitude bits, raw bit count, sign
  ent.resize(cols);
  thread_local std::vector<uint16_t> codes;  // kRefine: the row's codes, applied at its end
  if (kRefine) codes.resize(cols);
  uint64_t* const entp = ent.data();
  bool overrun = false, bad = false;
  uint64_t acc = 0;
  unsigned have = 0;
  uint64_t i = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    const int32_t E = row_exp(base_exp, e[r]) - int32_t(tb.S);
    const float step = kRefine ? refine::code_step(base_exp, e[r], tb.M) : 0.0f;
    uint8_t* const row = dst + wb * i;
    // element i takes state x[i & 3]: the row's four lanes held in locals
    // s0..s3 (s0 the lane of its first element), so that each state's chain
    // runs in registers and the four interleave
    const unsigned ph = unsigned(i & 3);
    uint32_t s0 = x[ph], s1 = x[(ph + 1) & 3], s2 = x[(ph + 2) & 3], s3 = x[(ph + 3) & 3];
    auto symbol = [&](uint32_t& s, uint64_t j) __attribute__((always_inline)) {
      const uint8_t* p = row + wb * j;
      const uint32_t y = wb == 4 ? load_u32(p) : load_u16(p);
      const unsigned c = std::min(raw_context(y, dt, E), tb.C - 1);
      const Context& t = tb.ctx[c];
      uint16_t* l = lutp + (size_t(c) << tb.P);
      if (!built[c]) [[unlikely]] {
        if (t.sym.empty()) return false;
        for (size_t k = 0; k < t.sym.size(); ++k) std::fill(l + t.cum[k], l + t.cum[k + 1], uint16_t(k));
        built[c] = true;
      }
      const uint32_t slot = s & pmask;
      const Context::Entry* en = t.dec.data() + l[slot];
      entp[j] = uint64_t(en->base) | uint64_t(en->nraw) << 32 | uint64_t(en->sign) << 40;
      s = uint32_t(en->freq) * (s >> tb.P) + slot - en->cum;
      // renormalise without a branch (whether a word is due depends on the
      // data); a word due past the stream's end marks the tile invalid
      const bool need = s < kStateLow, have_word = words != wend;
      const uint32_t word = have_word ? load_u16(words) : 0u;
      overrun |= need && !have_word;
      s = need ? (s << 16) | word : s;
      words += (need && have_word) ? 2 : 0;
      return true;
    };
    uint64_t q = 0;
    bool ok = true;
    for (; q + 4 <= cols; q += 4) ok &= symbol(s0, q) && symbol(s1, q + 1) && symbol(s2, q + 2) && symbol(s3, q + 3);
    if (q < cols) ok &= symbol(s0, q);
    if (q + 1 < cols) ok &= symbol(s1, q + 1);
    if (q + 2 < cols) ok &= symbol(s2, q + 2);
    if (!ok) return Errc::codec;
    x[ph] = s0, x[(ph + 1) & 3] = s1, x[(ph + 2) & 3] = s2, x[(ph + 3) & 3] = s3;
    i += cols;
    for (uint64_t j = 0; j < cols; ++j) {
      const uint64_t en = entp[j];
      const unsigned nr = unsigned(en >> 32) & 63;  // 0 to 28
      if (rend - rb >= 8) {  // refill whole bytes from one 8-byte load: at least 56 bits held
        acc |= load_u64(rb) << have;
        rb += (63 - have) >> 3;
        have |= 56;
      } else {
        while (have < nr) {
          if (rb == rend) return Errc::codec;
          acc |= uint64_t(*rb++) << have;
          have += 8;
        }
      }
      const uint32_t m = uint32_t(en) | uint32_t(acc & ((uint64_t(1) << nr) - 1));
      acc >>= nr, have -= nr;
      if constexpr (kRefine) {
        codes[j] = uint16_t((en >> 40) ? (0u - (m + 1u)) & 0xFFFFu : m);
      } else {
        uint8_t* p = row + wb * j;
        const uint32_t y = wb == 4 ? load_u32(p) : load_u16(p);
        const uint32_t d = (en >> 40) ? (0u - (m + 1u)) & mask : m;
        const uint32_t w = restore(y >> z, d, h, mask) << z;
        if (wb == 4) store_u32(p, w);
        else store_u16(p, uint16_t(w));
      }
    }
    if constexpr (kRefine) bad |= !refine_row(dt, row, codes.data(), cols, step);
  }
  if (overrun || bad || words != wend) return Errc::codec;
  for (unsigned j = 0; j < 4; ++j)
    if (x[j] != kStateLow) return Errc::codec;
  if (rb != rend || acc != 0 || have >= 8) return Errc::codec;
  return Errc::ok;
}

Errc decode_coded(const Tables& tb, uint32_t dt, int32_t base_exp, uint64_t rows, uint64_t cols, const uint8_t* e,
                  uint32_t* x, const uint8_t* words, const uint8_t* wend, const uint8_t* rb, const uint8_t* rend,
                  uint8_t* dst) {
  if (tb.M) {
    if (dt == qrow::kF32)
      return decode_elements<32, 23, true>(tb, base_exp, rows, cols, e, x, words, wend, rb, rend, dst);
    if (dt == qrow::kF16)
      return decode_elements<16, 10, true>(tb, base_exp, rows, cols, e, x, words, wend, rb, rend, dst);
    return decode_elements<16, 7, true>(tb, base_exp, rows, cols, e, x, words, wend, rb, rend, dst);
  }
  if (dt == qrow::kF32) return decode_elements<32, 23, false>(tb, base_exp, rows, cols, e, x, words, wend, rb, rend, dst);
  if (dt == qrow::kF16) return decode_elements<16, 10, false>(tb, base_exp, rows, cols, e, x, words, wend, rb, rend, dst);
  return decode_elements<16, 7, false>(tb, base_exp, rows, cols, e, x, words, wend, rb, rend, dst);
}

// Mode 0 of a refinement level: the codes as they are, U16 items.
template <uint32_t dt>
Errc apply_codes(const Tables& tb, const uint8_t* d, int32_t base_exp, const uint8_t* e, uint64_t rows, uint64_t cols,
                 uint8_t* dst) {
  constexpr unsigned wb = width(dt) / 8;
  bool bad = false;
  thread_local std::vector<uint16_t> codes;
  codes.resize(cols);
  for (uint64_t r = 0, i = 0; r < rows; ++r, i += cols) {
    for (uint64_t j = 0; j < cols; ++j) codes[j] = load_u16(d + 2 * (i + j));
    bad |= !refine_row(dt, dst + wb * i, codes.data(), cols, refine::code_step(base_exp, e[r], tb.M));
  }
  return bad ? Errc::codec : Errc::ok;
}

}  // namespace

Errc apply_tile(const Tables& tb, const uint8_t* pl, size_t n, uint32_t dt, int32_t base_exp, uint64_t rows,
                uint64_t cols, uint8_t* dst) {
  Tables unused;
  return apply_tile(tb, TileContext{}, unused, pl, n, dt, base_exp, rows, cols, dst);
}

Errc apply_tile(const Tables& tb, const TileContext& cx, Tables& scratch, const uint8_t* pl, size_t n, uint32_t dt,
                int32_t base_exp, uint64_t rows, uint64_t cols, uint8_t* dst) {
  const unsigned wb = width(dt) / 8;
  const uint32_t h = 1u << (width(dt) - 1), mask = wb == 4 ? 0xFFFFFFFFu : 0xFFFFu;
  const uint64_t count = rows * cols;
  if (n < 1) return Errc::codec;
  // mode 0 reads the tables' M or Z: a level whose tables ride in its payload has mode-1 tiles only
  if (pl[0] == 0 && cx.tables_in_payload) return Errc::codec;
  if (pl[0] == 0 && tb.M) {  // a refinement level's codes as they are, after the rows' step bytes
    if (n != 1 + rows + count * 2) return Errc::codec;
    const uint8_t* e = pl + 1;
    if (dt == qrow::kF32) return apply_codes<qrow::kF32>(tb, e + rows, base_exp, e, rows, cols, dst);
    if (dt == qrow::kF16) return apply_codes<qrow::kF16>(tb, e + rows, base_exp, e, rows, cols, dst);
    return apply_codes<qrow::kBF16>(tb, e + rows, base_exp, e, rows, cols, dst);
  }
  if (pl[0] == 0) {  // the residuals as they are: (W - Z)-bit patterns in W-bit items
    if (n != 1 + count * wb) return Errc::codec;
    const unsigned z = tb.Z;
    const uint32_t hz = h >> z, mz = mask >> z;
    for (uint64_t i = 0; i < count; ++i) {
      const uint32_t d = load_bits(pl + 1, i, wb);
      if (d > mz) return Errc::codec;
      store_bits(dst, i, wb, restore(load_bits(dst, i, wb) >> z, d, hz, mz) << z);
    }
    return Errc::ok;
  }
  if (pl[0] != 1 || n < 8 || load_u16(pl + 2)) return Errc::codec;
  // flags (2.8): 1, the step bytes are part 0's (in the record); 2, the tables precede them
  const uint8_t flags = pl[1];
  if ((flags & ~3u) || ((flags & 1) && !cx.steps) || bool(flags & 2) != cx.tables_in_payload) return Errc::codec;
  const uint64_t ans = load_u32(pl + 4);
  const uint8_t* p = pl + 8;
  const uint8_t* const end = pl + n;
  const Tables* use = &tb;
  if (flags & 2) {
    if (end - p < 2 || uint64_t(end - p - 2) < load_u16(p)) return Errc::codec;
    const size_t tn = load_u16(p);
    if (!(cx.refine ? parse_refine_tables(p + 2, tn, scratch) : parse_tables(p + 2, tn, dt, scratch)))
      return Errc::codec;
    use = &scratch;
    p += 2 + tn;
  }
  const uint8_t* e = cx.steps;  // the rows' step bytes
  if (!(flags & 1)) {
    if (uint64_t(end - p) < rows) return Errc::codec;
    e = p, p += rows;
  }
  const uint8_t* st = p;
  if (ans < 16 || ans % 2 || ans > uint64_t(end - st)) return Errc::codec;
  const uint8_t* words = st + 16;
  const uint8_t* wend = st + ans;
  uint32_t x[4];
  for (unsigned j = 0; j < 4; ++j) {
    x[j] = load_u32(st + 4 * j);
    if (x[j] < kStateLow) return Errc::codec;
  }
  return decode_coded(*use, dt, base_exp, rows, cols, e, x, words, wend, wend, pl + n, dst);
}

void Counts::add(const Counts& o) {
  for (unsigned x = 0; x < kRawContexts; ++x) {
    if (o.c[x].size() > c[x].size()) c[x].resize(o.c[x].size(), 0);
    for (size_t s = 0; s < o.c[x].size(); ++s) c[x][s] += o.c[x][s];
  }
}

unsigned trim_bits(uint32_t dt, const uint8_t* orig, uint64_t n) {
  const unsigned wb = width(dt) / 8;
  const uint32_t mag = (1u << (width(dt) - 1)) - 1u;
  uint32_t any = 0;  // the magnitude bits set in some element
  for (uint64_t i = 0; i < n; ++i) any |= load_bits(orig, i, wb) & mag;
  unsigned z = 0;
  while (z < mant_bits(dt) - 2 && !(any & (1u << z))) ++z;
  return z;
}

void count_tile(Counts& k, uint32_t dt, unsigned z, unsigned shift, const uint8_t* orig, const uint8_t* recon,
                int32_t base_exp, const uint8_t* e, uint64_t rows, uint64_t cols) {
  const Geom g = geom(dt, z);
  for (unsigned c = 0; c < kRawContexts; ++c) k.c[c].resize(alphabet(c, g), 0);
  for_elements(base_exp, e, shift, rows, cols, [&](uint64_t i, int32_t E) {
    const Elem el = element(dt, g, kRawContexts + 1, orig, recon, E, i);
    ++k.c[el.ctx][el.s.sym];
  });
}

void count_codes(Counts& k, uint32_t dt, unsigned shift, const uint8_t* below, int32_t base_exp, const uint8_t* e,
                 uint64_t rows, uint64_t cols, const uint16_t* d) {
  const uint32_t a = alphabet(refine::kSymbolClass, refine::code_geom());
  for (unsigned c = 0; c < kRawContexts; ++c) k.c[c].resize(a, 0);
  for_elements(base_exp, e, shift, rows, cols, [&](uint64_t i, int32_t E) {
    const Elem el = code_element(dt, kRawContexts + 1, below, E, i, d);
    ++k.c[el.ctx][el.s.sym];
  });
}

namespace {

// std::llround of a finite q with |q| <= 32767 (half away from zero), without
// the library call: the truncation and the fraction q - t are exact.
inline int32_t round_half_away(double q) {
  const int32_t t = int32_t(q);
  const double fr = q - double(t);
  return t + int32_t(fr >= 0.5) - int32_t(fr <= -0.5);
}

#if defined(__x86_64__)
// refine_codes' nearest codes c (odd: nearest odd) and new values f + c * s
// of four elements at a time, the scalar loop's IEEE operations lane by lane
// (binary64 quotient, clamp, truncation and the fraction's test; binary32
// apply, no FMA):
// returns how many elements it did (a multiple of 4).
__attribute__((target("avx2"))) size_t nearest_codes_avx2(const float* x, const float* f, size_t n, float s,
                                                          int32_t* c, float* v, bool odd) {
  if (!(s > 0)) return 0;  // (the scalar loop's)
  const __m256d sd = _mm256_set1_pd(double(s)), lim = _mm256_set1_pd(odd ? 16383.0 : 32767.0),
                nlim = _mm256_set1_pd(odd ? -16384.0 : -32767.0), one = _mm256_set1_pd(1.0);
  const __m256d half = _mm256_set1_pd(0.5), nhalf = _mm256_set1_pd(-0.5), zero = _mm256_setzero_pd();
  const __m128 sv = _mm_set1_ps(s);
  const __m256i lows = _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0);  // each 64-bit mask's low half
  auto halves = [&](__m256d m) __attribute__((always_inline, target("avx2"))) {
    return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(m), lows));
  };
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const __m128 f4 = _mm_loadu_ps(f + j);
    __m256d q = _mm256_div_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j)), _mm256_cvtps_pd(f4)), sd);
    const __m256d fin = _mm256_cmp_pd(_mm256_sub_pd(q, q), zero, _CMP_EQ_OQ);
    q = _mm256_and_pd(q, fin);  // 0 where not finite
    if (odd) q = _mm256_mul_pd(_mm256_sub_pd(q, one), half);  // (q - 1) / 2, exactly the scalar's
    q = _mm256_max_pd(nlim, _mm256_min_pd(q, lim));
    const __m128i t = _mm256_cvttpd_epi32(q);
    const __m256d fr = _mm256_sub_pd(q, _mm256_cvtepi32_pd(t));
    // t + (fr >= 0.5) - (fr <= -0.5): the masks are -1 where true
    __m128i c4 = _mm_add_epi32(_mm_sub_epi32(t, halves(_mm256_cmp_pd(fr, half, _CMP_GE_OQ))),
                               halves(_mm256_cmp_pd(fr, nhalf, _CMP_LE_OQ)));
    // odd: 2t + 1, and 0 where not finite
    if (odd) c4 = _mm_and_si128(_mm_add_epi32(_mm_add_epi32(c4, c4), _mm_set1_epi32(1)), halves(fin));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c + j), c4);
    _mm_storeu_ps(v + j, _mm_add_ps(f4, _mm_mul_ps(_mm_cvtepi32_ps(c4), sv)));
  }
  return j;
}
#endif

// Whether value v, stored as `bits` in dtype dt, is finite there (binary32
// finite and, for F16 and BF16, not rounded up to Inf).
bool stored_finite(uint32_t dt, float v, uint32_t bits) {
  const uint32_t e = dt == qrow::kF32 ? 0x7F800000u : dt == qrow::kF16 ? 0x7C00u : 0x7F80u;  // exponent all ones
  return refine::finite(v) & ((bits & e) != e);  // (no branch: both are cheap)
}

// One element's value the slow way: from its nearest code c, halved toward 0
// until the value stays finite in the dtype (a value near the top of F16);
// the value's bits into out, the code it settled on returned.
int32_t refine_one(uint32_t dt, float f, float s, int32_t c, uint8_t* out) {
  const unsigned wb = width(dt) / 8;
  for (;;) {
    const float v = refine::apply(f, c, s);
    qrow::store(dt, v, out, 0);
    if (c == 0 || stored_finite(dt, v, load_bits(out, 0, wb))) break;
    c /= 2;
  }
  if (c == 0) qrow::store(dt, refine::apply(f, 0, s), out, 0);
  return c;
}

}  // namespace

void refine_codes(uint32_t dt, const float* x, const uint8_t* below, int32_t base_exp, const uint8_t* e, uint32_t M,
                  uint64_t rows, uint64_t cols, uint16_t* d, uint8_t* above, bool odd) {
  const unsigned wb = width(dt) / 8;
  const DType t = static_cast<DType>(dt);  // qrow's dtype ids are the container's
  // A row at a time: the values below as binary32 (load_floats: the bits of
  // refine::f32_bits_of), every element's nearest code and new value, the
  // row converted back at once (store_floats: qrow::store's bits; the values
  // are finite or overflow to Inf, never NaN), then the rare element whose
  // value is not finite in the dtype redone with its code halved.
  thread_local std::vector<float> fv, vv;
  thread_local std::vector<int32_t> cv;
  fv.resize(size_t(cols)), vv.resize(size_t(cols)), cv.resize(size_t(cols));
  for (uint64_t r = 0, i = 0; r < rows; ++r, i += cols) {
    const float s = refine::code_step(base_exp, e[r], M);
    load_floats(t, below + i * wb, size_t(cols), fv.data());
    uint64_t j0 = 0;  // the elements the vector loop did
#if defined(__x86_64__)
    if (cpu_has_avx2()) j0 = nearest_codes_avx2(x + i, fv.data(), size_t(cols), s, cv.data(), vv.data(), odd);
#endif
    for (uint64_t j = j0; j < cols; ++j) {
      // the nearest code, within the 16-bit patterns either sign can use
      // (odd: 2t + 1, t the nearest to (q - 1) / 2, ties away from zero)
      const double q = s > 0 ? (double(x[i + j]) - double(fv[j])) / double(s) : 0.0;
      const int32_t c = !std::isfinite(q) ? 0
                        : odd ? 2 * round_half_away(std::clamp((q - 1.0) / 2.0, -16384.0, 16383.0)) + 1
                              : round_half_away(std::clamp(q, -32767.0, 32767.0));
      cv[j] = c;
      vv[j] = refine::apply(fv[j], c, s);
    }
    uint8_t* row = above + i * wb;
    store_floats(t, vv.data(), size_t(cols), row);
    // (the rows' pointers held in locals: the rare store through `row`
    // would otherwise have every element reload them; the element width
    // fixed at compile time)
    const int32_t* const cp = cv.data();
    const float* const vp = vv.data();
    const float* const fp = fv.data();
    uint16_t* const dp = d + i;
    auto codes = [&](auto width) __attribute__((always_inline)) {
      constexpr unsigned kW = decltype(width)::value;
      for (uint64_t j = 0; j < cols; ++j) {
        int32_t c = cp[j];
        // (one test of both, rarely true: c != 0 alone is a coin toss to a branch)
        if ((c != 0) & !stored_finite(dt, vp[j], load_bits(row, j, kW))) [[unlikely]] {
          uint8_t out[4];
          c = refine_one(dt, fp[j], s, c, out);
          store_bits(row, j, kW, load_bits(out, 0, kW));
        }
        // y's sign, which its binary32 value keeps (read from fv: above may be below)
        const bool neg = (qrow::f32_bits(fp[j]) >> 31) != 0;
        dp[j] = uint16_t(neg ? -c : c);
      }
    };
    if (wb == 4) codes(std::integral_constant<unsigned, 4>{});
    else codes(std::integral_constant<unsigned, 2>{});
  }
}

namespace {

double entropy_bits(const std::vector<uint64_t>& v) {
  uint64_t t = 0;
  for (uint64_t x : v) t += x;
  double b = 0;
  for (uint64_t x : v)
    if (x) b -= double(x) * std::log2(double(x) / double(t));
  return b;
}

// Frequencies summing to 2^P, at least 1 for every counted symbol.
std::vector<uint32_t> normalise(const std::vector<uint64_t>& cnt, unsigned P) {
  uint64_t t = 0;
  for (uint64_t x : cnt) t += x;
  std::vector<uint32_t> f(cnt.size(), 0);
  if (!t) return f;
  const int64_t target = int64_t(1) << P;
  int64_t sum = 0;
  for (size_t s = 0; s < cnt.size(); ++s)
    if (cnt[s]) {
      f[s] = uint32_t(std::max<int64_t>(1, std::llround(double(cnt[s]) * double(target) / double(t))));
      sum += f[s];
    }
  while (sum != target) {  // the largest frequencies absorb the difference (their cost changes least)
    const size_t big = size_t(std::max_element(f.begin(), f.end()) - f.begin());
    if (sum < target) {
      f[big] += uint32_t(target - sum), sum = target;
    } else {
      const int64_t take = std::min<int64_t>(sum - target, int64_t(f[big]) - 1 - int64_t(f[big]) / 2);
      if (take <= 0) {  // spread over every symbol above 1
        for (auto& v : f)
          if (v > 1 && sum > target) --v, --sum;
      } else {
        f[big] -= uint32_t(take), sum -= take;
      }
    }
  }
  return f;
}

}  // namespace

namespace {

// The context lists of tables for counts k (§4): the context count C that
// minimises the coded size plus the tables', appended to `out` (whose
// header the caller wrote, C in its first byte). `refine`: every context
// has the same symbols (REFINE.md §2); else context 0's differ from the
// rest (EXACT_TOP.md §3), so contexts >= 1 may share a table but never
// context 0's, and C = 1 only when every element is in context 0.
void build_contexts(const Counts& k, Geom g, bool refine, std::vector<uint8_t>& out, double* coded_bits) {
  // The counts of contexts c >= C - 1 merged into C - 1.
  auto merged = [&](unsigned C) {
    std::vector<std::vector<uint64_t>> m(C);
    for (unsigned c = 0; c < kRawContexts; ++c) {
      auto& d = m[std::min(c, C - 1)];
      d.resize(std::max(d.size(), k.c[c].size()), 0);
      for (size_t s = 0; s < k.c[c].size(); ++s) d[s] += k.c[c][s];
    }
    return m;
  };
  // Cost of C contexts: the order-0 bits of each, and about 3 bytes a
  // table entry (the manifest's zstd takes some of that back).
  bool only_zero = true;
  for (unsigned c = 1; c < kRawContexts; ++c)
    for (uint64_t x : k.c[c]) only_zero &= x == 0;
  unsigned best_c = 1;
  double best = INFINITY;
  for (unsigned C = only_zero || refine ? 1 : 2; C <= kMaxContexts; ++C) {
    double bits = 0;
    for (const auto& v : merged(C)) {
      bits += entropy_bits(v);
      for (uint64_t x : v) bits += x ? 24.0 : 0.0;
    }
    if (bits < best) best = bits, best_c = C;
  }
  if (coded_bits) {
    double raw = 0;
    for (unsigned c = 0; c < kRawContexts; ++c)
      for (size_t s = 0; s < k.c[c].size(); ++s)
        raw += double(k.c[c][s]) * raw_bits(uint32_t(s), refine ? refine::kSymbolClass : c, g);
    *coded_bits = best + raw;
  }
  out[0] = uint8_t(best_c);
  const auto m = merged(best_c);
  for (unsigned c = 0; c < best_c; ++c) {
    const auto f = normalise(m[c], kProbBits);
    uint32_t n = 0;
    for (uint32_t v : f) n += v > 0;
    put_uvar(out, n);
    uint32_t next = 0;
    for (uint32_t s = 0; s < f.size(); ++s)
      if (f[s]) put_uvar(out, s - next), put_uvar(out, f[s] - 1), next = s + 1;
  }
}

// One tile's mode-1 payload (§5) for its elements el (row-major; e: the
// rows' step bytes). Throws when a symbol is not in its tables.
void encode_elements(const Tables& tb, const std::vector<Elem>& el, const uint8_t* e, uint64_t rows,
                     const PayloadLayout& lay, std::vector<uint8_t>& out) {
  const uint64_t count = el.size();
  // rANS, backwards (§6): the decoder reads forwards
  uint32_t x[4] = {kStateLow, kStateLow, kStateLow, kStateLow};
  std::vector<uint16_t> words;
  // Per context, each symbol's index in its tables (-1: absent), built when
  // the tile first meets the context: one load, where a binary search per
  // element mispredicted its branches
  thread_local std::array<std::vector<int16_t>, kMaxContexts> ranks;
  bool built[kMaxContexts] = {};
  for (uint64_t i = count; i-- > 0;) {
    const unsigned c = el[i].ctx;
    const Context& t = tb.ctx[c];
    std::vector<int16_t>& rk = ranks[c];
    if (!built[c]) {  // (at most 2^15 symbols: P <= 15)
      rk.assign(t.sym.empty() ? 0 : size_t(t.sym.back()) + 1, int16_t(-1));
      for (size_t k = 0; k < t.sym.size(); ++k) rk[t.sym[k]] = int16_t(k);
      built[c] = true;
    }
    const uint32_t sym = el[i].s.sym;
    if (sym >= rk.size() || rk[sym] < 0)  // not in the tensor's tables: an encoder bug
      throw Error(Errc::codec, "level residuals: a symbol outside its tables");
    const size_t k = size_t(rk[sym]);
    const uint32_t f = t.freq[k];
    uint32_t& s = x[i & 3];
    // (64-bit: a context of one symbol has f = 2^P, and f << (32 - P) = 2^32)
    if (uint64_t(s) >= (uint64_t(f) << (32 - tb.P))) words.push_back(uint16_t(s)), s >>= 16;
    s = ((s / f) << tb.P) + (s % f) + t.cum[k];
  }
  const uint64_t ans = 16 + 2 * uint64_t(words.size());
  out.assign(8, 0);
  out[0] = 1;
  out[1] = uint8_t((lay.omit_steps ? 1 : 0) | (lay.tables ? 2 : 0));
  store_u32(out.data() + 4, uint32_t(ans));
  if (lay.tables) {
    if (lay.tables->size() > 0xFFFF) throw Error(Errc::limit, "level residuals: tables of more than 65535 bytes");
    out.push_back(uint8_t(lay.tables->size())), out.push_back(uint8_t(lay.tables->size() >> 8));
    out.insert(out.end(), lay.tables->begin(), lay.tables->end());
  }
  if (!lay.omit_steps) out.insert(out.end(), e, e + rows);
  const size_t st = out.size();
  out.resize(st + 16);
  for (unsigned j = 0; j < 4; ++j) store_u32(out.data() + st + 4 * j, x[j]);
  for (size_t w = words.size(); w-- > 0;) out.push_back(uint8_t(words[w])), out.push_back(uint8_t(words[w] >> 8));
  uint64_t acc = 0;
  unsigned have = 0;
  for (uint64_t i = 0; i < count; ++i) {
    if (!el[i].s.nraw) continue;
    acc |= uint64_t(el[i].s.raw) << have;
    have += el[i].s.nraw;
    while (have >= 8) out.push_back(uint8_t(acc)), acc >>= 8, have -= 8;
  }
  if (have) out.push_back(uint8_t(acc));
}

}  // namespace

std::vector<uint8_t> build_tables(const Counts& k, uint32_t dt, unsigned z, unsigned shift, Tables& tb,
                                  double* coded_bits) {
  std::vector<uint8_t> out{0, uint8_t(kProbBits), uint8_t(z), uint8_t(shift)};
  build_contexts(k, geom(dt, z), false, out, coded_bits);
  if (!parse_tables(out.data(), out.size(), dt, tb)) throw Error(Errc::codec, "exact top layer: tables do not parse");
  return out;
}

std::vector<uint8_t> build_refine_tables(const Counts& k, unsigned shift, uint32_t M, Tables& tb, double* coded_bits) {
  std::vector<uint8_t> out{0, uint8_t(kProbBits), 0, uint8_t(shift), 0, 0, 0, 0};
  store_u32(out.data() + 4, M);
  build_contexts(k, refine::code_geom(), true, out, coded_bits);
  if (!parse_refine_tables(out.data(), out.size(), tb)) throw Error(Errc::codec, "refinement level: tables do not parse");
  return out;
}

void encode_tile(const Tables& tb, uint32_t dt, const uint8_t* orig, const uint8_t* recon, int32_t base_exp,
                 const uint8_t* e, uint64_t rows, uint64_t cols, std::vector<uint8_t>& out, const PayloadLayout& lay) {
  const unsigned wb = width(dt) / 8;
  const uint64_t count = rows * cols;
  std::vector<Elem> el(count);
  const Geom g = geom(dt, tb.Z);
  for_elements(base_exp, e, tb.S, rows, cols,
               [&](uint64_t i, int32_t E) { el[i] = element(dt, g, tb.C, orig, recon, E, i); });
  encode_elements(tb, el, e, rows, lay, out);
  if (out.size() >= 1 + count * wb && !lay.tables) {  // mode 0: the residuals as they are
    out.assign(1 + count * wb, 0);
    for (uint64_t i = 0; i < count; ++i) store_bits(out.data() + 1, i, wb, residual_of(dt, g, orig, recon, i));
  }
}

void encode_codes(const Tables& tb, uint32_t dt, const uint8_t* below, int32_t base_exp, const uint8_t* e,
                  uint64_t rows, uint64_t cols, const uint16_t* d, std::vector<uint8_t>& out, const PayloadLayout& lay) {
  const uint64_t count = rows * cols;
  std::vector<Elem> el(count);
  for_elements(base_exp, e, tb.S, rows, cols,
               [&](uint64_t i, int32_t E) { el[i] = code_element(dt, tb.C, below, E, i, d); });
  encode_elements(tb, el, e, rows, lay, out);
  if (out.size() >= 1 + rows + count * 2 && !lay.tables) {  // mode 0: the rows' step bytes and the codes as they are
    out.assign(1, 0);
    out.insert(out.end(), e, e + rows);
    out.resize(1 + rows + count * 2);
    for (uint64_t i = 0; i < count; ++i) store_u16(out.data() + 1 + rows + 2 * i, d[i]);
  }
}

}  // namespace wc::exact
