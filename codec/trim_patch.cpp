#include "codec/trim_patch.h"

#include <algorithm>
#include <cstring>

#include "format/bytes.h"

namespace wc::patch {

namespace {

unsigned mantissa_bits(DType t) {
  switch (t) {
    case DType::BF16: return 7;
    case DType::F16: return 10;
    case DType::F32: return 23;
    case DType::F8_E4M3: return 3;
    case DType::F8_E5M2: return 2;
    default: return 0;
  }
}

// What one list entry costs beside its value: a gap of about 2 bytes.
constexpr uint64_t kGapBytes = 2;
constexpr unsigned kMaxLeb = 5;  // a u32 gap

// The elements' loops, their width fixed at compile time (load_at: a width
// chosen per element cost a switch and a byte loop, and kept the count from
// vectorising).
// How many of elements [b, e) have bit 0 set.
template <class E>
uint64_t odd_count(const uint8_t* src, uint64_t b, uint64_t e) {
  uint32_t c = 0;  // e - b <= 4096
  for (uint64_t i = b; i < e; ++i) c += uint32_t(load_at<E>(src, i) & 1u);
  return c;
}
// Elements by trailing zero bits of their mb mantissa bits (mb: all zero)
// into four histograms h[j * (mb + 2) + z] in turn: most elements fall in
// one bin, and one histogram would make each increment wait for the last.
template <class E>
void zero_bits_hist(const uint8_t* src, uint64_t n, unsigned mb, uint64_t* h) {
  const uint32_t mmask = (1u << mb) - 1u;
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t m = uint32_t(load_at<E>(src, i)) & mmask;
    ++h[(i & 3) * (mb + 2) + (m ? unsigned(__builtin_ctz(m)) : mb)];
  }
}

// Appends to idx the elements of [0, n) with a bit of `low` set, ascending.
// Blocks of 64 are OR-ed first (the OR vectorises) and only a block with
// such an element is scanned: the list is sparse where a patch pays, and an
// element at a time through a width chosen per element was most of choose().
template <class E>
void list_low(const uint8_t* src, uint64_t n, uint32_t low, std::vector<uint32_t>& idx) {
  for (uint64_t b = 0; b < n; b += 64) {
    const uint64_t e = std::min<uint64_t>(n, b + 64);
    uint32_t any = 0;
    for (uint64_t i = b; i < e; ++i) any |= uint32_t(load_at<E>(src, i));
    if (!(any & low)) continue;
    for (uint64_t i = b; i < e; ++i)
      if (uint32_t(load_at<E>(src, i)) & low) idx.push_back(uint32_t(i));
  }
}

}  // namespace

Choice choose(DType t, const uint8_t* src, uint64_t n) {
  Choice c;
  const unsigned mb = mantissa_bits(t), eb = dtype_bits(t) / 8;
  if (!mb || !n || n > UINT32_MAX) return c;
  // No trim of z >= 1 bits pays once the elements with bit 0 set (listed for
  // every such z) cost more than trimming all mb bits of every element
  // saves: 8 c0 (kGapBytes + eb) >= n mb. Real weights (about half odd)
  // show it within the first block, and skip the histogram below; the
  // answer is the one the histogram gives.
  {
    const uint64_t limit = uint64_t(n) * mb;  // (n <= 2^32, mb <= 23)
    uint64_t c0 = 0;
    for (uint64_t b = 0; b < n; b += 4096) {
      const uint64_t e = std::min<uint64_t>(n, b + 4096);
      c0 += eb == 1 ? odd_count<uint8_t>(src, b, e) : eb == 2 ? odd_count<uint16_t>(src, b, e)
                                                               : odd_count<uint32_t>(src, b, e);
      if (8 * c0 * (kGapBytes + eb) >= limit) return c;
    }
  }
  // elements by trailing zero bits of the mantissa (mb: all zero)
  std::vector<uint64_t> at_least(mb + 2, 0), h(4 * (mb + 2), 0);
  if (eb == 1) zero_bits_hist<uint8_t>(src, n, mb, h.data());
  else if (eb == 2) zero_bits_hist<uint16_t>(src, n, mb, h.data());
  else zero_bits_hist<uint32_t>(src, n, mb, h.data());
  for (unsigned z = 0; z < mb + 2; ++z) at_least[z] = h[z] + h[mb + 2 + z] + h[2 * (mb + 2) + z] + h[3 * (mb + 2) + z];
  for (unsigned z = mb; z-- > 0;) at_least[z] += at_least[z + 1];  // now: elements with >= z zero bits
  // beyond what plain trim takes (z_all: every element has those bits zero)
  unsigned z_all = 0;
  while (z_all < mb && at_least[z_all + 1] == n) ++z_all;
  unsigned best_z = 0;
  double best = 0;
  for (unsigned z = z_all + 1; z <= mb; ++z) {
    const uint64_t listed = n - at_least[z];
    const double gain = double(n) * (z - z_all) - 8.0 * double(listed) * double(kGapBytes + eb);
    if (gain > best) best = gain, best_z = z;
  }
  if (!best_z) return c;
  c.z = best_z;
  c.gain_bits = best;
  const uint32_t low = (1u << best_z) - 1u;
  if (eb == 1) list_low<uint8_t>(src, n, low, c.idx);
  else if (eb == 2) list_low<uint16_t>(src, n, low, c.idx);
  else list_low<uint32_t>(src, n, low, c.idx);
  return c;
}

void clear_listed(DType t, const Choice& c, const uint8_t* src, uint8_t* dst, uint64_t n) {
  const unsigned eb = dtype_bits(t) / 8;
  std::memcpy(dst, src, n * eb);
  for (uint32_t i : c.idx) {
    const uint32_t v = load_elem(src + uint64_t(i) * eb, eb) & ~((1u << c.z) - 1u);
    std::memcpy(dst + uint64_t(i) * eb, &v, eb);
  }
}

void write_head(DType t, const Choice& c, const uint8_t* src, std::vector<uint8_t>& out) {
  const unsigned eb = dtype_bits(t) / 8;
  out.assign({kMode, 0, 0, 0});
  uint8_t e[4];
  store_u32(e, uint32_t(c.idx.size()));
  out.insert(out.end(), e, e + 4);
  uint32_t next = 0;
  for (uint32_t i : c.idx) {
    for (uint32_t g = i - next; ; g >>= 7) {  // LEB128
      out.push_back(uint8_t((g & 0x7F) | (g > 0x7F ? 0x80 : 0)));
      if (g <= 0x7F) break;
    }
    out.insert(out.end(), src + uint64_t(i) * eb, src + uint64_t(i) * eb + eb);
    next = i + 1;
  }
}

namespace {

// List entry k at *at: its gap (LEB128, at most 5 bytes) after *next, the
// element index in *idx; *at moves past its value (eb bytes). False when it
// runs past src_n bytes.
bool read_entry(const uint8_t* src, size_t src_n, unsigned eb, size_t* at, uint64_t* next, uint64_t* idx) noexcept {
  uint64_t g = 0;
  for (unsigned b = 0;; ++b) {
    if (b == kMaxLeb || *at >= src_n) return false;
    const uint8_t byte = src[(*at)++];
    g |= uint64_t(byte & 0x7F) << (7 * b);
    if (!(byte & 0x80)) break;
  }
  *idx = *next + g;
  if (src_n - *at < eb) return false;
  *at += eb;
  *next = *idx + 1;
  return true;
}

}  // namespace

bool parse(DType t, const uint8_t* src, size_t src_n, uint64_t n, size_t* inner) noexcept {
  const unsigned eb = dtype_bits(t) / 8;
  if (!mantissa_bits(t) || src_n < kHeaderBytes || src[0] != kMode || src[1] || src[2] || src[3]) return false;
  const uint32_t count = load_u32(src + 4);
  if (count == 0 || count > n) return false;
  size_t at = kHeaderBytes;
  uint64_t next = 0, idx = 0;
  for (uint32_t k = 0; k < count; ++k)
    if (!read_entry(src, src_n, eb, &at, &next, &idx) || idx >= n) return false;
  // the inner payload: a mode-1 or mode-3 one (its own rules checked by its decoder)
  if (at >= src_n || (src[at] != 1 && src[at] != 3)) return false;
  *inner = at;
  return true;
}

void apply(DType t, const uint8_t* src, size_t src_n, uint8_t* dst) noexcept {
  const unsigned eb = dtype_bits(t) / 8;
  const uint32_t count = load_u32(src + 4);
  size_t at = kHeaderBytes;
  uint64_t next = 0, idx = 0;
  for (uint32_t k = 0; k < count && read_entry(src, src_n, eb, &at, &next, &idx); ++k)
    std::memcpy(dst + idx * eb, src + at - eb, eb);
}

}  // namespace wc::patch
