// float_ans encoder, CPU decoders and statistics. See codec/float_ans.h and
// spec/FLOAT_ANS.md.
#include "codec/float_ans.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <new>
#include <type_traits>

#include "codec/ans_layout.h"
#include "codec/bit_writer.h"
#include "codec/float_ans_enc.h"
#include "codec/float_ans_hist.h"
#include "codec/float_ans_internal.h"
#include "format/bytes.h"
#include "platform/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace wc::fans {

using namespace layout;

bool supports(DType t) noexcept {
  Geometry g;
  return geometry_for(static_cast<uint32_t>(t), &g);
}

bool supports_float(DType t) noexcept { return supports(t) && t != DType::U8 && t != DType::U16; }

size_t encode_bound(size_t n) noexcept { return n + 1; }

namespace {
std::atomic<int> g_lazy_k{int(detail::kDefaultLazyK)};
}  // namespace

void detail::force_lazy_k(int k) noexcept {
  g_lazy_k.store(k < 0 ? int(kDefaultLazyK) : k, std::memory_order_relaxed);
}

namespace {

// ---- encoder ---------------------------------------------------------------------

using detail::grow;
using detail::load_val;
using detail::kSampleMaxK;
using detail::kSampleMin;
using detail::sampled_count;

struct Candidate {
  uint32_t k, joint;
  double est_bits;
};

// Quantised table for one candidate.
struct TablePlan {
  uint32_t k, joint, qshift, egk, prob_bits;
  uint32_t lo, count;
  double table_bits;  // exact, before byte padding
  double coded_bits;  // estimated stream bits
  double total_bits;  // everything
};

// Fast approximate log2 for candidate ranking (|error| < 1e-4).
inline double fast_log2(double x) {
  // x = m * 2^e, m in [0.5, 1): std::frexp for the positive normal x used here
  const uint64_t bits = std::bit_cast<uint64_t>(x);
  const int e = int(bits >> 52) - 1022;
  const double m = std::bit_cast<double>((bits & ((uint64_t(1) << 52) - 1)) | (uint64_t(1022) << 52));
  // log2(m) for m in [0.5,1): use log2(m) = log2(2m) - 1 with a cubic-ish series
  double y = (m - 0.7071067811865476) / (m + 0.7071067811865476);
  double y2 = y * y;
  double l = y * (2.8853900817779268 + y2 * (0.9617966939259756 + y2 * (0.5770780163555854 + y2 * 0.41219858)));
  return double(e) - 0.5 + l;
}

// log2 of 1..2^kMaxProbBits, exact (for the table cost estimate).
const double* log2_table() {
  static const std::vector<double> t = [] {
    std::vector<double> v((1u << kMaxProbBits) + 1, 0.0);
    for (size_t i = 1; i < v.size(); ++i) v[i] = std::log2(double(i));
    return v;
  }();
  return t.data();
}

// Symbol histogram of (k, joint) from hk, the histogram of keys sign<<(E+k) | mag.
// Only magnitudes [ma, mb) are present; h holds symbols [base, base + h.size())
// (base = ma, or 2 * ma when joint).
void symbol_hist(const std::vector<uint64_t>& hk, uint32_t magbits, uint32_t joint, uint32_t ma, uint32_t mb,
                 std::vector<uint64_t>& h, uint32_t* base) {
  const size_t half = size_t(1) << magbits;
  if (joint) {
    h.resize(2 * size_t(mb - ma));
    for (size_t m = ma; m < mb; ++m) { h[2 * (m - ma)] = hk[m]; h[2 * (m - ma) + 1] = hk[half + m]; }
    *base = 2 * ma;
  } else {
    h.resize(mb - ma);
    for (size_t m = ma; m < mb; ++m) h[m - ma] = hk[m] + hk[half + m];
    *base = ma;
  }
}

double entropy_bits(const std::vector<uint64_t>& h, uint64_t n, uint32_t* present) {
  double s = 0;
  uint32_t p = 0;
  const double ln = std::log2(double(n));
  for (uint64_t c : h)
    if (c) { s += double(c) * (ln - std::log2(double(c))); ++p; }
  *present = p;
  return s;
}

// fast_log2 of the counts 0 .. 2^14, cached (the same values).
constexpr uint32_t kFastLogMax = 1u << 14;
const double* fast_log2_table() {
  static const std::vector<double> t = [] {
    std::vector<double> v(kFastLogMax + 1);
    for (uint32_t i = 0; i <= kFastLogMax; ++i) v[i] = fast_log2(double(i));
    return v;
  }();
  return t.data();
}

// Entropy estimates (bits) of the joint and sign-raw symbols from hk, their
// present counts, and *span: the magnitudes from the lowest present one to
// the highest (the table's range: every entry between costs at least a bit).
// Only magnitudes [ma, mb) are read (all others are zero).
void entropy_pair(const std::vector<uint64_t>& hk, uint32_t magbits, uint32_t ma, uint32_t mb, uint64_t n,
                  double* ej, uint32_t* pj, double* es, uint32_t* ps, uint32_t* span) {
  const size_t half = size_t(1) << magbits;
  const double ln = std::log2(double(n));
  const double* FL = fast_log2_table();
  auto flog = [FL](uint64_t c) { return c <= kFastLogMax ? FL[c] : fast_log2(double(c)); };
  double sj = 0, ss = 0;
  uint32_t cj = 0, cs = 0;
  size_t first = mb, last = ma;
  for (size_t m = ma; m < mb; ++m) {
    const uint64_t a = hk[m], b = hk[half + m];
    if (!(a | b)) continue;
    first = std::min(first, m), last = m;
    // branch-free: a zero count adds exactly +0.0 (fast_log2(0) is finite and
    // far below ln), which leaves the (never -0.0) sum bit-identical
    sj += double(a) * (ln - flog(a));
    sj += double(b) * (ln - flog(b));
    cj += uint32_t(a != 0) + uint32_t(b != 0);
    const double c = double(a + b);
    ss += c * (ln - flog(a + b));
    ++cs;
  }
  *ej = sj; *pj = cj; *es = ss; *ps = cs;
  *span = first <= last ? uint32_t(last - first + 1) : 0;
}

// The weights of layout::normalize_first_pass from a table (a lookup instead
// of a shift and a switch per symbol); same results.
struct TableWeight {
  const uint64_t* wt;  // wt[0] = 0: absent
  uint64_t operator()(uint8_t q) const { return wt[q]; }
};
bool normalize_first_pass_enc(const uint8_t* q, uint32_t n, uint32_t qshift, uint32_t prob_bits, uint32_t* f,
                              uint64_t* excess) {
  static const auto wtab = [] {
    std::array<std::array<uint64_t, kMaxQ + 1>, 4> t{};
    for (uint32_t qs = 0; qs < 4; ++qs)
      for (uint32_t v = 1; v <= kMaxQ; ++v) t[qs][v] = layout::q_weight(v, qs);
    return t;
  }();
  return layout::normalize_first_pass_w(q, n, prob_bits, f, excess, TableWeight{wtab[qshift].data()});
}

// layout::normalize_freqs with identical results, the excess loop driven by a
// max-heap keyed (largest f, lowest i) instead of a scan per iteration.
bool normalize_freqs_enc(const uint8_t* q, uint32_t n, uint32_t qshift, uint32_t prob_bits, uint32_t* f) {
  uint64_t excess;
  if (!normalize_first_pass_enc(q, n, qshift, prob_bits, f, &excess)) return false;
  if (excess == 0) return true;
  thread_local std::vector<uint64_t> heap;
  heap.clear();
  for (uint32_t i = 0; i < n; ++i)
    if (f[i] > 1) heap.push_back(uint64_t(f[i]) << 32 | (0xFFFFFFFFu - i));
  std::make_heap(heap.begin(), heap.end());
  while (excess > 0) {
    if (heap.empty()) return false;
    std::pop_heap(heap.begin(), heap.end());
    const uint64_t top = heap.back();
    const uint32_t bi = 0xFFFFFFFFu - uint32_t(top), bf = uint32_t(top >> 32);
    uint64_t d = bf / 2;
    if (d > excess) d = excess;
    if (d == 0) return false;
    f[bi] = uint32_t(bf - d);
    excess -= d;
    if (f[bi] > 1) heap.back() = uint64_t(f[bi]) << 32 | (0xFFFFFFFFu - bi), std::push_heap(heap.begin(), heap.end());
    else heap.pop_back();
  }
  return true;
}

// A candidate's present symbols (non-zero counts), in symbol order: the
// passes of plan_table run over them alone, without a test per symbol (on
// Whisper's chunks about 40% of a table's range is present, at its edges
// irregularly, and those tests mispredicted).
struct Present {
  std::vector<uint32_t> at;  // offset in the table's range
  std::vector<uint64_t> c;   // count
  std::vector<double> lg;    // log2 of the count
};

// Quantises, normalises and prices a table of `count` entries whose present
// symbols are `pr` (exact table cost). qc and fc receive the present
// symbols' quantised log-frequencies and frequencies (dense_table() spreads
// them over the range). Every pass runs over the present symbols alone: a
// chunk with zeros and normal values spans every exponent between them
// (thousands of entries, a few hundred present), and a pass over the range
// per qshift tried cost a small chunk more than its coding.
void plan_table(const Present& pr, uint32_t lo, uint32_t count, uint32_t qshift, uint32_t prob_bits, TablePlan& tp,
                std::vector<uint8_t>& qc, std::vector<uint32_t>& fc, uint32_t S) {
  tp.lo = lo;
  tp.count = count;
  const size_t np = pr.at.size();
  qc.resize(np);
  const double qf = double(1u << qshift);
  for (size_t j = 0; j < np; ++j) {
    // std::lround for the x >= 0 here, inline (x - trunc(x) is exact)
    const double x = qf * pr.lg[j];
    const double tx = std::trunc(x);
    long v = long(tx) + long(x - tx >= 0.5) + 1;
    qc[j] = uint8_t(std::clamp<long>(v, 1, kMaxQ));
  }
  // the normalisation of the present symbols alone gives their frequencies
  // in the whole range: absent ones take no part in its sums, and its ties
  // go to the lowest index, an order the compaction keeps
  fc.resize(np);
  if (!normalize_freqs_enc(qc.data(), uint32_t(np), qshift, prob_bits, fc.data())) {
    tp.total_bits = 1e300;
    return;
  }
  const double* L2 = log2_table();
  double coded = 0;
  for (size_t j = 0; j < np; ++j) coded += double(pr.c[j]) * (double(prob_bits) - L2[fc[j]]);
  // Exp-Golomb table cost for egk = 0..3 in one pass (integer sums: equal to
  // summing eg_bits as doubles, every partial sum being exact). The table
  // codes zigzag(q[i] - q[i - 1]) over the whole range: between two present
  // symbols a run of g absent ones codes zigzag(-q) once and zigzag(0)
  // (1 + egk bits) g - 1 times.
  uint64_t bk[4] = {0, 0, 0, 0};
  {
    // lengths of small codes come from a table of four 16-bit fields (one per
    // egk), summed in one 64-bit add and flushed before a field can overflow
    static const auto eg4 = [] {
      std::array<uint64_t, 256> t{};
      for (uint32_t u = 0; u < 256; ++u)
        for (uint32_t egk = 0; egk < 4; ++egk)
          t[u] |= uint64_t(2 * uint32_t(31 - __builtin_clz((u >> egk) + 1)) + 1 + egk) << (16 * egk);
      return t;
    }();
    uint64_t acc = 0;
    auto flush = [&] {
      for (uint32_t egk = 0; egk < 4; ++egk) bk[egk] += (acc >> (16 * egk)) & 0xFFFF;
      acc = 0;
    };
    auto add = [&](uint32_t u) {
      if (u < 256) {
        acc += eg4[u];  // <= 17 per field
      } else {
        for (uint32_t egk = 0; egk < 4; ++egk) bk[egk] += 2 * uint32_t(31 - __builtin_clz((u >> egk) + 1)) + 1 + egk;
      }
    };
    int32_t prev = 0;
    uint32_t next = 0;  // the range's entry after the last present one
    for (size_t j = 0; j < np; ++j) {
      const uint32_t i = pr.at[j];
      if (i > next) {  // absent entries next .. i - 1
        add(zigzag_enc(-prev));
        const uint64_t zeros = i - next - 1;
        for (uint32_t egk = 0; egk < 4; ++egk) bk[egk] += zeros * (1 + egk);
        prev = 0;
      }
      add(zigzag_enc(int32_t(qc[j]) - prev));
      prev = qc[j];
      next = i + 1;
      if ((j & 1023) == 1023) flush();  // at most 2 adds an entry
    }
    flush();
  }
  double best = 1e300;
  uint32_t bestk = 0;
  for (uint32_t egk = 0; egk < 4; ++egk) {
    const double b = double(bk[egk]);
    if (b < best) { best = b; bestk = egk; }
  }
  tp.qshift = qshift;
  tp.prob_bits = prob_bits;
  tp.egk = bestk;
  tp.table_bits = best + 2.0 * S;
  tp.coded_bits = coded;
}

// The table of plan_table's present symbols over its whole range of
// `count` entries (zero where absent).
void dense_table(const Present& pr, uint32_t count, const std::vector<uint8_t>& qc, const std::vector<uint32_t>& fc,
                 std::vector<uint8_t>& q, std::vector<uint32_t>& f) {
  q.assign(count, 0);
  f.assign(count, 0);
  for (size_t j = 0; j < pr.at.size(); ++j) q[pr.at[j]] = qc[j], f[pr.at[j]] = fc[j];
}

struct ESym {
  uint64_t rcp;      // ceil(2^64 / freq); 2^64-1 for freq 1
  uint32_t xmax_m1;  // renormalise when x > xmax_m1
  uint16_t bias;     // cum (+ M - 1 for freq 1)
  uint16_t cmpl;     // M - freq
};
static_assert(sizeof(ESym) == 16);

// rANS-encodes every group of kGroupLanes sub-streams. Decoding runs step t
// forwards with lanes in increasing order, so encoding runs t backwards and
// lanes in decreasing order, every lane of a group pushing its words onto the
// group's one stack (written backwards into words[gbeg[g] .. gend[g])).
template <unsigned W, unsigned JOINT>
void encode_streams(const Split& s, uint32_t lo, const ESym* es, const uint8_t* src, uint64_t n,
                    uint64_t nsub, std::vector<uint16_t>& words, std::vector<uint32_t>& states,
                    std::vector<uint64_t>& gbeg, std::vector<uint64_t>& gend, const detail::VecEncArgs* va) {
  const uint64_t base = n / nsub, extra = n % nsub;
  const uint64_t ngroups = (nsub + kGroupLanes - 1) / kGroupLanes;
  // each group's region: kSlack words (vector stores below the stack top), then syms + 2
  constexpr uint64_t kSlack = 8;
  grow(words, size_t(n + (2 + kSlack) * ngroups));
  states.assign(nsub, kLowerBound);
  gbeg.resize(ngroups);
  gend.resize(ngroups);
  const uint32_t r = s.r;
  const uint32_t magmask = (1u << (s.S - JOINT)) - 1u;
  auto symidx = [&](uint32_t v) -> uint32_t {
    uint32_t mag = (v >> r) & magmask;
    if constexpr (JOINT) return ((mag << 1) | (v >> (W - 1))) - lo;
    else return mag - lo;
  };
  uint16_t* const wbase = words.data();
  uint64_t off = 0;
  for (uint64_t g = 0; g < ngroups; ++g) {
    const uint64_t j0 = g * kGroupLanes;
    const uint32_t lanes = uint32_t(std::min<uint64_t>(kGroupLanes, nsub - j0));
    const uint64_t ex = std::min<uint64_t>(extra > j0 ? extra - j0 : 0, lanes);
    const uint64_t syms = lanes * base + ex;
    uint32_t x[kGroupLanes];
    for (uint32_t l = 0; l < kGroupLanes; ++l) x[l] = kLowerBound;  // the vector steps read all
    off += kSlack;
    uint16_t* pp = wbase + off + syms + 2;
    gend[g] = off + syms + 2;
    // one rANS step of state xr on element i
    auto step = [&](uint32_t& xr, uint64_t i) __attribute__((always_inline)) {
      const ESym& e = es[symidx(load_val<W>(src, i))];
      uint32_t xx = xr;
      // branch-free: the emit decision is data-dependent and unpredictable
      // (a select rather than a shift by emit * 16: shorter dependency chain)
      const bool emit = xx > e.xmax_m1;
      pp[-1] = uint16_t(xx);
      pp -= uint32_t(emit);
      const uint32_t xs = xx >> 16;
      xx = emit ? xs : xx;
      const uint32_t qq = uint32_t((unsigned __int128)xx * e.rcp >> 64);
      xr = xx + e.bias + qq * e.cmpl;
    };
    auto enc = [&](uint32_t l, uint64_t i) __attribute__((always_inline)) { step(x[l], i); };
    // a few lanes: their states in registers (each step's latency is the
    // chunk's critical path when it has one or two sub-streams)
    auto small = [&](auto nl) __attribute__((always_inline)) {
      constexpr uint32_t NL = decltype(nl)::value;
      uint32_t xr[NL];
      for (uint32_t l = 0; l < NL; ++l) xr[l] = x[l];
      for (uint64_t t = base; t-- > 0;) {
        const uint64_t i0 = t * nsub + j0;
#pragma GCC unroll 8
        for (uint32_t k = 0; k < NL; ++k) step(xr[NL - 1 - k], i0 + NL - 1 - k);
      }
      for (uint32_t l = 0; l < NL; ++l) x[l] = xr[l];
    };
    for (uint32_t l = uint32_t(ex); l-- > 0;) enc(l, base * nsub + j0 + l);
    const detail::EncStepsFn vsteps = va ? detail::enc_steps_avx2(W, JOINT, va->big, lanes) : nullptr;
    if (vsteps) {
      vsteps(*va, src, nsub, base, j0, lanes, x, &pp);
    } else if (lanes == 1) {
      small(std::integral_constant<uint32_t, 1>{});
    } else if (lanes == 2) {
      small(std::integral_constant<uint32_t, 2>{});
    } else if (lanes == 3) {
      small(std::integral_constant<uint32_t, 3>{});
    } else if (lanes == 4) {
      small(std::integral_constant<uint32_t, 4>{});
    } else if (lanes == kGroupLanes) {
      for (uint64_t t = base; t-- > 0;) {
        const uint64_t i0 = t * nsub + j0;
#pragma GCC unroll 32
        for (uint32_t k = 0; k < kGroupLanes; ++k) enc(kGroupLanes - 1 - k, i0 + kGroupLanes - 1 - k);
      }
    } else {
      for (uint64_t t = base; t-- > 0;) {
        const uint64_t i0 = t * nsub + j0;
        for (uint32_t l = lanes; l-- > 0;) enc(l, i0 + l);
      }
    }
    for (uint32_t l = 0; l < lanes; ++l) states[j0 + l] = x[l];
    gbeg[g] = uint64_t(pp - wbase);
    off += syms + 2;
  }
}

template <unsigned W, unsigned JOINT>
void pack_plane(const Split& s, const uint8_t* src, uint64_t n, uint8_t* out) {
  uint64_t acc = 0;
  uint32_t nb = 0;
  const uint32_t w = s.w, rr = s.rr, z = s.z;
  const uint32_t lowmask = (1u << rr) - 1u;
  if (w == 0) return;
  auto rawv = [&](uint32_t v) -> uint64_t {
    if constexpr (JOINT) return (v >> z) & lowmask;
    else return ((v >> z) & lowmask) | ((v >> (W - 1)) << rr);
  };
  uint64_t i = 0;
  if (w <= 16) {  // two fields per round keep the accumulator under 64 bits
    for (; i + 2 <= n; i += 2) {
      acc |= (rawv(load_val<W>(src, i)) | (rawv(load_val<W>(src, i + 1)) << w)) << nb;
      nb += 2 * w;
      if (nb >= 32) {
        store_u32(out, uint32_t(acc));
        out += 4;
        acc >>= 32;
        nb -= 32;
      }
    }
  }
  for (; i < n; ++i) {
    acc |= rawv(load_val<W>(src, i)) << nb;
    nb += w;
    if (nb >= 32) {
      store_u32(out, uint32_t(acc));
      out += 4;
      acc >>= 32;
      nb -= 32;
    }
  }
  while (nb > 0) {
    *out++ = uint8_t(acc);
    acc >>= 8;
    nb = nb > 8 ? nb - 8 : 0;
  }
}

// The payload goes into `out` after its first `at` bytes (a caller's head,
// kept), so a head needs no copy of the payload behind it.
void encode_impl(DType t, const uint8_t* src, size_t nbytes, std::vector<uint8_t>& out,
                 const Params& p, size_t at = 0) {
  Geometry g;
  if (!geometry_for(static_cast<uint32_t>(t), &g)) fail(Errc::usage, "float_ans: unsupported dtype");
  const uint32_t esize = g.W / 8;
  if (nbytes % esize) fail(Errc::usage, "float_ans: chunk is not a whole number of elements");
  const uint64_t n = nbytes / esize;
  if (n >= (uint64_t(1) << 32)) fail(Errc::limit, "float_ans: chunk of 2^32 or more elements");
  auto store_raw = [&] {
    out.resize(at + nbytes + 1);
    out[at] = uint8_t(kModeRaw);
    if (nbytes) std::memcpy(out.data() + at + 1, src, nbytes);
  };
  if (n == 0) { store_raw(); return; }
  const uint32_t sub_bits = uint32_t(std::clamp(p.sub_bits, int(kMinSubBits), int(kMaxSubBits)));
  uint32_t prob_bits = uint32_t(std::clamp(p.prob_bits, int(kMinProbBits), int(kMaxProbBits)));
  {  // small chunks: M >= 2n is plenty and the decoder builds a smaller table
    const uint32_t need = uint32_t(64 - __builtin_clzll(n)) + 1;
    prob_bits = std::clamp(need, kMinProbBits, prob_bits);
  }
  const uint64_t nsub = ((n - 1) >> sub_bits) + 1;

  // histogram of the top bits: sign + exponent + up to kmax mantissa bits
  // A forced k (FP8 pairs: both exponents) is counted exactly: the pair keys
  // interleave two values' exponents, so the runs of keys a sample finds
  // present cover almost no vector of the elements outside it (0.2% on
  // Whisper tiny.en as E4M3), and marking their keys present cost more than
  // counting them all (which also gives the exact frequencies). So are
  // integer items (quantized codes): their information sits in the low
  // "mantissa" bits a sampled histogram (k <= 4) would leave raw, 6 bits of
  // every U16 code.
  const bool integer_items = t == DType::U8 || t == DType::U16;
  const bool sample = n >= kSampleMin && p.k < 0 && !integer_items;
  uint32_t kfull = std::min(g.m, kMaxSymBits - g.E);
  while (kfull > 0 && (uint64_t(1) << (1 + g.E + kfull)) > 8 * n) --kfull;  // small chunks: small histograms
  if (sample) kfull = std::min(kfull, kSampleMaxK);
  uint32_t ma, mb, kmax = 0;  // the levels built so far: k = 0 .. kmax
  const bool fast = detail::fast_encoder();
  const uint64_t ns = sample ? sampled_count(n) : n;  // elements counted
  const double scale = double(n) / double(ns);         // sample bits -> chunk bits
  thread_local std::vector<uint64_t> top;
  // hk: histogram of sign<<(E+k) | mag for k = kk .. 0, each the pair-sum of
  // the previous.
  thread_local std::vector<std::vector<uint64_t>> levels;  // levels[k]: keys with k mantissa bits
  auto mrange = [&](uint32_t k, uint32_t* a, uint32_t* b) { *a = ma >> (kmax - k); *b = mb >> (kmax - k); };
  uint32_t or_all = 0;  // the OR of every element (the first build finds it)
  auto build = [&](uint32_t kk) {
    kmax = kk;
    detail::top_histogram(g.W, src, n, 1 + g.E + kk, kk, fast, sample, &ma, &mb, &or_all, top);
    // only grows: shrinking would free the finer levels' vectors, and the next
    // chunk with a larger kmax would allocate and zero-fill them again
    if (levels.size() < kk + 1) levels.resize(kk + 1);
    levels[kk].swap(top);
    for (int k = int(kk) - 1; k >= 0; --k) {
      const auto& up = levels[k + 1];
      auto& cur = levels[k];
      const size_t half = size_t(1) << (g.E + uint32_t(k));
      grow(cur, 2 * half);
      uint32_t a, b;
      mrange(uint32_t(k), &a, &b);
      for (size_t base : {size_t(0), half})
        for (size_t i = base + a; i < base + b; ++i) cur[i] = up[2 * i] + up[2 * i + 1];
    }
  };
  // An unsampled chunk is first counted with at most kLazyK mantissa bits and
  // counted again with kfull only if the k loop below gets past kLazyK: the
  // levels k <= kLazyK and their ranges are the same either way, and a small
  // chunk's dense histogram over all kfull keys cost more than its rANS steps.
  const uint32_t kLazyK = uint32_t(g_lazy_k.load(std::memory_order_relaxed));
  build(sample || p.k > int(kLazyK) ? kfull : std::min(kfull, kLazyK));
  // float-ans-trim: mantissa bits that are zero in every element are not
  // stored (an F32 tensor of BF16 or F16 values: 16 or 13 of them)
  uint32_t zall = 0;
  if (p.trim) {
    const uint32_t mant = or_all & ((1u << g.m) - 1u);
    zall = mant ? uint32_t(__builtin_ctz(mant)) : g.m;
    if (zall > 31) zall = 31;
  }

  // candidates (k, joint) by entropy + rough table estimate
  thread_local std::vector<Candidate> cands;
  cands.clear();
  {
    // k = 0 upwards: each mantissa bit moved into the symbol saves n raw bits
    // and costs its conditional entropy plus table entries; once the bits are
    // nearly uniform that trade only loses. Stop after two levels without a
    // better estimate (the finest levels, the most expensive to price, are
    // rarely reached).
    double best_est = 1e300;
    int since_best = 0;
    for (uint32_t k = 0; k <= kfull && since_best < 2; ++k) {
      if (p.k >= 0 && uint32_t(p.k) != k) continue;
      if (k > kmax) build(kfull);
      const auto& hk = levels[k];
      double ej, es;
      uint32_t pj, ps, a, b, span;
      mrange(k, &a, &b);
      entropy_pair(hk, g.E + k, a, b, ns, &ej, &pj, &es, &ps, &span);
      double level_best = 1e300;
      for (uint32_t joint = 0; joint < 2; ++joint) {
        if (p.joint >= 0 && uint32_t(p.joint) != joint) continue;
        Split s;
        if (!make_split(g, k, joint, &s, std::min(zall, g.m - k))) continue;
        const uint32_t present = joint ? pj : ps;
        if (present > (1u << prob_bits)) continue;
        // the table: about 4 bits a present symbol, and a bit (a zero delta)
        // for every absent entry of its range, which zeros in a chunk of
        // normal values stretch over every exponent between them (priced
        // by the present symbols alone, a 1152-value bias with a zero third
        // chose 7 mantissa bits and came out 9% over the best level)
        const double range = double(span) * (joint ? 2.0 : 1.0);
        const double est = (joint ? ej : es) * scale + double(n) * s.w + 4.0 * present + std::max(0.0, range - present);
        cands.push_back({k, joint, est});
        level_best = std::min(level_best, est);
      }
      if (level_best < best_est) best_est = level_best, since_best = 0;
      else ++since_best;
    }
  }
  if (cands.empty()) {
    if (!p.allow_raw) fail(Errc::usage, "float_ans: no valid configuration");
    store_raw();
    return;
  }
  std::sort(cands.begin(), cands.end(),
            [](const Candidate& a, const Candidate& b) { return a.est_bits < b.est_bits; });
  if (cands.size() > 2) cands.resize(2);  // a third never won by more than 0.0003 bits/weight on the corpus

  TablePlan best{};
  best.total_bits = 1e300;
  thread_local std::vector<uint8_t> bq;  // thread-local: no allocations per chunk
  thread_local std::vector<uint32_t> bf;
  thread_local std::vector<uint64_t> h;
  thread_local Present pr;
  thread_local std::vector<uint8_t> qc;
  thread_local std::vector<uint32_t> fc;
  for (const Candidate& c : cands) {
    Split s{};
    make_split(g, c.k, c.joint, &s, std::min(zall, g.m - c.k));
    uint32_t a, b, hbase;
    mrange(c.k, &a, &b);
    symbol_hist(levels[c.k], g.E + c.k, c.joint, a, b, h, &hbase);
    // the present symbols, the table's range from the first to the last
    uint32_t lo = 0;
    pr.at.clear(), pr.c.clear(), pr.lg.clear();
    {
      const double* L2 = log2_table();  // the same std::log2 values, cached
      for (uint32_t i = 0; i < h.size(); ++i) {
        const uint64_t hc = h[i];
        if (!hc) continue;
        if (pr.at.empty()) lo = i;
        pr.at.push_back(i - lo);
        pr.c.push_back(hc);
        pr.lg.push_back(hc <= (uint64_t(1) << kMaxProbBits) ? L2[hc] : std::log2(double(hc)));
      }
    }
    const uint32_t count = pr.at.empty() ? 1 : pr.at.back() + 1;
    {  // skip a candidate that cannot win: its coded bits are at least the
       // entropy (Gibbs; the frequencies sum to M), its table bits >= 0
      const double ln = std::log2(double(ns));
      double H = 0;
      for (size_t j = 0; j < pr.at.size(); ++j) H += double(pr.c[j]) * (ln - pr.lg[j]);
      const double lb = (H * scale * (1 - 1e-9) - 1.0) + double(n) * s.w + 32.0 * double(nsub);
      if (lb >= best.total_bits) continue;
    }
    // qshift trades table bits for coding loss; the total is near-unimodal in
    // it, so walk from 2 towards the better neighbour and stop when it worsens
    auto try_qs = [&](uint32_t qs) {
      TablePlan tp{};
      plan_table(pr, lo, count, qs, prob_bits, tp, qc, fc, s.S);
      if (tp.total_bits >= 1e299) return 1e300;
      tp.lo += hbase;
      tp.k = c.k;
      tp.joint = c.joint;
      tp.coded_bits *= scale;
      tp.total_bits = tp.table_bits + tp.coded_bits + double(n) * s.w + 32.0 * double(nsub);
      if (tp.total_bits < best.total_bits) {
        best = tp;
        dense_table(pr, count, qc, fc, bq, bf);
      }
      return tp.total_bits;
    };
    if (p.qshift >= 0) {
      try_qs(uint32_t(p.qshift));
    } else {
      const double t2 = try_qs(2), t3 = try_qs(3);
      if (t3 > t2 && try_qs(1) < t2) try_qs(0);
    }
  }
  if (best.total_bits >= 1e299) {
    if (!p.allow_raw) fail(Errc::usage, "float_ans: no valid configuration");
    store_raw();
    return;
  }
  if (p.allow_raw && best.total_bits / 8 > double(nbytes) * 1.02 + 64) { store_raw(); return; }

  Split s;
  make_split(g, best.k, best.joint, &s, std::min(zall, g.m - best.k));
  Header hd{best.k, best.joint, best.qshift, sub_bits, prob_bits, best.egk, s.z};
  if (p.size_only) {  // what the payload below would take (mode and header bytes, table, states, counts)
    const uint64_t ngroups = (nsub + kGroupLanes - 1) / kGroupLanes;
    const double bytes = std::ceil(best.total_bits / 8) + 4.0 + 4.0 * double(ngroups - 1);
    if (p.allow_raw && bytes >= double(nbytes) + 1) { store_raw(); return; }  // as below
    out.resize(at);  // (a caller's head is kept)
    out.resize(at + size_t(bytes), 0);
    out[at] = uint8_t(kModeRans);
    return;
  }

  // encoder symbol table
  thread_local std::vector<ESym> es;
  es.assign(best.count, ESym{});
  {
    const uint32_t M = 1u << prob_bits;
    uint32_t cum = 0;
    for (uint32_t i = 0; i < best.count; ++i) {
      uint32_t fi = bf[i];
      ESym& e = es[i];
      if (fi == 0) { e.xmax_m1 = 0; continue; }  // absent: never used
      uint64_t xmax = (uint64_t(kLowerBound >> prob_bits) << 16) * fi;
      e.xmax_m1 = uint32_t(xmax - 1);
      e.cmpl = uint16_t(M - fi);
      if (fi == 1) {
        e.rcp = ~uint64_t(0);
        e.bias = uint16_t(cum + M - 1);
      } else {
        // ceil(2^64 / f) = floor((2^64 - 1) / f) + 1 for f not a power of 2
        // (one 64-bit division rather than a 128-bit one)
        e.rcp = ~uint64_t(0) / fi + 1;
        if ((fi & (fi - 1)) == 0) e.rcp = uint64_t(1) << (64 - __builtin_ctz(fi));
        e.bias = uint16_t(cum);
      }
      cum += fi;
    }
  }

  thread_local std::vector<uint16_t> words;
  thread_local std::vector<uint32_t> states;
  thread_local std::vector<uint64_t> wbeg, wend;
  thread_local std::vector<uint32_t> va_a;
  detail::VecEncArgs va{};
  const bool vec = fast && prob_bits >= 12;  // the kernel's quotient bound needs q < 2^20
  if (vec) {
    grow(va_a, best.lo + best.count);
    uint32_t cum = 0, fmax = 0;
    for (uint32_t i = 0; i < best.count; ++i) {
      const uint32_t fi = bf[i];
      va_a[best.lo + i] = fi ? (fi - 1) | cum << 14 : 0;
      cum += fi;
      fmax = std::max(fmax, fi);
    }
    va = detail::VecEncArgs{va_a.data(), s.r, (1u << (s.S - s.joint)) - 1u, prob_bits, fmax > (1u << prob_bits) / 2};
  }
  auto run = [&](auto fn) { fn(s, best.lo, es.data(), src, n, nsub, words, states, wbeg, wend, vec ? &va : nullptr); };
  if (g.W == 8) s.joint ? run(encode_streams<8, 1>) : run(encode_streams<8, 0>);
  else if (g.W == 16) s.joint ? run(encode_streams<16, 1>) : run(encode_streams<16, 0>);
  else s.joint ? run(encode_streams<32, 1>) : run(encode_streams<32, 0>);

  const uint64_t ngroups = (nsub + kGroupLanes - 1) / kGroupLanes;
  uint64_t total_words = 0;
  for (uint64_t j = 0; j < ngroups; ++j) total_words += wend[j] - wbeg[j];
  const uint64_t plane_n = (n >> 3) * s.w + ((n & 7) * s.w + 7) / 8;

  out.resize(at);
  out.reserve(at + size_t(64 + best.table_bits / 8 + 4 * nsub + 4 * ngroups + 2 * total_words + plane_n));
  out.push_back(uint8_t(kModeRans));
  out.push_back(pack_b1(hd));
  out.push_back(pack_b2(hd));
  out.push_back(pack_b3(hd));
  {
    BitWriter bw(out);
    bw.put(best.lo, s.S);
    bw.put(best.count - 1, s.S);
    int32_t prev = 0;
    for (uint32_t i = 0; i < best.count; ++i) {
      bw.eg(zigzag_enc(int32_t(bq[i]) - prev), best.egk);
      prev = bq[i];
    }
    bw.flush();
  }
  size_t pos = out.size();
  out.resize(pos + 4 * nsub + 4 * (ngroups - 1));
  uint8_t* o = out.data() + pos;
  for (uint64_t j = 0; j < nsub; ++j) { store_u32(o, states[j]); o += 4; }
  for (uint64_t j = 0; j + 1 < ngroups; ++j) { store_u32(o, uint32_t(wend[j] - wbeg[j])); o += 4; }
  // the words are appended (copied once, never zero-filled first); the words
  // are stored in the host's byte order, as the memcpy this replaces did
  for (uint64_t j = 0; j < ngroups; ++j) {
    const uint8_t* w = reinterpret_cast<const uint8_t*>(words.data() + wbeg[j]);
    out.insert(out.end(), w, w + 2 * size_t(wend[j] - wbeg[j]));
  }
  pos = out.size();
  out.resize(pos + plane_n);
  o = out.data() + pos;
  // (with no raw bits, the portable loops below return at once)
  if (fast && s.w && detail::fast_pext())
    detail::pack_plane_bmi2(g.W, (((1u << s.r) - 1u) & ~((1u << s.z) - 1u)) | (s.joint ? 0u : 1u << (g.W - 1)), src,
                            n, o);
  else if (fast && s.w) detail::pack_plane_avx2(g.W, s.z, s.rr, s.joint != 0, src, n, o);
  else if (g.W == 8) s.joint ? pack_plane<8, 1>(s, src, n, o) : pack_plane<8, 0>(s, src, n, o);
  else if (g.W == 16) s.joint ? pack_plane<16, 1>(s, src, n, o) : pack_plane<16, 0>(s, src, n, o);
  else s.joint ? pack_plane<32, 1>(s, src, n, o) : pack_plane<32, 0>(s, src, n, o);
  if (p.allow_raw && out.size() - at >= nbytes + 1) store_raw();
}

}  // namespace

void encode_with(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, const Params& p) {
  encode_impl(t, src, n, out, p);
}

void encode_after(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, size_t at, const Params& p) {
  if (at > out.size()) fail(Errc::usage, "float_ans: head beyond the output");
  encode_impl(t, src, n, out, p, at);
}

void encode(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, bool trim) {
  Params p;
  p.trim = trim;
  encode_impl(t, src, n, out, p);
}

// ---- decoders ------------------------------------------------------------------------

namespace {

using detail::Tables;

// layout::parse_table with the same results (values, failures, final bit
// position), reading a 64-bit window per code while 8 bytes remain; the
// table's last codes (and any read near or past the end) go through the
// reference reader.
struct FastTableParser {
  bool operator()(BitReader& br, uint32_t S, uint32_t egk, uint32_t* lo, uint32_t* count, uint8_t* q) const {
    const uint8_t* p = br.p;
    const size_t n = br.n;
    uint64_t pos = br.pos;
    auto window = [&]() {  // at least 57 bits from pos (caller checked the bytes)
      uint64_t v;
      std::memcpy(&v, p + (pos >> 3), 8);
      return v >> (pos & 7);
    };
    auto room = [&]() { return (pos >> 3) + 8 <= n; };
    if (!room()) return parse_table(br, S, egk, lo, count, q);
    {
      const uint64_t v = window();
      *lo = uint32_t(v & ((1u << S) - 1u));
      *count = uint32_t((v >> S) & ((1u << S) - 1u)) + 1;
      pos += 2 * S;
    }
    if (uint64_t(*lo) + *count > (uint64_t(1) << S)) return false;
    int32_t prev = 0;
    uint32_t i = 0;
    for (; i < *count && room(); ++i) {
      const uint64_t v = window();
      // Exp-Golomb: z zeros, a one, z + egk bits (the reference fails on the
      // 25th zero)
      if ((v & ((uint64_t(1) << 25) - 1)) == 0) return false;
      const uint32_t z = uint32_t(std::countr_zero(v)), nb = z + egk;
      const uint32_t u = ((1u << nb) - (1u << egk)) + uint32_t((v >> (z + 1)) & ((uint64_t(1) << nb) - 1));
      pos += z + 1 + nb;
      const int32_t cur = prev + int32_t(zigzag_dec(u));
      if (cur < 0 || cur > int32_t(kMaxQ)) return false;
      q[i] = uint8_t(cur);
      prev = cur;
    }
    br.pos = pos;
    for (; i < *count; ++i) {  // the reference loop for the rest
      const uint32_t u = br.eg(egk);
      if (br.bad) return false;
      const int32_t cur = prev + int32_t(zigzag_dec(u));
      if (cur < 0 || cur > int32_t(kMaxQ)) return false;
      q[i] = uint8_t(cur);
      prev = cur;
    }
    return !br.bad;
  }
};

// Parses a payload and builds tables. Returns false on any error. For raw mode
// copies and sets *done.
bool prepare(DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, ChunkLayout& L,
             Tables& T, bool* done, bool allow_packed, bool trim) {
  *done = false;
  if (!detail::parse_chunk_cpu(static_cast<uint32_t>(t), src, src_n, dst_n, &L, T.q, trim)) return false;
  if (L.mode == kModeRaw) {
    if (dst_n) std::memcpy(dst, src + 1, dst_n);
    *done = true;
    return true;
  }
  if (!check_counts(src, L)) return false;
  T.norm_order[0] = 0;  // activates the union member (see Tables)
  if (!normalize_freqs(T.q, L.count, L.h.qshift, L.h.prob_bits, T.f, T.norm_order, T.vals)) return false;
  // The packed entry's fields: freq - 1 and the bias (< freq) in fb bits
  // each, fb from the largest frequency, leaving 32 - 2 fb >= 8 bits for the
  // symbol index: every table of at most 256 symbols, and larger alphabets
  // (k = 3 with the sign, wide exponent ranges: a third of Whisper tiny.en's
  // BF16 chunks) whose largest frequency is small enough.
  uint32_t fmax = 1;
  for (uint32_t i = 0; i < L.count; ++i) fmax = std::max<uint32_t>(fmax, T.f[i]);
  T.fbits = std::max(1u, uint32_t(std::bit_width(fmax - 1)));
  T.packed = allow_packed && L.h.prob_bits <= 12 && std::bit_width(L.count - 1) <= 32 - 2 * T.fbits;
  // The other 16- and 32-bit tables keep the AVX2 kernel through the wide
  // tables, which the scalar steps read too (no slot/vals: less to build,
  // and less of L1 taken from the kernel's table).
  T.wide = allow_packed && !T.packed && L.h.prob_bits <= 12 && L.s.W >= 16;
  if (T.packed) detail::build_packed(T.f, L.count, L.lo, L.s, T);
  else if (T.wide) detail::build_wide(T.f, L.count, T);
  else {
    T.slot[0] = 0;  // back to the slot table
    build_slots(T.f, L.count, L.lo, L.s, T.slot, T.vals);
  }
  return true;
}

}  // namespace

namespace {
#if defined(__x86_64__)
// build_packed with 8 slots per store: a symbol's run is written in whole
// vectors, the surplus overwritten by the next symbols' (a run that would
// pass the end of the table ends with scalar stores)
__attribute__((target("avx2"))) void build_packed_avx2(const uint16_t* f, uint32_t count, detail::Tables& T) {
  const uint32_t fb = T.fbits, bsh = 32 - fb, M = 1u << 12;
  const __m256i iota = _mm256_sllv_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(int(bsh)));
  const __m256i step = _mm256_set1_epi32(int(8u << bsh));
  uint32_t cum = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t fi = f[i];
    const uint32_t hi = (fi - 1) | (i << fb);
    uint32_t* o = T.pslot + cum;
    uint32_t j = 0;
    if (cum + ((fi + 7) & ~7u) <= M) {
      __m256i v = _mm256_add_epi32(_mm256_set1_epi32(int(hi)), iota);
      for (; j < fi; j += 8, v = _mm256_add_epi32(v, step)) _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + j), v);
    } else {
      for (; j < fi; ++j) o[j] = hi | (j << bsh);
    }
    cum += fi;
  }
}
#endif
}  // namespace

void detail::build_packed(const uint16_t* f, uint32_t count, uint32_t lo, const Split& s, Tables& T) {
  if (count <= 256)
    for (uint32_t i = 0; i < count; ++i) T.val8[i] = symbol_value(s, lo + i) << s.val_shift;
#if defined(__x86_64__)
  if (cpu_has_avx2()) return build_packed_avx2(f, count, T);
#endif
  const uint32_t fb = T.fbits, bsh = 32 - fb;
  uint32_t cum = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t fi = f[i];
    const uint32_t hi = (fi - 1) | (i << fb);
    uint32_t* o = T.pslot + cum;
    for (uint32_t j = 0; j < fi; ++j) o[j] = hi | (j << bsh);
    cum += fi;
  }
}

bool detail::parse_chunk_cpu(uint32_t dtype_id, const uint8_t* src, size_t src_n, size_t dst_n, ChunkLayout* L,
                             uint8_t* q, bool trim) {
  return parse_chunk(dtype_id, src, src_n, dst_n, L, q, trim, FastTableParser());
}

void detail::build_wide(const uint16_t* f, uint32_t count, Tables& T) {
  uint32_t cum = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t fi = f[i];
    uint16_t* o = T.wide3 + 3 * cum;
    // one 8-byte store per slot (entry, index, and 2 bytes the next slot's
    // store overwrites; the last one's land in the spare words)
    for (uint32_t j = 0; j < fi; ++j) {
      const uint64_t e = uint64_t((fi - 1) | (j << 20)) | uint64_t(i) << 32;
      std::memcpy(o + 3 * j, &e, 8);
    }
    cum += fi;
  }
  for (uint32_t k = 3 * cum; k < 3 * cum + 4; ++k) T.wide3[k] = 0;  // cum == 2^prob_bits: the last load's over-read
}

Errc decode_reference(DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, bool trim) noexcept {
  ChunkLayout L;
  Tables T;
  bool done;
  if (!src || !prepare(t, src, src_n, dst, dst_n, L, T, &done, false, trim)) return Errc::codec;
  if (done) return Errc::ok;
  uint64_t off = L.streams_off, sum = 0;
  bool ok = true;
  for (uint64_t g = 0; g < L.ngroups; ++g) {
    const uint32_t c = word_count(src, L, g, sum);
    ok &= decode_group(L.s, L.h.prob_bits, T.slot, T.vals, src + L.states_off + 4 * g * kGroupLanes,
                       group_lanes(L, g), g * kGroupLanes, src + off, c, L.nsub, L.n, src + L.plane_off,
                       L.plane_n, dst);
    off += 2 * uint64_t(c);
    sum += c;
  }
  return ok ? Errc::ok : Errc::codec;
}

namespace {
Errc decode_tables(DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, bool trim,
                   Tables& T) noexcept {
  ChunkLayout L;
  bool done;
  if (!src || !prepare(t, src, src_n, dst, dst_n, L, T, &done, true, trim)) return Errc::codec;
  if (done) return Errc::ok;
  return detail::decode_fast(src, src_n, dst, L, T) ? Errc::ok : Errc::codec;
}
}  // namespace

Errc decode(DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, bool trim) noexcept {
  Tables T;
  return decode_tables(t, src, src_n, dst, dst_n, trim, T);
}

size_t tables_size() noexcept { return sizeof(Tables); }
size_t tables_align() noexcept { return alignof(Tables); }

Errc decode_with(DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, bool trim,
                 void* tables) noexcept {
  if (!tables || reinterpret_cast<uintptr_t>(tables) % alignof(Tables)) return Errc::usage;
  // Tables is a trivial type: the workspace's bytes become one by being
  // written (prepare() fills every member it later reads).
  static_assert(std::is_trivially_default_constructible_v<Tables> && std::is_trivially_destructible_v<Tables>);
  return decode_tables(t, src, src_n, dst, dst_n, trim, *::new (tables) Tables);
}

bool chunk_info(DType t, const uint8_t* src, size_t src_n, size_t dst_n, ChunkInfo* info) noexcept {
  ChunkLayout L;
  static thread_local uint8_t q[kMaxAlphabet];
  if (!src || !parse_chunk(static_cast<uint32_t>(t), src, src_n, dst_n, &L, q, true)) return false;
  *info = ChunkInfo{};
  info->mode = L.mode;
  if (L.mode == kModeRaw) return true;
  info->k = L.h.k;
  info->joint = L.h.joint;
  info->qshift = L.h.qshift;
  info->sub_bits = L.h.sub_bits;
  info->prob_bits = L.h.prob_bits;
  info->nsub = L.nsub;
  info->table_bytes = L.table_n + kHeaderBytes;
  info->substream_header_bytes = L.streams_off - L.states_off;
  info->stream_bytes = L.streams_n;
  info->plane_bytes = L.plane_n;
  return true;
}

// ---- statistics ------------------------------------------------------------------------

EntropyCounter::EntropyCounter(DType t) {
  Geometry g;
  if (!geometry_for(static_cast<uint32_t>(t), &g)) fail(Errc::usage, "float_ans: unsupported dtype");
  W_ = g.W, E_ = g.E, m_ = g.m;
  vb_ = W_ == 32 ? 16 : W_;  // F32: top 16 bits
  hv_.assign(size_t(1) << vb_, 0);
  he_.assign(size_t(1) << E_, 0);
}

void EntropyCounter::add(const uint8_t* src, size_t nbytes) {
  if (nbytes % (W_ / 8)) fail(Errc::usage, "float_ans: not a whole number of elements");
  const uint64_t n = nbytes / (W_ / 8);
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t v = W_ == 8 ? src[i] : W_ == 16 ? load_u16(src + 2 * i) : load_u32(src + 4 * i);
    ++hv_[v >> (W_ - vb_)];
    ++he_[(v >> m_) & ((1u << E_) - 1)];
  }
  n_ += n;
}

double EntropyCounter::h_values() const {
  uint32_t pr;
  return n_ ? entropy_bits(hv_, n_, &pr) / double(n_) + double(W_ - vb_) : 0.0;
}

double EntropyCounter::h_exp_bound() const {
  uint32_t pr;
  return n_ ? entropy_bits(he_, n_, &pr) / double(n_) + double(W_ - E_) : 0.0;
}

EntropyStats entropy_stats(DType t, const uint8_t* src, size_t nbytes) {
  EntropyCounter c(t);
  c.add(src, nbytes);
  EntropyStats st{};
  st.elements = c.elements();
  if (st.elements == 0) return st;
  st.h_values = c.h_values();
  st.h_exp_bound = c.h_exp_bound();
  std::vector<uint8_t> out;
  encode(t, src, nbytes, out);
  st.achieved_bpw = 8.0 * double(out.size()) / double(st.elements);
  return st;
}

}  // namespace wc::fans
