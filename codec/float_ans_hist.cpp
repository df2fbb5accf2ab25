// The float_ans encoder's histogram of a chunk's top bits: counted in full
// or on a sample, with the sample's missing symbols marked present. See
// codec/float_ans_hist.h.
#include "codec/float_ans_hist.h"

#include <algorithm>
#include <bit>
#include <type_traits>

#include "codec/float_ans_enc.h"

namespace wc::fans::detail {

namespace {

// Range [a, b) of magnitude keys ((v >> sh) & (half - 1)) present in src,
// and the OR of every value.
template <unsigned W>
void mag_range(const uint8_t* src, uint64_t n, uint32_t sh, uint32_t* a, uint32_t* b, uint32_t* any) {
  using T = std::conditional_t<W == 8, uint8_t, std::conditional_t<W == 16, int16_t, int32_t>>;
  constexpr uint32_t mask = (uint32_t(1) << (W - 1)) - 1u;
  T mn = T(mask), mx = 0;
  uint32_t o = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t u = load_val<W>(src, i);
    const T v = T(u & mask);
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
    o |= u;
  }
  *a = uint32_t(mn) >> sh;
  *b = (uint32_t(mx) >> sh) + 1;
  *any = o;
}

// Four interleaved u16 sub-histograms of the keys v >> sh (repeated values
// do not serialise on one counter), kept all-zero between uses: a block of at
// most kSubMax elements is counted, then flushed over the keys it can hold.
constexpr uint64_t kSubMax = 4 * 65535;
struct SubHist {
  std::vector<uint16_t> hs;
  uint16_t* h[4];
  void reserve(size_t nb) {
    if (hs.size() < 4 * nb) hs.assign(4 * nb, 0);
    for (int j = 0; j < 4; ++j) h[j] = hs.data() + j * nb;
  }
  // top[k] += counts for k in [a, b) and [half + a, half + b); those are cleared.
  void flush(uint32_t a, uint32_t b, size_t half, uint64_t* top) {
    for (size_t base : {size_t(0), half})
      for (size_t k = base + a; k < base + b; ++k) {
        top[k] += uint64_t(h[0][k]) + h[1][k] + h[2][k] + h[3][k];
        h[0][k] = h[1][k] = h[2][k] = h[3][k] = 0;
      }
  }
};


// Counts elements [i0, i1) (all, or the sampled ones).
template <unsigned W>
void count_block(const uint8_t* src, uint64_t i0, uint64_t i1, bool sample, uint32_t sh, uint16_t* const* h) {
  for (uint64_t r = i0; r < i1;) {
    const uint64_t run_end = std::min(i1, (r | 63) + 1);
    if (sample && !in_sample(r)) { r = run_end; continue; }
    uint64_t i = r;
    if (W == 16 && std::endian::native == std::endian::little) {
      for (; i + 4 <= run_end; i += 4) {  // one load for four values
        const uint64_t u = load_u64(src + 2 * i);
        ++h[0][uint16_t(u) >> sh];
        ++h[1][uint16_t(u >> 16) >> sh];
        ++h[2][uint16_t(u >> 32) >> sh];
        ++h[3][(u >> 48) >> sh];
      }
    }
    for (unsigned j = 0; i < run_end; ++i, ++j) ++h[j & 3][load_val<W>(src, i) >> sh];
    r = run_end;
  }
}

// Keys v >> sh of the elements outside the sample that the sample missed get
// a count of 1 (the fast kernel skips keys inside windows known present).
template <unsigned W>
void mark_missing(const uint8_t* src, uint64_t n, uint32_t sh, uint64_t* top) {
  for (uint64_t i = 0; i < n; i += 64) {
    if (in_sample(i)) continue;
    for (uint64_t j = i; j < std::min(n, i + 64); ++j) {
      uint64_t& c = top[load_val<W>(src, j) >> sh];
      c += c == 0;
    }
  }
}

// For each sign, the widest run of magnitude keys around the sample's most
// frequent one whose counts are all non-zero, as [lo, hi] of whole keys.
void present_windows(const uint64_t* top, uint32_t ma, uint32_t mb, size_t half, uint32_t w[4]) {
  for (uint32_t sgn = 0; sgn < 2; ++sgn) {
    const uint64_t* t = top + sgn * half;
    uint32_t m = ma;
    for (uint32_t k = ma; k < mb; ++k)
      if (t[k] > t[m]) m = k;
    uint32_t l = m, r = m;
    while (l > ma && t[l - 1]) --l;
    while (r + 1 < mb && t[r + 1]) ++r;
    w[2 * sgn] = uint32_t(sgn * half) + l;
    w[2 * sgn + 1] = uint32_t(sgn * half) + r;
    if (!t[m]) w[2 * sgn] = UINT32_MAX;  // nothing sampled of this sign
  }
  // a sign with no window repeats the other's (the sample is never empty)
  if (w[0] == UINT32_MAX) w[0] = w[2], w[1] = w[3];
  if (w[2] == UINT32_MAX) w[2] = w[0], w[3] = w[1];
}

template <unsigned W>
void top_histogram_t(const uint8_t* src, uint64_t n, uint32_t topbits, uint32_t kmax, bool fast, bool sample,
                     uint32_t* ma, uint32_t* mb, uint32_t* any, std::vector<uint64_t>& top) {
  const uint32_t sh = W - topbits;
  const size_t nb = size_t(1) << topbits, half = nb / 2;
  thread_local SubHist sub;
  sub.reserve(nb);
  grow(top, nb);
  uint64_t* const tp = top.data();
  auto widen = [&](uint32_t a, uint32_t b) {
    *ma = a >> kmax << kmax;
    *mb = ((b + (1u << kmax) - 1) >> kmax) << kmax;
    for (size_t k = *ma; k < *mb; ++k) tp[k] = tp[half + k] = 0;
  };
  if (fast && (sample ? sampled_count(n) : n) <= kSubMax) {  // one pass counts and finds the range
    uint32_t mn, mx;
    count_minmax_avx2(W, src, n, sh, sample, sub.h, &mn, &mx, any);
    widen(mn >> sh, (mx >> sh) + 1);
    sub.flush(*ma, *mb, half, tp);
  } else {
    uint32_t a, b;
    mag_range<W>(src, n, sh, &a, &b, any);
    widen(a, b);
    // a block of kSubMax elements counts at most kSubMax of them
    for (uint64_t i = 0; i < n; i += kSubMax) {
      count_block<W>(src, i, std::min(n, i + kSubMax), sample, sh, sub.h);
      sub.flush(*ma, *mb, half, tp);
    }
  }
  if (!sample) return;
  // every key that occurs is present, counted or not
  if (fast) {
    uint32_t w[4];
    present_windows(tp, *ma, *mb, half, w);
    mark_missing_avx2(W, src, n, sh, w, tp);
  } else {
    mark_missing<W>(src, n, sh, tp);
  }
}

}  // namespace

void top_histogram(unsigned W, const uint8_t* src, uint64_t n, uint32_t topbits, uint32_t kmax, bool fast,
                   bool sample, uint32_t* ma, uint32_t* mb, uint32_t* any, std::vector<uint64_t>& top) {
  if (W == 8) top_histogram_t<8>(src, n, topbits, kmax, fast, sample, ma, mb, any, top);
  else if (W == 16) top_histogram_t<16>(src, n, topbits, kmax, fast, sample, ma, mb, any, top);
  else top_histogram_t<32>(src, n, topbits, kmax, fast, sample, ma, mb, any, top);
}

}  // namespace wc::fans::detail
