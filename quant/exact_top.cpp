#include "quant/exact_top.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "format/bytes.h"

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

// Symbol, raw bits and clamped context of element i of a tile.
Elem element(uint32_t dt, Geom g, unsigned C, const uint8_t* orig, const uint8_t* recon, int32_t base_exp,
             const uint8_t* e, uint64_t cols, uint64_t i) {
  const uint32_t y = load_bits(recon, i, width(dt) / 8);
  Elem el;
  el.ctx = std::min(raw_context(y, dt, row_exp(base_exp, e[i / cols])), C - 1);
  el.s = split(residual_of(dt, g, orig, recon, i), el.ctx, g);
  return el;
}

}  // namespace

bool parse_tables(const uint8_t* p, size_t n, uint32_t dt, Tables& tb) {
  if (n < 4) return false;
  const uint8_t* end = p + n;
  tb.C = p[0], tb.P = p[1], tb.Z = p[2];
  if (tb.C < 1 || tb.C > kMaxContexts || tb.P < 8 || tb.P > 15 || tb.Z > mant_bits(dt) - 2 || p[3]) return false;
  const Geom g = geom(dt, tb.Z);
  p += 4;
  for (unsigned c = 0; c < tb.C; ++c) {
    Context& x = tb.ctx[c];
    x.sym.clear(), x.freq.clear(), x.cum.assign(1, 0), x.dec.clear();
    const uint32_t a = alphabet(c, g);
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
      const unsigned nr = raw_bits(uint32_t(s), c, g);
      // join() with no raw bits and no sign gives the magnitude's upper bits
      const uint32_t base = join(uint32_t(s) & ~1u, 0, c, g);
      x.dec.push_back({base, uint16_t(fm1 + 1), uint16_t(total - fm1 - 1), uint8_t(nr),
                       uint8_t(s & 1)});
      next = s + 1;
    }
    if (cnt && total != (1u << tb.P)) return false;
  }
  return p == end;
}

namespace {

// Mode 1's element loop (§5) for a dtype of W bits and `mant` mantissa bits:
// row by row (one step exponent each), a slot-to-symbol table per context
// built when the tile first meets it, the raw bits from a 64-bit window.
template <unsigned W, unsigned kMant>
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
  uint64_t* const entp = ent.data();
  bool overrun = false;
  uint64_t acc = 0;
  unsigned have = 0;
  uint64_t i = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    const int32_t E = row_exp(base_exp, e[r]);
    uint8_t* const row = dst + wb * i;
    for (uint64_t j = 0; j < cols; ++j, ++i) {
      uint32_t& s = x[i & 3];
      const uint8_t* p = row + wb * j;
      const uint32_t y = wb == 4 ? load_u32(p) : load_u16(p);
      const unsigned c = std::min(raw_context(y, dt, E), tb.C - 1);
      const Context& t = tb.ctx[c];
      uint16_t* l = lutp + (size_t(c) << tb.P);
      if (!built[c]) [[unlikely]] {
        if (t.sym.empty()) return Errc::codec;
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
    }
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
      uint8_t* p = row + wb * j;
      const uint32_t y = wb == 4 ? load_u32(p) : load_u16(p);
      const uint32_t d = (en >> 40) ? (0u - (m + 1u)) & mask : m;
      const uint32_t w = restore(y >> z, d, h, mask) << z;
      if (wb == 4) store_u32(p, w);
      else store_u16(p, uint16_t(w));
    }
  }
  if (overrun || words != wend) return Errc::codec;
  for (unsigned j = 0; j < 4; ++j)
    if (x[j] != kStateLow) return Errc::codec;
  if (rb != rend || acc != 0 || have >= 8) return Errc::codec;
  return Errc::ok;
}

Errc decode_coded(const Tables& tb, uint32_t dt, int32_t base_exp, uint64_t rows, uint64_t cols, const uint8_t* e,
                  uint32_t* x, const uint8_t* words, const uint8_t* wend, const uint8_t* rb, const uint8_t* rend,
                  uint8_t* dst) {
  if (dt == qrow::kF32) return decode_elements<32, 23>(tb, base_exp, rows, cols, e, x, words, wend, rb, rend, dst);
  if (dt == qrow::kF16) return decode_elements<16, 10>(tb, base_exp, rows, cols, e, x, words, wend, rb, rend, dst);
  return decode_elements<16, 7>(tb, base_exp, rows, cols, e, x, words, wend, rb, rend, dst);
}

}  // namespace

Errc apply_tile(const Tables& tb, const uint8_t* pl, size_t n, uint32_t dt, int32_t base_exp, uint64_t rows,
                uint64_t cols, uint8_t* dst) {
  const unsigned wb = width(dt) / 8;
  const uint32_t h = 1u << (width(dt) - 1), mask = wb == 4 ? 0xFFFFFFFFu : 0xFFFFu;
  const uint64_t count = rows * cols;
  if (n < 1) return Errc::codec;
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
  if (pl[0] != 1 || n < 8 || pl[1] || load_u16(pl + 2)) return Errc::codec;
  const uint64_t ans = load_u32(pl + 4);
  if (n - 8 < rows) return Errc::codec;
  const uint8_t* e = pl + 8;  // the rows' step bytes
  const uint8_t* st = e + rows;
  if (ans < 16 || ans % 2 || ans > n - 8 - rows) return Errc::codec;
  const uint8_t* words = st + 16;
  const uint8_t* wend = st + ans;
  uint32_t x[4];
  for (unsigned j = 0; j < 4; ++j) {
    x[j] = load_u32(st + 4 * j);
    if (x[j] < kStateLow) return Errc::codec;
  }
  return decode_coded(tb, dt, base_exp, rows, cols, e, x, words, wend, wend, pl + n, dst);
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

void count_tile(Counts& k, uint32_t dt, unsigned z, const uint8_t* orig, const uint8_t* recon, int32_t base_exp,
                const uint8_t* e, uint64_t rows, uint64_t cols) {
  const Geom g = geom(dt, z);
  for (unsigned c = 0; c < kRawContexts; ++c) k.c[c].resize(alphabet(c, g), 0);
  for (uint64_t i = 0; i < rows * cols; ++i) {
    const Elem el = element(dt, g, kRawContexts + 1, orig, recon, base_exp, e, cols, i);
    ++k.c[el.ctx][el.s.sym];
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

std::vector<uint8_t> build_tables(const Counts& k, uint32_t dt, unsigned z, Tables& tb, double* coded_bits) {
  const Geom g = geom(dt, z);
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
  // Context 0's symbols are not those of the others (§3): contexts >= 1 may
  // share a table, never context 0's, so C = 1 only when every element is in
  // context 0.
  bool only_zero = true;
  for (unsigned c = 1; c < kRawContexts; ++c)
    for (uint64_t x : k.c[c]) only_zero &= x == 0;
  unsigned best_c = 1;
  double best = INFINITY;
  for (unsigned C = only_zero ? 1 : 2; C <= kMaxContexts; ++C) {
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
      for (size_t s = 0; s < k.c[c].size(); ++s) raw += double(k.c[c][s]) * raw_bits(uint32_t(s), c, g);
    *coded_bits = best + raw;
  }
  std::vector<uint8_t> out{uint8_t(best_c), uint8_t(kProbBits), uint8_t(z), 0};
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
  if (!parse_tables(out.data(), out.size(), dt, tb)) throw Error(Errc::codec, "exact top layer: tables do not parse");
  return out;
}

void encode_tile(const Tables& tb, uint32_t dt, const uint8_t* orig, const uint8_t* recon, int32_t base_exp,
                 const uint8_t* e, uint64_t rows, uint64_t cols, std::vector<uint8_t>& out) {
  const unsigned wb = width(dt) / 8;
  const uint64_t count = rows * cols;
  std::vector<Elem> el(count);
  const Geom g = geom(dt, tb.Z);
  for (uint64_t i = 0; i < count; ++i) el[i] = element(dt, g, tb.C, orig, recon, base_exp, e, cols, i);
  // rANS, backwards (§6): the decoder reads forwards
  uint32_t x[4] = {kStateLow, kStateLow, kStateLow, kStateLow};
  std::vector<uint16_t> words;
  bool ok = true;
  for (uint64_t i = count; i-- > 0 && ok;) {
    const Context& t = tb.ctx[el[i].ctx];
    const auto it = std::lower_bound(t.sym.begin(), t.sym.end(), el[i].s.sym);
    if (it == t.sym.end() || *it != el[i].s.sym) {
      ok = false;  // not in the tensor's tables: an encoder bug, caught below
      break;
    }
    const size_t k = size_t(it - t.sym.begin());
    const uint32_t f = t.freq[k];
    uint32_t& s = x[i & 3];
    // (64-bit: a context of one symbol has f = 2^P, and f << (32 - P) = 2^32)
    if (uint64_t(s) >= (uint64_t(f) << (32 - tb.P))) words.push_back(uint16_t(s)), s >>= 16;
    s = ((s / f) << tb.P) + (s % f) + t.cum[k];
  }
  if (!ok) throw Error(Errc::codec, "exact top layer: a symbol outside its tables");
  const uint64_t ans = 16 + 2 * uint64_t(words.size());
  out.assign(8, 0);
  out[0] = 1;
  store_u32(out.data() + 4, uint32_t(ans));
  out.insert(out.end(), e, e + rows);
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
  if (out.size() >= 1 + count * wb) {  // mode 0: the residuals as they are
    out.assign(1 + count * wb, 0);
    for (uint64_t i = 0; i < count; ++i) store_bits(out.data() + 1, i, wb, residual_of(dt, g, orig, recon, i));
  }
}

}  // namespace wc::exact
