// float_ans codec: round trips, edge cases, corruption, and the GPU per-lane
// functions (layout::lane_decode / lane_refill, as the kernel's warps run
// them) emulated on the CPU against the fast decoder.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <random>
#include <vector>

#include "codec/ans_layout.h"
#include "codec/bit_writer.h"
#include "codec/float_ans.h"
#include "codec/float_ans_enc.h"
#include "codec/float_ans_internal.h"
#include "test_util.h"
#include "weights_gen.h"

using namespace wc;

namespace {

size_t esize(DType t) { return t == DType::F32 ? 4 : (t == DType::BF16 || t == DType::F16) ? 2 : 1; }

// Decodes payload with every decoder we have and checks each gives `raw`.
// The payload lies against an inaccessible page: no decoder may read past it.
void check_decoders(DType t, const std::vector<uint8_t>& encv, const std::vector<uint8_t>& raw) {
  const tu::GuardedCopy enc(encv);
  std::vector<uint8_t> a(raw.size() + 1, 0xAA), b(raw.size() + 1, 0x55);
  for (int kern = 0; kern < 4; ++kern) {
    fans::detail::force_kernel(kern);
    std::fill(a.begin(), a.end(), uint8_t(0xAA));
    REQUIRE(fans::decode(t, enc.data, enc.size, a.data(), raw.size()) == Errc::ok);
    CHECK((raw.empty() || std::memcmp(a.data(), raw.data(), raw.size()) == 0));
    CHECK(a[raw.size()] == 0xAA);  // nothing written past dst_n
  }
  fans::detail::force_kernel(-1);
  REQUIRE(fans::decode_reference(t, enc.data, enc.size, b.data(), raw.size()) == Errc::ok);
  CHECK((raw.empty() || std::memcmp(b.data(), raw.data(), raw.size()) == 0));
  CHECK(b[raw.size()] == 0x55);
}

std::vector<uint8_t> roundtrip(DType t, const std::vector<uint8_t>& raw, const fans::Params& p = {}) {
  std::vector<uint8_t> enc;
  fans::encode_with(t, raw.data(), raw.size(), enc, p);
  if (p.allow_raw) CHECK(enc.size() <= fans::encode_bound(raw.size()));
  check_decoders(t, enc, raw);
  return enc;
}

// Encodes with the portable encoder and the fast one (when the CPU has it):
// the same bytes from both. Returns them.
std::vector<uint8_t> encode_both(DType t, const std::vector<uint8_t>& raw, const fans::Params& p) {
  std::vector<uint8_t> a, b;
  fans::detail::force_encoder(0);
  fans::encode_with(t, raw.data(), raw.size(), a, p);
  fans::detail::force_encoder(-1);
  fans::encode_with(t, raw.data(), raw.size(), b, p);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size()) == 0);
  // the raw plane packed without pext (the path of AMD CPUs before Zen 3)
  std::vector<uint8_t> c;
  fans::detail::force_encoder(2);
  fans::encode_with(t, raw.data(), raw.size(), c, p);
  fans::detail::force_encoder(-1);
  REQUIRE(c.size() == b.size());
  CHECK(std::memcmp(c.data(), b.data(), c.size()) == 0);
  return b;
}

// The chunk_info of payload enc (n raw bytes of type t); it must parse.
fans::ChunkInfo info_of(DType t, const std::vector<uint8_t>& enc, size_t n) {
  fans::ChunkInfo ci{};
  REQUIRE(fans::chunk_info(t, enc.data(), enc.size(), n, &ci));
  return ci;
}

fans::Params coded() {
  fans::Params p;
  p.allow_raw = false;
  return p;
}

// Weight-like values: t-ish distribution with a scale, as float32.
std::vector<float> weights(size_t n, uint32_t seed, float scale = 0.02f) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> d(5.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng) * scale;
  return v;
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7FFF + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

std::vector<uint8_t> bf16_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t h = f32_to_bf16(v[i]);
    std::memcpy(&b[2 * i], &h, 2);
  }
  return b;
}

std::vector<uint8_t> all_patterns16() {
  std::vector<uint8_t> b(65536 * 2);
  for (uint32_t i = 0; i < 65536; ++i) { b[2 * i] = uint8_t(i); b[2 * i + 1] = uint8_t(i >> 8); }
  return b;
}

// Thread CPU time of the fastest of `runs` calls of fn (other processes on a
// shared machine do not inflate it).
template <class Fn>
double best_cpu_seconds(int runs, Fn&& fn) {
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    fn();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    best = std::min(best, double(b.tv_sec - a.tv_sec) + 1e-9 * double(b.tv_nsec - a.tv_nsec));
  }
  return best;
}

// The worst table found for the spec's excess loop (searched over two-level
// tables of 2^14 symbols at prob_bits 14 by its step count): 6536 symbols of
// q = 11 round to f = 3, 9848 of q = 1 are clamped to f = 1, qshift 0. The
// excess, 13072, goes one unit per step: 13072 scans of 2^14 symbols.
constexpr uint32_t kAdvQshift = 0, kAdvProbBits = 14;
std::vector<uint8_t> adversarial_q() {
  std::vector<uint8_t> q(1u << 14, 1);
  std::fill(q.begin(), q.begin() + 6536, uint8_t(11));
  return q;
}

// LSB-first bit writer (the table bit-stream of spec section 5), appending to out.
struct BitWriter {
  std::vector<uint8_t>& out;
  uint32_t pos = 0;  // bits used in out.back()
  void bits(uint32_t v, uint32_t k) {
    for (uint32_t i = 0; i < k; ++i) {
      if (pos % 8 == 0) out.push_back(0);
      out.back() = uint8_t(out.back() | ((v >> i) & 1u) << (pos % 8));
      ++pos;
    }
  }
  void eg(uint32_t u, uint32_t k) {  // Exp-Golomb of order k
    uint32_t z = 0;
    while (u >= (1u << (z + 1 + k)) - (1u << k)) ++z;
    bits(0, z);
    bits(1, 1);
    bits(u - ((1u << (z + k)) - (1u << k)), z + k);
  }
};

// One-lane BF16 payload (k = 5, joint = 1: 2^14 symbols, 2 raw bits; up to 64
// elements: one sub-stream, no word counts) carrying table q at prob_bits 14,
// written by hand from the spec: frequencies by the spec's own loop
// (normalize_freqs_ref), rANS encoding as in section 8.
std::vector<uint8_t> one_lane_payload(const std::vector<uint8_t>& q, const std::vector<uint16_t>& vals) {
  using namespace fans::layout;
  const Header h{5, 1, kAdvQshift, 6, kAdvProbBits, 0};
  Geometry g{};
  Split s{};
  REQUIRE(geometry_for(uint32_t(DType::BF16), &g));
  REQUIRE(make_split(g, h.k, h.joint, &s));
  REQUIRE(q.size() == (size_t(1) << s.S));
  REQUIRE((!vals.empty() && vals.size() <= 64));
  std::vector<uint8_t> out = {uint8_t(kModeRans), pack_b1(h), pack_b2(h), pack_b3(h)};
  BitWriter bw{out};
  bw.bits(0, s.S);  // lo
  bw.bits(uint32_t(q.size() - 1), s.S);
  int prev = 0;
  for (uint8_t x : q) {
    const int d = int(x) - prev;
    bw.eg(d >= 0 ? 2u * uint32_t(d) : 2u * uint32_t(-d) - 1u, h.egk);
    prev = x;
  }
  std::vector<uint32_t> f(q.size()), c(q.size() + 1, 0);
  REQUIRE(normalize_freqs_ref(q.data(), uint32_t(q.size()), h.qshift, h.prob_bits, f.data()));
  for (size_t i = 0; i < q.size(); ++i) c[i + 1] = c[i] + f[i];
  uint32_t x = kLowerBound;
  std::vector<uint16_t> words;  // pushed last symbol first; the decoder pops them
  for (size_t t = vals.size(); t-- > 0;) {
    const uint32_t sym = symbol_of(s, vals[t]), fs = f[sym];
    REQUIRE(fs > 0);
    if (x >= (uint64_t(1) << (32 - h.prob_bits)) * fs) { words.push_back(uint16_t(x)); x >>= 16; }
    x = ((x / fs) << h.prob_bits) + x % fs + c[sym];
  }
  for (int b = 0; b < 4; ++b) out.push_back(uint8_t(x >> (8 * b)));
  for (size_t i = words.size(); i-- > 0;) { out.push_back(uint8_t(words[i])); out.push_back(uint8_t(words[i] >> 8)); }
  std::vector<uint8_t> plane((vals.size() * s.w + 7) / 8, 0);
  for (size_t t = 0; t < vals.size(); ++t) {
    const uint64_t r = raw_of(s, vals[t]);
    for (uint32_t j = 0; j < s.w; ++j) {
      const size_t bit = t * s.w + j;
      plane[bit / 8] = uint8_t(plane[bit / 8] | ((r >> j) & 1u) << (bit % 8));
    }
  }
  out.insert(out.end(), plane.begin(), plane.end());
  return out;
}

}  // namespace

TEST_SUITE("float_ans") {

TEST_CASE("Exp-Golomb codes: BitWriter and BitReader agree at every order, short and long codes, in a stream") {
  // BitWriter::eg writes a short code (2z + 1 + k <= 32 bits) with one put
  // and a longer one in pieces; the reader takes up to 24 prefix zeros
  std::vector<std::pair<uint32_t, uint32_t>> vals;  // (u, k)
  std::mt19937 rng(5);
  for (uint32_t k = 0; k <= 7; ++k) {
    for (uint32_t u : {0u, 1u, 2u, 3u, 100u, 65535u, 65536u, (1u << 20) - 1u, 1u << 20, (1u << 24) + 5u})
      vals.push_back({u, k});
    for (int i = 0; i < 200; ++i) vals.push_back({uint32_t(rng() >> (rng() % 31)) & ((1u << 25) - 1u), k});
  }
  std::vector<uint8_t> out{0xA5};  // written after what is there
  wc::BitWriter bw(out);
  for (const auto& [u, k] : vals) bw.eg(u, k);
  bw.put(5, 3);
  bw.flush();
  wc::fans::layout::BitReader br{out.data() + 1, out.size() - 1, 0, false};
  for (const auto& [u, k] : vals) {
    CAPTURE(u);
    CAPTURE(k);
    REQUIRE(br.eg(k) == u);
  }
  CHECK(br.bits(3) == 5u);
  CHECK_FALSE(br.bad);
  CHECK(out[0] == 0xA5);
}

TEST_CASE("supports") {
  CHECK(fans::supports(DType::BF16));
  CHECK(fans::supports(DType::F16));
  CHECK(fans::supports(DType::F32));
  CHECK(fans::supports(DType::F8_E4M3));
  CHECK(fans::supports(DType::F8_E5M2));
  CHECK_FALSE(fans::supports(DType::I32));
  CHECK_FALSE(fans::supports(DType::F64));
  std::vector<uint8_t> out;
  uint8_t x[3] = {1, 2, 3};
  CHECK_THROWS_AS(fans::encode(DType::I32, x, 3, out), wc::Error);
  CHECK_THROWS_AS(fans::encode(DType::BF16, x, 3, out), wc::Error);  // partial element
}

TEST_CASE("all 16-bit patterns, every configuration") {
  auto raw = all_patterns16();
  for (DType t : {DType::BF16, DType::F16}) {
    roundtrip(t, raw);
    // shuffled, so sub-streams mix everything
    auto sh = raw;
    std::mt19937 rng(7);
    for (size_t i = 65535; i > 0; --i) {
      size_t j = rng() % (i + 1);
      std::swap(sh[2 * i], sh[2 * j]);
      std::swap(sh[2 * i + 1], sh[2 * j + 1]);
    }
    for (int joint = 0; joint < 2; ++joint)
      for (int k = 0; k <= 5; ++k) {
        fans::Params p = coded();
        p.k = k;
        p.joint = joint;
        p.prob_bits = 14;  // the alphabet is large
        auto enc = roundtrip(t, sh, p);
        const fans::ChunkInfo ci = info_of(t, enc, sh.size());
        CHECK(ci.mode == 1);
        CHECK(ci.k == unsigned(k));
        CHECK(ci.joint == unsigned(joint));
      }
  }
}

TEST_CASE("alphabets of more than 256 symbols keep the AVX2 kernel and give the same bits") {
  // Values over many octaves (as in Whisper's k = 3 chunks): with the sign
  // and 3 mantissa bits in the symbol the table spans more than 256 symbols
  // at prob_bits 12: packed entries with a wider index field (or wide tables).
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.f, 1.f);
  for (DType t : {DType::BF16, DType::F16}) {
    std::vector<float> w(1 << 16);
    for (auto& x : w) x = std::exp(2.5f * g(rng)) * (g(rng) < 0 ? -1.f : 1.f) * 1e-2f;
    std::vector<uint8_t> raw = bf16_bytes(w);
    if (t == DType::F16)  // F16 bit patterns: exponents 1..30 around 15, any mantissa, either sign
      for (size_t i = 0; i < w.size(); ++i) {
        const int e = std::clamp(int(std::lround(15 + 4 * g(rng))), 1, 30);
        const uint16_t h = uint16_t((rng() & 1) << 15 | e << 10 | (rng() & 0x3FF));
        std::memcpy(&raw[2 * i], &h, 2);
      }
    for (int joint = 0; joint < 2; ++joint) {
      fans::Params p = coded();
      p.k = joint ? 3 : 4;  // the sign raw halves the alphabet
      p.joint = joint;
      p.prob_bits = 12;
      p.sub_bits = 9;  // 128 lanes: whole AVX2 vectors
      auto enc = roundtrip(t, raw, p);  // every kernel and the reference decoder
      fans::layout::ChunkLayout L;
      std::vector<uint8_t> q(fans::layout::kMaxAlphabet);
      REQUIRE(fans::layout::parse_chunk(uint32_t(t), enc.data(), enc.size(), raw.size(), &L, q.data()));
      CHECK(L.mode == 1);
      CHECK(L.count > 256);
      CHECK(L.h.prob_bits == 12);
      CHECK(L.nsub % 8 == 0);
    }
  }
}

TEST_CASE("large alphabets: packed entries with narrower frequency fields, wide tables under a dominant symbol") {
  // More than 256 symbols: while the largest frequency fits 11 bits (or 10)
  // the packed entry has 10 (or 12) bits for the symbol index; a symbol
  // taking more than half the slots needs 12 bits, and then the table is
  // wide. Both decode the same bits on every kernel.
  std::mt19937 rng(23);
  std::normal_distribution<float> g(0.f, 1.f);
  for (DType t : {DType::BF16, DType::F16}) {
    for (int dominant = 0; dominant < 2; ++dominant) {
      std::vector<float> w(1 << 16);
      for (auto& x : w) {
        x = std::exp(2.5f * g(rng)) * (g(rng) < 0 ? -1.f : 1.f) * 1e-2f;
        if (dominant && rng() % 10 < 7) x = 0.25f;  // 70% one value
      }
      std::vector<uint8_t> raw(2 * w.size());
      for (size_t i = 0; i < w.size(); ++i) {
        uint16_t h = f32_to_bf16(w[i]);
        if (t == DType::F16) {  // exponents 1..30 around 15, any mantissa, either sign
          const int e = std::clamp(int(std::lround(15 + 4 * g(rng))), 1, 30);
          h = w[i] == 0.25f ? uint16_t(0x3400) : uint16_t((rng() & 1) << 15 | e << 10 | (rng() & 0x3FF));
        }
        std::memcpy(&raw[2 * i], &h, 2);
      }
      for (int sub_bits : {9, 6}) {  // 128 lanes, and partial vectors with scalar tails
        fans::Params p = coded();
        p.k = 3;
        p.joint = 1;
        p.prob_bits = 12;
        p.sub_bits = sub_bits;
        auto enc = roundtrip(t, raw, p);  // every kernel and the reference decoder
        fans::layout::ChunkLayout L;
        std::vector<uint8_t> q(fans::layout::kMaxAlphabet);
        REQUIRE(fans::layout::parse_chunk(uint32_t(t), enc.data(), enc.size(), raw.size(), &L, q.data()));
        REQUIRE(L.mode == 1);
        CHECK(L.count > 256);
        std::vector<uint32_t> f(L.count);
        REQUIRE(fans::layout::normalize_freqs_ref(q.data(), L.count, L.h.qshift, L.h.prob_bits, f.data()));
        const uint32_t fmax = *std::max_element(f.begin(), f.end());
        if (dominant) CHECK(fmax > 2048);  // wide
        else CHECK(fmax <= 2048);           // packed, index of 10 bits or more
        if (!dominant && L.count > 1024) CHECK(fmax <= 1024);
      }
    }
  }
}

TEST_CASE("the CPU decoder's chunk parser equals layout::parse_chunk, also on damaged payloads") {
  // FastTableParser reads the table through a 64-bit window while 8 bytes
  // remain: same layout, same table, same failures as the bit reader
  std::mt19937 rng(77);
  std::normal_distribution<float> g(0.f, 1.f);
  int compared = 0, ok = 0;
  auto compare = [&](DType t, const std::vector<uint8_t>& enc, size_t dst_n, bool trim) {
    fans::layout::ChunkLayout a{}, b{};
    std::vector<uint8_t> qa(fans::layout::kMaxAlphabet, 0x5A), qb(fans::layout::kMaxAlphabet, 0x5A);
    const bool ra = fans::layout::parse_chunk(uint32_t(t), enc.data(), enc.size(), dst_n, &a, qa.data(), trim);
    const bool rb = fans::detail::parse_chunk_cpu(uint32_t(t), enc.data(), enc.size(), dst_n, &b, qb.data(), trim);
    REQUIRE(ra == rb);
    ++compared;
    if (!ra) return;
    ++ok;
    CHECK(a.mode == b.mode);
    if (a.mode != 1) return;
    CHECK((a.lo == b.lo && a.count == b.count && a.table_n == b.table_n && a.states_off == b.states_off &&
           a.streams_off == b.streams_off && a.streams_n == b.streams_n && a.plane_off == b.plane_off &&
           a.nsub == b.nsub && a.h.egk == b.h.egk));
    CHECK(std::equal(qa.begin(), qa.begin() + a.count, qb.begin()));
  };
  for (int it = 0; it < 300; ++it) {
    const DType t = it % 3 == 0 ? DType::F16 : it % 3 == 1 ? DType::BF16 : DType::F32;
    const size_t es = t == DType::F32 ? 4 : 2, n = 1 + rng() % 3000;
    std::vector<uint8_t> raw(n * es);
    const float spread = 0.5f + float(rng() % 4);
    for (size_t i = 0; i < n; ++i) {
      const float x = std::exp(spread * g(rng)) * (g(rng) < 0 ? -1.f : 1.f) * 1e-2f;
      if (es == 2) {
        const uint16_t h = t == DType::BF16 ? f32_to_bf16(x) : uint16_t(rng() & 0xBFFF);
        std::memcpy(&raw[2 * i], &h, 2);
      } else {
        std::memcpy(&raw[4 * i], &x, 4);
      }
    }
    fans::Params p = coded();
    p.k = int(rng() % 4);
    p.joint = int(rng() % 2);
    p.qshift = int(rng() % 4);
    std::vector<uint8_t> enc;
    try {
      fans::encode_with(t, raw.data(), raw.size(), enc, p);
    } catch (const Error&) {
      continue;  // no valid configuration for these knobs
    }
    compare(t, enc, raw.size(), false);
    for (int d = 0; d < 20; ++d) {  // damaged: table bits flipped, truncated, wrong size
      auto bad = enc;
      const size_t tb = std::min<size_t>(bad.size() - 1, 4 + rng() % 64);
      bad[tb] ^= uint8_t(1u << (rng() % 8));
      if (d % 4 == 1) bad.resize(4 + rng() % std::max<size_t>(1, bad.size() - 4));
      if (d % 4 == 2) bad[3] ^= uint8_t(1u << (rng() % 2));  // egk
      compare(t, bad, raw.size(), d % 4 == 3);
    }
  }
  MESSAGE(compared << " payloads, " << ok << " parsed");
  CHECK(ok > 300);
}

TEST_CASE("size_only: the mode byte and as many bytes as the payload takes, within 1%") {
  // the writer's plan prices FP8's per-element coding this way (never stored)
  int coded = 0;
  for (wc::DType t : {wc::DType::F8_E4M3, wc::DType::F8_E5M2, wc::DType::BF16, wc::DType::F16, wc::DType::F32}) {
    for (size_t n : {size_t(3000), size_t(40000), size_t(131072)}) {
      CAPTURE(static_cast<int>(t));
      CAPTURE(n);
      const std::vector<uint8_t> v = testdata::weights(t, n, 41);
      wc::fans::Params p;
      p.trim = true;
      std::vector<uint8_t> real, sized;
      wc::fans::encode_with(t, v.data(), v.size(), real, p);
      p.size_only = true;
      wc::fans::encode_with(t, v.data(), v.size(), sized, p);
      CHECK(sized[0] == real[0]);
      if (real[0] != wc::fans::layout::kModeRans) continue;  // raw: both stored the chunk as it is
      ++coded;
      // exact histograms (under 2^16 elements): within a few bytes; sampled: 1%
      const double tol = n < 65536 ? 0.001 : 0.01;
      CHECK(double(sized.size()) >= (1 - tol) * double(real.size()) - 16);
      CHECK(double(sized.size()) <= (1 + tol) * double(real.size()) + 16);
    }
  }
  CHECK(coded >= 12);
}

TEST_CASE("all 8-bit patterns") {
  std::vector<uint8_t> raw(256 * 5);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = uint8_t(i * 167 + (i >> 8));
  // every bit in the symbol (no raw plane: the payload ends with its words)
  // on fewer than 8 lanes (the register-state steps), read against a guard page
  for (size_t ne : {64, 200, 447}) {
    std::vector<uint8_t> part(raw.begin(), raw.begin() + ptrdiff_t(ne));
    fans::Params p = coded();
    p.k = 3;
    p.joint = 1;
    p.sub_bits = 6;
    auto enc = roundtrip(DType::F8_E4M3, part, p);
    const fans::ChunkInfo ci = info_of(DType::F8_E4M3, enc, part.size());
    CHECK(ci.plane_bytes == 0);
    CHECK(ci.nsub < 8);
  }
  for (DType t : {DType::F8_E4M3, DType::F8_E5M2}) {
    roundtrip(t, raw);
    for (int joint = 0; joint < 2; ++joint)
      for (int k = 0; k <= 3; ++k) {
        if (t == DType::F8_E5M2 && k > 2) continue;
        fans::Params p = coded();
        p.k = k;
        p.joint = joint;
        p.sub_bits = 6;
        roundtrip(t, raw, p);
      }
  }
}

TEST_CASE("special values") {
  // BF16 / F16: +0 -0 subnormals +-inf NaNs with payloads, mixed with normal values
  std::vector<uint16_t> sp16 = {0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x7F80, 0xFF80, 0x7FC0,
                                0x7F81, 0xFFFF, 0x7FFF, 0x3F80, 0xBF80, 0x7C00, 0xFC00, 0x7E01, 0x03FF};
  std::vector<uint8_t> raw;
  auto w = weights(5000, 3);
  for (size_t i = 0; i < w.size(); ++i) {
    uint16_t v = (i % 7 == 0) ? sp16[i % sp16.size()] : f32_to_bf16(w[i]);
    raw.push_back(uint8_t(v));
    raw.push_back(uint8_t(v >> 8));
  }
  roundtrip(DType::BF16, raw, coded());
  roundtrip(DType::F16, raw, coded());
  // F32
  std::vector<uint32_t> sp32 = {0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x7F800000, 0xFF800000,
                                0x7FC00000, 0x7F800001, 0xFFFFFFFF, 0x3F800000};
  std::vector<uint8_t> r32;
  for (size_t i = 0; i < w.size(); ++i) {
    uint32_t v;
    std::memcpy(&v, &w[i], 4);
    if (i % 5 == 0) v = sp32[i % sp32.size()];
    for (int b = 0; b < 4; ++b) r32.push_back(uint8_t(v >> (8 * b)));
  }
  roundtrip(DType::F32, r32);
  for (int joint = 0; joint < 2; ++joint)
    for (int k = 0; k <= 5; ++k) {
      fans::Params p = coded();
      p.k = k;
      p.joint = joint;
      p.sub_bits = 8;
      roundtrip(DType::F32, r32, p);
    }
}

TEST_CASE("tiny chunks") {
  for (DType t : {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::F8_E5M2}) {
    for (size_t ne : {0, 1, 2, 7, 8, 9, 15, 17}) {
      std::vector<uint8_t> raw(ne * esize(t));
      for (size_t i = 0; i < raw.size(); ++i) raw[i] = uint8_t(i * 31 + 60);
      auto enc = roundtrip(t, raw);
      if (ne == 0) CHECK(enc.size() == 1);
      if (ne > 0) {
        auto enc2 = roundtrip(t, raw, coded());
        CHECK(enc2[0] == 1);
      }
    }
  }
}

TEST_CASE("one exponent value, one value, uniform exponents") {
  // every value has the same exponent
  std::mt19937 rng(11);
  std::vector<uint8_t> raw(20000 * 2);
  for (size_t i = 0; i < 20000; ++i) {
    uint16_t v = uint16_t((0x3F << 7 | (rng() & 0x7F)) | ((rng() & 1) << 15));
    raw[2 * i] = uint8_t(v);
    raw[2 * i + 1] = uint8_t(v >> 8);
  }
  auto enc = roundtrip(DType::BF16, raw, coded());
  info_of(DType::BF16, enc, raw.size());  // it parses
  // all identical values: a single-symbol table, empty streams
  std::vector<uint8_t> same(50000 * 2);
  for (size_t i = 0; i < 50000; ++i) { same[2 * i] = 0x80; same[2 * i + 1] = 0x3F; }
  fans::Params pj = coded();
  pj.joint = 1;
  pj.k = 5;
  pj.prob_bits = 14;
  auto e1 = roundtrip(DType::BF16, same, pj);
  const fans::ChunkInfo c1 = info_of(DType::BF16, e1, same.size());
  CHECK(c1.stream_bytes == 0);                 // one symbol costs nothing
  CHECK(c1.plane_bytes == 50000 * 2 / 8);      // 2 raw mantissa bits left
  auto e2 = roundtrip(DType::BF16, same);
  CHECK(e2.size() < same.size() / 7);
  // the same in a large (sampled) chunk: one symbol of frequency M, both encoders
  std::vector<uint8_t> big(200000 * 2);
  for (size_t i = 0; i < 200000; ++i) { big[2 * i] = 0x80; big[2 * i + 1] = 0x3F; }
  for (int which : {0, -1}) {
    fans::detail::force_encoder(which);
    auto e3 = roundtrip(DType::BF16, big, coded());
    const fans::ChunkInfo c3 = info_of(DType::BF16, e3, big.size());
    CHECK(c3.stream_bytes == 0);
  }
  fans::detail::force_encoder(-1);
  // all exponents equally likely
  std::vector<uint8_t> u(65536 * 2);
  for (size_t i = 0; i < 65536; ++i) {
    uint16_t v = uint16_t(((i % 256) << 7) | (rng() & 0x807F));
    u[2 * i] = uint8_t(v);
    u[2 * i + 1] = uint8_t(v >> 8);
  }
  roundtrip(DType::BF16, u, coded());
  auto eu = roundtrip(DType::BF16, u);
  CHECK(eu.size() <= u.size() + 1);
}

TEST_CASE("sub-stream boundaries") {
  auto w = weights(3 * 4096 + 100, 5);
  for (int b : {6, 8, 12}) {
    const size_t S = size_t(1) << b;
    for (size_t ne : {S - 1, S, S + 1, 8 * S - 1, 8 * S, 8 * S + 1, 9 * S + 3, 16 * S + 1}) {
      if (ne > w.size()) continue;
      std::vector<float> v(w.begin(), w.begin() + ne);
      auto raw = bf16_bytes(v);
      fans::Params p = coded();
      p.sub_bits = b;
      auto enc = roundtrip(DType::BF16, raw, p);
      const fans::ChunkInfo ci = info_of(DType::BF16, enc, raw.size());
      CHECK(ci.nsub == (ne + S - 1) / S);
    }
  }
}

TEST_CASE("weights compress; every k and prob_bits round-trips") {
  auto w = weights(100000, 9);
  auto raw = bf16_bytes(w);
  auto enc = roundtrip(DType::BF16, raw);
  CHECK(enc.size() * 8.0 / 100000 < 11.0);
  auto st = fans::entropy_stats(DType::BF16, raw.data(), raw.size());
  CHECK(st.elements == 100000);
  CHECK(st.achieved_bpw == doctest::Approx(enc.size() * 8.0 / 100000));
  CHECK(st.achieved_bpw < st.h_exp_bound);
  CHECK(st.achieved_bpw < st.h_values + 0.1);
  for (int pb = 10; pb <= 14; ++pb)
    for (int k = 0; k <= 4; k += 2) {
      fans::Params p = coded();
      p.prob_bits = pb;
      p.k = k;
      roundtrip(DType::BF16, raw, p);
    }
}

TEST_CASE("entropy counter: known values, and chunk by chunk equals whole") {
  const auto all = all_patterns16();  // every value once: 16 bits each, uniform exponents
  fans::EntropyCounter a(DType::BF16);
  a.add(all.data(), all.size());
  CHECK(a.elements() == 65536);
  CHECK(a.h_values() == doctest::Approx(16.0));
  CHECK(a.h_exp_bound() == doctest::Approx(16.0));  // H(exp) = 8, plus 8 raw bits
  const auto raw = bf16_bytes(weights(50000, 4));
  fans::EntropyCounter whole(DType::BF16), parts(DType::BF16);
  whole.add(raw.data(), raw.size());
  for (size_t off = 0; off < raw.size(); off += 2 * 777) parts.add(raw.data() + off, std::min<size_t>(2 * 777, raw.size() - off));
  CHECK(parts.elements() == whole.elements());
  CHECK(parts.h_values() == whole.h_values());
  CHECK(parts.h_exp_bound() == whole.h_exp_bound());
  CHECK(whole.h_values() < whole.h_exp_bound());
  const auto st = fans::entropy_stats(DType::BF16, raw.data(), raw.size());
  CHECK(st.h_values == whole.h_values());
  fans::EntropyCounter empty(DType::F32);
  CHECK(empty.h_values() == 0.0);
  CHECK_THROWS_AS(fans::EntropyCounter(DType::I32), Error);
  CHECK_THROWS_AS(whole.add(raw.data(), 3), Error);
}

TEST_CASE("per-thread function equals the CPU decoder") {
  // Mimic the GPU kernel: parse, normalise, build the slot tables, walk the
  // group word counts, then run every group as a warp: each lane decodes with
  // lane_decode, the lanes needing a word take consecutive words (ballot +
  // popc prefix), all lanes step together.
  using namespace fans::layout;
  for (int sb : {9, 6}) {
    auto w = weights(70000 + 13 * sb, 21, 0.05f);
    auto raw = bf16_bytes(w);
    fans::Params p = coded();
    p.sub_bits = sb;  // 137 lanes (5 groups, last partial) / 1095 lanes
    std::vector<uint8_t> enc;
    fans::encode_with(DType::BF16, raw.data(), raw.size(), enc, p);
    std::vector<uint8_t> cpu(raw.size()), gpu(raw.size(), 0), ref(raw.size(), 0);
    REQUIRE(fans::decode(DType::BF16, enc.data(), enc.size(), cpu.data(), cpu.size()) == Errc::ok);
    REQUIRE(fans::decode_reference(DType::BF16, enc.data(), enc.size(), ref.data(), ref.size()) == Errc::ok);
    ChunkLayout L;
    std::vector<uint8_t> q(kMaxAlphabet);
    REQUIRE(parse_chunk(uint32_t(DType::BF16), enc.data(), enc.size(), raw.size(), &L, q.data()));
    REQUIRE(check_counts(enc.data(), L));
    CHECK(L.ngroups == (L.nsub + 31) / 32);
    std::vector<uint32_t> f(L.count), slot(1u << L.h.prob_bits);
    std::vector<uint16_t> vals(1u << L.h.prob_bits);
    std::vector<uint16_t> order(norm_order_entries(L.h.prob_bits)), counts(norm_count_entries(L.h.prob_bits));
    REQUIRE(normalize_freqs(q.data(), L.count, L.h.qshift, L.h.prob_bits, f.data(), order.data(), counts.data()));
    uint64_t fs = 0;
    for (auto x : f) fs += x;
    CHECK(fs == (1u << L.h.prob_bits));
    build_slots(f.data(), L.count, L.lo, L.s, slot.data(), vals.data());
    uint64_t off = L.streams_off, sum = 0;
    for (uint64_t g = 0; g < L.ngroups; ++g) {
      const uint32_t c = word_count(enc.data(), L, g, sum);
      const uint64_t j0 = g * kGroupLanes;
      const uint32_t lanes = group_lanes(L, g);
      uint32_t x[32];
      bool ok[32];
      for (uint32_t l = 0; l < 32; ++l) {
        ok[l] = true;
        x[l] = l < lanes ? load32(enc.data() + L.states_off + 4 * (j0 + l)) : kLowerBound;
      }
      uint64_t used = 0;
      const uint64_t steps = substream_len(L, j0);  // lane 0 is the longest
      for (uint64_t t = 0; t < steps; ++t) {
        uint32_t need[32], ballot = 0;
        for (uint32_t l = 0; l < 32; ++l) {  // "threads"
          const uint64_t i = t * L.nsub + j0 + l;
          need[l] = l < lanes && i < L.n &&
                    lane_decode(L.s, L.h.prob_bits, slot.data(), vals.data(), x[l], i, enc.data() + L.plane_off,
                                L.plane_n, gpu.data());
          ballot |= need[l] << l;
        }
        for (uint32_t l = 0; l < 32; ++l)
          if (need[l])
            lane_refill(x[l], enc.data() + off, c, used + __builtin_popcount(ballot & ((1u << l) - 1u)), ok[l]);
        used += __builtin_popcount(ballot);
      }
      for (uint32_t l = 0; l < lanes; ++l) CHECK((ok[l] && x[l] == kLowerBound));
      CHECK(used == c);
      off += 2 * uint64_t(c);
      sum += c;
    }
    CHECK(off == L.plane_off);
    CHECK(gpu == cpu);
    CHECK(ref == cpu);
    CHECK(gpu == raw);
  }
}

TEST_CASE("table normalisation equals the spec's loop (normalize_freqs_ref)") {
  using namespace fans::layout;
  std::mt19937 rng(2024);
  int cases = 0, with_excess = 0, failed = 0, many_steps = 0;
  // f is compared everywhere, also after a failure (both leave it the same);
  // 0xA5A5 marks entries neither writes. F = u32 (tests) and u16 (decoders).
  auto compare = [&](const std::vector<uint8_t>& q, uint32_t qshift, uint32_t pb) {
    const uint32_t n = uint32_t(q.size());
    std::vector<uint32_t> fr(n, 0xA5A5), fn(n, 0xA5A5), fe(n);
    std::vector<uint16_t> f16(n, 0xA5A5), order(norm_order_entries(pb)), counts(norm_count_entries(pb));
    uint64_t steps = 0, excess = 0;
    const bool rr = normalize_freqs_ref(q.data(), n, qshift, pb, fr.data(), &steps);
    const bool rn = normalize_freqs(q.data(), n, qshift, pb, fn.data(), order.data(), counts.data());
    const bool r16 = normalize_freqs(q.data(), n, qshift, pb, f16.data(), order.data(), counts.data());
    CHECK(rn == rr);
    CHECK(r16 == rr);
    CHECK(fn == fr);
    CHECK(std::equal(f16.begin(), f16.end(), fr.begin()));
    if (normalize_first_pass(q.data(), n, qshift, pb, fe.data(), &excess) && excess > 0) ++with_excess;
    failed += !rr;
    many_steps += steps >= 100;
    ++cases;
  };
  for (int it = 0; it < 1500; ++it) {
    // n in [1, 2^14]: uniform, or log-uniform-ish (small alphabets too)
    const uint32_t span = (it / 6) % 2 ? 1u << 14 : 1u << (1 + rng() % 14);
    const uint32_t n = 1 + uint32_t(rng() % span);
    const uint32_t pb = 10 + uint32_t(rng() % 5), qshift = uint32_t(rng() % 4);
    const uint32_t zeros = uint32_t(rng() % 100), tiny = uint32_t(rng() % 100), lvl = 1 + uint32_t(rng() % 40);
    std::vector<uint8_t> q(n);
    switch (it % 6) {
      case 0:  // zeros, tiny weights, a spread of others
        for (auto& x : q) {
          const uint32_t r = uint32_t(rng() % 100);
          x = r < zeros ? 0 : r < zeros + (100 - zeros) * tiny / 100 ? uint8_t(1 + rng() % 2) : uint8_t(1 + rng() % lvl);
        }
        break;
      case 1:  // all equal (n > M: more present than slots, must fail)
        std::fill(q.begin(), q.end(), uint8_t(1 + rng() % 255));
        break;
      case 2:  // one dominant symbol, the rest tiny or absent
        for (auto& x : q) x = rng() % 3 ? uint8_t(1) : uint8_t(0);
        q[rng() % n] = uint8_t(100 + rng() % 156);
        break;
      case 3:  // two close levels, like the adversarial table: long excess loops
        for (auto& x : q) x = rng() % 100 < tiny ? uint8_t(2 + lvl % 12) : uint8_t(1);
        break;
      case 4:  // any q, many absent
        for (auto& x : q) x = rng() % 2 ? uint8_t(0) : uint8_t(rng());
        break;
      default:  // a few heavy symbols over a large tiny background
        for (auto& x : q) x = uint8_t(1 + rng() % 2);
        for (int k = 0; k < 4; ++k) q[rng() % n] = uint8_t(20 + rng() % 60);
        break;
    }
    compare(q, qshift, pb);
  }
  // fixed corners
  compare(std::vector<uint8_t>(1u << 14, 0), 0, 14);                       // nothing present
  compare(std::vector<uint8_t>((1u << 10) + 1, 1), 0, 10);                 // present = M + 1
  compare(std::vector<uint8_t>(1u << 10, 1), 0, 10);                       // present = M, f = 1 each
  compare(std::vector<uint8_t>(1, 255), 3, 14);                            // one symbol
  compare(adversarial_q(), kAdvQshift, kAdvProbBits);
  for (uint32_t pb = 10; pb <= 14; ++pb) {                                 // M - 1 tiny, one heavy
    std::vector<uint8_t> q(1u << pb, 1);
    q[(1u << pb) / 3] = 255;
    compare(q, 0, pb);
  }
  MESSAGE(cases << " tables: " << with_excess << " with excess, " << failed << " failing, " << many_steps
                << " with >= 100 steps");
  CHECK(with_excess > cases / 3);  // the interesting path is well covered
  CHECK(failed > 50);
  CHECK(many_steps > 50);
}

TEST_CASE("table normalisation is linear-time on the worst table for the spec's loop") {
  using namespace fans::layout;
  const auto q = adversarial_q();
  const uint32_t n = uint32_t(q.size()), pb = kAdvProbBits;
  std::vector<uint32_t> fr(n), fn(n);
  std::vector<uint16_t> order(norm_order_entries(pb)), counts(norm_count_entries(pb));
  uint64_t steps = 0;
  bool rr = false, rn = false;
  const double t_ref = best_cpu_seconds(2, [&] {
    steps = 0;
    rr = normalize_freqs_ref(q.data(), n, kAdvQshift, pb, fr.data(), &steps);
  });
  const double t_new = best_cpu_seconds(20, [&] {
    rn = normalize_freqs(q.data(), n, kAdvQshift, pb, fn.data(), order.data(), counts.data());
  });
  MESSAGE("normalisation of the worst table: spec loop " << t_ref * 1e3 << " ms (" << steps
                                                          << " steps), linear " << t_new * 1e3 << " ms");
  CHECK(steps >= 13000);  // genuinely bad for the loop: >= 13000 scans of 2^14 symbols
  REQUIRE(rr);
  CHECK(rn);
  CHECK(fn == fr);
  CHECK(t_ref >= 20 * t_new);
}

TEST_CASE("a payload with the worst table decodes (and a corrupt one is rejected) in bounded time") {
  // 64 BF16 values (128 bytes) coded with the adversarial table, timed against
  // the same values with a benign table of the same size (every q = 1: f = 1
  // each, no excess), so only the normalisation differs.
  std::mt19937 rng(31);
  std::vector<uint16_t> vals(64);
  for (auto& v : vals) v = uint16_t(rng());
  std::vector<uint8_t> raw(vals.size() * 2);
  std::memcpy(raw.data(), vals.data(), raw.size());  // little-endian host
  const auto adv = one_lane_payload(adversarial_q(), vals);
  const auto flat = one_lane_payload(std::vector<uint8_t>(1u << 14, 1), vals);
  const fans::ChunkInfo ci = info_of(DType::BF16, adv, raw.size());
  CHECK(ci.prob_bits == 14);
  auto bad = adv;  // initial state L - 1 (< L: invalid); it follows the table
  bad[ci.table_bytes] = 0xFF, bad[ci.table_bytes + 1] = 0xFF, bad[ci.table_bytes + 2] = 0, bad[ci.table_bytes + 3] = 0;
  std::vector<uint8_t> out(raw.size());
  CHECK(fans::decode_reference(DType::BF16, adv.data(), adv.size(), out.data(), out.size()) == Errc::ok);
  CHECK(out == raw);
  Errc e_adv = Errc::codec, e_flat = Errc::codec, e_bad = Errc::ok;
  const double t_flat = best_cpu_seconds(10, [&] {
    e_flat = fans::decode(DType::BF16, flat.data(), flat.size(), out.data(), out.size());
  });
  CHECK(e_flat == Errc::ok);
  CHECK(out == raw);
  std::fill(out.begin(), out.end(), uint8_t(0));
  const double t_adv = best_cpu_seconds(10, [&] {
    e_adv = fans::decode(DType::BF16, adv.data(), adv.size(), out.data(), out.size());
  });
  CHECK(e_adv == Errc::ok);
  CHECK(out == raw);
  const double t_bad = best_cpu_seconds(10, [&] {
    e_bad = fans::decode(DType::BF16, bad.data(), bad.size(), out.data(), out.size());
  });
  CHECK(e_bad == Errc::codec);
  MESSAGE("decode of " << adv.size() << "-byte payloads for 128 bytes: flat table " << t_flat * 1e3
                       << " ms, worst table " << t_adv * 1e3 << " ms, corrupt " << t_bad * 1e3 << " ms");
  CHECK(t_adv < 5 * t_flat);
  CHECK(t_bad < 5 * t_flat);
}

TEST_CASE("spec test vector") {
  // spec/FLOAT_ANS.md section 9: BF16 {1, -1, 0, 1}, k=0 joint=1 qshift=0 sub_bits=12
  // (prob_bits 10: the encoder uses the smallest allowed precision for tiny chunks)
  const uint8_t raw[8] = {0x80, 0x3F, 0x80, 0xBF, 0x00, 0x00, 0x80, 0x3F};
  std::vector<uint8_t> expect = {0x01, 0x10, 0x06, 0x00,  // mode, k|joint<<4|qshift<<5, b-6|(pb-10)<<4, egk
                                 0x00, 0xFE, 0x59};       // lo=0 (9 bits), count-1=255 (9 bits), EG codes...
  expect.insert(expect.end(), 31, 0xFF);                  // q = 0 runs: one '1' bit each
  const uint8_t tail[] = {0xCF, 0x04,                     // q254 = 2, q255 = 1, zero padding
                          0x00, 0x26, 0x40, 0x00,         // state of the only sub-stream (no words)
                          0x00, 0x00, 0x00, 0x00};        // raw plane: 4 x 7 zero mantissa bits
  expect.insert(expect.end(), tail, tail + sizeof tail);
  fans::Params p = coded();
  p.k = 0;
  p.joint = 1;
  p.qshift = 0;
  std::vector<uint8_t> enc;
  fans::encode_with(DType::BF16, raw, 8, enc, p);
  CHECK(enc == expect);
  uint8_t out[8] = {};
  REQUIRE(fans::decode(DType::BF16, expect.data(), expect.size(), out, 8) == Errc::ok);
  CHECK(std::memcmp(out, raw, 8) == 0);
  auto bad = expect;
  bad[42] ^= 1;  // state changes: must not end at L
  CHECK(fans::decode(DType::BF16, bad.data(), bad.size(), out, 8) == Errc::codec);
}

TEST_CASE("corruption is detected or harmless") {
  auto w = weights(9000, 33);
  auto raw = bf16_bytes(w);
  std::vector<uint8_t> r32(w.size() * 4);
  std::memcpy(r32.data(), w.data(), r32.size());
  std::mt19937 rng(99);
  for (DType t : {DType::BF16, DType::F32}) {
    const auto& src = t == DType::BF16 ? raw : r32;
    for (int sb : {6, 12}) {
      fans::Params p = coded();
      p.sub_bits = sb;
      std::vector<uint8_t> enc;
      fans::encode_with(t, src.data(), src.size(), enc, p);
      std::vector<uint8_t> dst(src.size() + 16);
      int detected = 0, trials = 0;
      for (int it = 0; it < 300; ++it) {
        auto bad = enc;
        int kind = it % 3;
        size_t len = bad.size();
        if (kind == 0) {  // flip 1-3 bits
          int nf = 1 + int(rng() % 3);
          for (int f = 0; f < nf; ++f) {
            size_t pos = rng() % bad.size();
            // bias towards headers/tables where interesting checks live
            if (it % 2) pos %= std::min<size_t>(bad.size(), 300);
            bad[pos] ^= uint8_t(1u << (rng() % 8));
          }
        } else if (kind == 1) {  // truncate
          len = rng() % bad.size();
        } else {  // garbage over a region
          size_t a = rng() % bad.size(), l = 1 + rng() % 64;
          for (size_t i = a; i < std::min(bad.size(), a + l); ++i) bad[i] = uint8_t(rng());
        }
        // exact-size copy so ASan sees any over-read
        std::vector<uint8_t> in(bad.begin(), bad.begin() + len);
        Errc e1 = fans::decode(t, in.data(), in.size(), dst.data(), src.size());
        Errc e2 = fans::decode_reference(t, in.data(), in.size(), dst.data(), src.size());
        CHECK((e1 == Errc::ok || e1 == Errc::codec));
        CHECK(e1 == e2);
        ++trials;
        if (e1 != Errc::ok) ++detected;
        else if (in == enc) CHECK(std::memcmp(dst.data(), src.data(), src.size()) == 0);
      }
      CHECK(detected > trials / 2);
    }
  }
  // pure garbage and wrong sizes
  for (int it = 0; it < 200; ++it) {
    std::vector<uint8_t> g(rng() % 200);
    for (auto& b : g) b = uint8_t(rng());
    if (!g.empty()) g[0] = uint8_t(it & 1);
    std::vector<uint8_t> dst(1000);
    size_t dn = (rng() % 500) * 2;
    Errc e = fans::decode(DType::BF16, g.data(), g.size(), dst.data(), dn);
    CHECK((e == Errc::ok || e == Errc::codec));
  }
  std::vector<uint8_t> enc;
  fans::encode(DType::BF16, raw.data(), raw.size(), enc);
  std::vector<uint8_t> dst(raw.size() + 2);
  CHECK(fans::decode(DType::BF16, enc.data(), enc.size(), dst.data(), raw.size() - 2) == Errc::codec);
  CHECK(fans::decode(DType::BF16, enc.data(), enc.size(), dst.data(), raw.size() + 2) == Errc::codec);
  CHECK(fans::decode(DType::BF16, enc.data(), enc.size(), dst.data(), raw.size() - 1) == Errc::codec);
  CHECK(fans::decode(DType::I32, enc.data(), enc.size(), dst.data(), raw.size()) == Errc::codec);
  CHECK(fans::decode(DType::BF16, nullptr, 0, dst.data(), 0) == Errc::codec);
}

TEST_CASE("fast (AVX2/BMI2) and portable encoders give identical bytes") {
  const bool has_fast = fans::detail::fast_encoder();
  if (!has_fast) MESSAGE("no AVX2/BMI2 encoder on this CPU: comparing the portable encoder with itself");
  std::mt19937 rng(77);
  const DType types[] = {DType::F8_E4M3, DType::F8_E5M2, DType::F16, DType::BF16, DType::F32};
  const size_t sizes[] = {1, 7, 100, 4096, 64 * 32, 64 * 32 * 3 + 17, 4096 * 32, 4096 * 32 * 2 + 4096 * 5 + 3, 131072};
  for (DType t : types) {
    const size_t es = esize(t);
    for (size_t n : sizes) {
      // weight-like values (as bit patterns of the dtype: take the top bytes of f32)
      const auto w = weights(n, uint32_t(n) * 7 + uint32_t(es), 0.02f);
      std::vector<uint8_t> raw(n * es);
      for (size_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, &w[i], 4);
        if (es == 1) raw[i] = uint8_t((u >> 24) ^ uint8_t(rng() & 3));
        else if (es == 2) { uint16_t h = uint16_t(u >> 16); std::memcpy(&raw[2 * i], &h, 2); }
        else std::memcpy(&raw[4 * i], &u, 4);
      }
      for (int sub : {6, 12}) {
        fans::Params p = coded();
        p.sub_bits = sub;
        const auto enc = encode_both(t, raw, p);
        if (n > 1000 && sub == 6) check_decoders(t, enc, raw);
      }
      // forced configurations: every joint, a few k and prob_bits
      for (int joint = 0; joint < 2; ++joint)
        for (int pb : {10, 14}) {
          fans::Params p;  // raw fallback where the forced split is invalid
          p.joint = joint;
          p.k = joint ? 0 : 1;
          p.prob_bits = pb;
          p.sub_bits = 7;
          encode_both(t, raw, p);
        }
      // skewed: mostly one value (a frequency near M, many of frequency 1)
      std::vector<uint8_t> sk(n * es, 0);
      for (size_t i = 0; i < n * es; ++i)
        if (rng() % 64 == 0) sk[i] = uint8_t(rng());
      fans::Params p = coded();
      p.sub_bits = 6;
      encode_both(t, sk, p);
      // random bytes
      std::vector<uint8_t> rb(n * es);
      for (auto& c : rb) c = uint8_t(rng());
      encode_both(t, rb, coded());
    }
  }
  fans::detail::force_encoder(-1);
}

TEST_CASE("fast and portable encoders agree on partial groups, tiny chunks and every item type") {
  // A last group of 5 to 31 lanes runs the vector steps with 1-4 vectors,
  // the last one partly idle unless the count is a multiple of 8 (its
  // first step reading past the chunk's end when extra is 0: ASan checks
  // the copy that avoids it); 1 to 4 lanes run the portable steps; an
  // incomplete last step (n not a multiple of nsub) runs portable steps
  // before them.
  if (!fans::detail::fast_encoder()) MESSAGE("no AVX2/BMI2 encoder on this CPU: comparing the portable encoder with itself");
  std::mt19937 rng(909);
  const DType types[] = {DType::F8_E4M3, DType::F8_E5M2, DType::F16, DType::BF16, DType::F32, DType::U8, DType::U16};
  for (DType t : types) {
    if (!fans::supports(t)) continue;
    const size_t es = esize(t == DType::U16 ? DType::BF16 : t);
    std::vector<size_t> sizes = {1, 2, 3, 31, 33, 100, 1000};
    for (int sub : {6, 8})
      for (size_t lanes : {size_t(1), size_t(3), size_t(7), size_t(8), size_t(13), size_t(16), size_t(18), size_t(24),
                           size_t(31), size_t(32 + 8), size_t(32 + 16), size_t(32 + 22), size_t(64 + 24), size_t(64 + 5)})
        for (size_t extra : {size_t(0), size_t(1), size_t(7)}) {
          const size_t n = (lanes << sub) - (extra ? (size_t(1) << sub) - extra : 0);
          if (n > 0) sizes.push_back(n);
        }
    for (size_t n : sizes) {
      CAPTURE(int(t));
      CAPTURE(n);
      const auto w = weights(n, uint32_t(n) * 13 + uint32_t(es), 0.02f);
      std::vector<uint8_t> raw(n * es), sk(n * es);
      for (size_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, &w[i], 4);
        if (es == 1) raw[i] = uint8_t((u >> 24) ^ uint8_t(rng() & 3));
        else if (es == 2) { const uint16_t h = uint16_t(u >> 16); std::memcpy(&raw[2 * i], &h, 2); }
        else std::memcpy(&raw[4 * i], &u, 4);
        // skewed: mostly one value (a frequency above M / 2: states reach 2^31)
        if (rng() % 16 == 0) for (size_t b = 0; b < es; ++b) sk[es * i + b] = uint8_t(rng());
      }
      for (int sub : {6, 8}) {
        fans::Params p = coded();
        p.sub_bits = sub;
        const auto enc = encode_both(t, raw, p);
        if (n % 97 == 0 || n < 40 || n == (size_t(16) << sub) + 7) check_decoders(t, enc, raw);
        encode_both(t, sk, p);
        for (int joint = 0; joint < 2; ++joint) {
          fans::Params q;  // raw fallback where the forced split is invalid
          q.sub_bits = sub;
          q.joint = joint;
          q.k = joint;
          q.prob_bits = joint ? 14 : 12;
          encode_both(t, raw, q);
        }
      }
    }
  }
  fans::detail::force_encoder(-1);
}

TEST_CASE("unsampled chunks counted with few mantissa bits first: the same payload as counted in full") {
  // Few distinct values: every mantissa bit moved into the symbol keeps
  // paying, so the choice of k runs past the first count and recounts.
  std::mt19937 rng(4242);
  const DType types[] = {DType::F8_E4M3, DType::F16, DType::BF16, DType::F32, DType::U8, DType::U16};
  for (DType t : types) {
    const size_t es = esize(t == DType::U16 ? DType::BF16 : t);
    for (size_t n : {size_t(64), size_t(1000), size_t(4096), size_t(20000), size_t(65535)}) {
      for (int distinct : {0, 7, 300}) {
        CAPTURE(int(t));
        CAPTURE(n);
        CAPTURE(distinct);
        const auto w = weights(n, uint32_t(n) + uint32_t(distinct), 0.02f);
        std::vector<uint32_t> pool(distinct ? size_t(distinct) : 0);
        for (auto& v : pool) v = uint32_t(rng());
        std::vector<uint8_t> raw(n * es);
        for (size_t i = 0; i < n; ++i) {
          uint32_t u;
          std::memcpy(&u, &w[i], 4);
          if (distinct) u = pool[rng() % pool.size()];
          if (es == 2) u >>= 16;
          else if (es == 1) u >>= 24;
          std::memcpy(&raw[es * i], &u, es);
        }
        for (int which : {0, -1}) {
          fans::detail::force_encoder(which);
          std::vector<uint8_t> lazy, full, lazy0;
          fans::encode(t, raw.data(), raw.size(), lazy);
          fans::detail::force_lazy_k(0);  // count k = 0 first: recounts whenever k > 0 is looked at
          fans::encode(t, raw.data(), raw.size(), lazy0);
          fans::detail::force_lazy_k(64);  // always in full
          fans::encode(t, raw.data(), raw.size(), full);
          fans::detail::force_lazy_k(-1);
          CHECK(lazy == full);
          CHECK(lazy0 == full);
          if (which == -1 && n == 4096) check_decoders(t, lazy, raw);
        }
      }
    }
  }
  fans::detail::force_encoder(-1);
}

TEST_CASE("large chunks: values only outside the counted sample still round-trip") {
  // The encoder counts a sample of runs of 64 elements of a large chunk; keys
  // seen only in the other runs must still get a frequency. Put every rare
  // value (new exponents, the other sign, the extremes) only there.
  std::mt19937 rng(5);
  const DType types[] = {DType::F8_E4M3, DType::F8_E5M2, DType::F16, DType::BF16, DType::F32};
  for (DType t : types) {
    const size_t es = esize(t);
    for (size_t n : {size_t(65536), size_t(131072) + 77, size_t(300000)}) {
      const auto w = weights(n, uint32_t(n) + uint32_t(es), 0.02f);
      std::vector<uint8_t> raw(n * es);
      for (size_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, &w[i], 4);
        u &= 0x7FFFFFFFu;  // the sample sees positive values only
        const bool outside = !fans::detail::in_sample(i);
        if (outside && rng() % 500 == 0) u = uint32_t(rng()) | (rng() % 2 ? 0x80000000u : 0u);  // any key, any sign
        if (outside && i % 4099 == 0) u ^= 0x80000000u;
        if (es == 1) raw[i] = uint8_t(u >> 24);
        else if (es == 2) { const uint16_t h = uint16_t(u >> 16); std::memcpy(&raw[2 * i], &h, 2); }
        else std::memcpy(&raw[4 * i], &u, 4);
      }
      if (es == 1) raw[64 + 3] = 0xFF, raw[n - 1 - (fans::detail::in_sample(n - 1) ? 64 : 0)] = 0x80;  // extremes, outside
      std::vector<uint8_t> first;
      for (int which : {0, -1}) {
        fans::detail::force_encoder(which);
        fans::Params p = coded();
        std::vector<uint8_t> enc;
        fans::encode_with(t, raw.data(), raw.size(), enc, p);
        if (which == 0) first = enc;
        else CHECK(enc == first);  // the fast histogram finds the range beyond the sample's as the portable one
        check_decoders(t, enc, raw);
        const fans::ChunkInfo ci = info_of(t, enc, raw.size());
        CHECK(ci.mode == 1);
      }
    }
  }
  fans::detail::force_encoder(-1);
}

TEST_CASE("a small chunk with zeros: the chosen mantissa bits code within 1% of the best forced choice") {
  // A fused projection's bias whose middle third is zero (Whisper's key
  // projection has none): the zeros stretch every level's table from key 0
  // to the values' exponents, thousands of entries a few hundred of which
  // are present. Pricing a level's table by its present symbols alone chose
  // 7 mantissa bits there (9% over the best level on Whisper's bias).
  for (DType t : {DType::F16, DType::BF16, DType::F32}) {
    CAPTURE(static_cast<int>(t));
    const size_t n = 1152, es = esize(t);
    auto raw = testdata::weights(t, n, 71);
    std::fill(raw.begin() + ptrdiff_t(n / 3 * es), raw.begin() + ptrdiff_t(2 * n / 3 * es), uint8_t(0));
    fans::Params p = coded();
    std::vector<uint8_t> enc;
    fans::encode_with(t, raw.data(), raw.size(), enc, p);
    const size_t chosen = enc.size();
    size_t best = SIZE_MAX;
    p.allow_raw = true;  // a level beyond the chunk's stores it raw
    for (int k = 0; k <= 10; ++k) {
      p.k = k;
      fans::encode_with(t, raw.data(), raw.size(), enc, p);
      if (enc[0] == fans::layout::kModeRans) best = std::min(best, enc.size());
    }
    CHECK(double(chosen) <= 1.01 * double(best));
  }
}

TEST_CASE("large chunks with a forced symbol (FP8 pairs) are counted in full, not sampled") {
  // Half the elements outside the sample's runs take a value the sample
  // never sees: a sampled histogram would give its key a count of 1 (about
  // 14 bits an occurrence), the full count about a third of the chunk.
  const size_t n = 131072;
  std::vector<uint8_t> raw(2 * n);
  size_t b_count = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool b = !fans::detail::in_sample(i) && i % 2;
    b_count += b;
    const uint16_t v = b ? 0x4400 : 0x3C00;  // 4.0 or 1.0: different exponents
    std::memcpy(&raw[2 * i], &v, 2);
  }
  for (int which : {0, -1}) {
    fans::detail::force_encoder(which);
    fans::Params p = coded();
    p.k = 3;
    const auto enc = roundtrip(DType::F16, raw, p);
    const fans::ChunkInfo ci = info_of(DType::F16, enc, raw.size());
    // two symbols, the rarer at b_count / n: its entropy is the whole cost
    const double q = double(b_count) / double(n);
    const double ideal = double(n) * -(q * std::log2(q) + (1 - q) * std::log2(1 - q)) / 8;
    CHECK(double(ci.stream_bytes) < 1.05 * ideal + 256);
  }
  fans::detail::force_encoder(-1);
}

TEST_CASE("float-ans-trim: zero low mantissa bits left out; every decoder, both encoders agree") {
  std::mt19937 rng(2026);
  struct Case {
    DType t;
    unsigned zero_bits;  // low bits forced to zero in every element
  };
  const Case cases[] = {{DType::F32, 16}, {DType::F32, 13}, {DType::F32, 5}, {DType::F32, 23}, {DType::F16, 3},
                        {DType::BF16, 4}, {DType::F32, 0}};
  for (const Case& c : cases) {
    for (size_t n : {size_t(1), size_t(100), size_t(4096 * 3 + 17), size_t(131072)}) {
      CAPTURE(int(c.t));
      CAPTURE(c.zero_bits);
      CAPTURE(n);
      const size_t es = esize(c.t);
      const auto w = weights(n, uint32_t(n + c.zero_bits), 0.03f);
      std::vector<uint8_t> raw(n * es);
      for (size_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, &w[i], 4);
        if (es == 2) u >>= 16;
        u &= ~((1u << c.zero_bits) - 1u);
        if (c.zero_bits == 23) u &= 0xFF800000u;
        std::memcpy(&raw[es * i], &u, es);
      }
      std::vector<uint8_t> plain, trim, a, b;
      fans::detail::force_encoder(0);
      fans::encode(c.t, raw.data(), raw.size(), a, true);
      fans::detail::force_encoder(-1);
      fans::encode(c.t, raw.data(), raw.size(), trim, true);
      CHECK(a == trim);  // portable and fast encoders: the same bytes
      fans::encode(c.t, raw.data(), raw.size(), plain, false);
      CHECK(trim.size() <= plain.size());
      if (c.zero_bits >= 8 && n >= 4096) CHECK(trim.size() * 10 < plain.size() * 9);  // the bits are really gone
      std::vector<uint8_t> out1(raw.size()), out2(raw.size());
      REQUIRE(fans::decode(c.t, trim.data(), trim.size(), out1.data(), out1.size(), true) == Errc::ok);
      REQUIRE(fans::decode_reference(c.t, trim.data(), trim.size(), out2.data(), out2.size(), true) == Errc::ok);
      CHECK(out1 == raw);
      CHECK(out2 == raw);
      // a float-ans (not -trim) reader refuses a payload that left bits out
      if (trim.size() > 4 && trim[0] == 1 && (trim[3] >> 2) != 0)
        CHECK(fans::decode(c.t, trim.data(), trim.size(), out1.data(), out1.size(), false) == Errc::codec);
      // plain float-ans payloads decode the same under both codecs
      REQUIRE(fans::decode(c.t, plain.data(), plain.size(), out1.data(), out1.size(), true) == Errc::ok);
      CHECK(out1 == raw);
    }
  }
}

namespace {
// Decodes enc with the scalar kernel (0), the AVX2 kernel (2) and the
// reference decoder into guarded buffers: the same result code from all, the
// same bytes when ok, equal to raw when given, nothing written past dst_n.
void check_kernels_agree(DType t, const std::vector<uint8_t>& enc, size_t dst_n, bool trim,
                         const std::vector<uint8_t>* raw) {
  std::vector<uint8_t> a(dst_n + 64, 0xAA), b(dst_n + 64, 0x55), c(dst_n + 64, 0x33);
  fans::detail::force_kernel(0);
  const Errc es = fans::decode(t, enc.data(), enc.size(), a.data(), dst_n, trim);
  fans::detail::force_kernel(2);
  const Errc ev = fans::decode(t, enc.data(), enc.size(), b.data(), dst_n, trim);
  fans::detail::force_kernel(-1);
  const Errc er = fans::decode_reference(t, enc.data(), enc.size(), c.data(), dst_n, trim);
  CHECK(ev == es);
  CHECK(ev == er);
  CHECK((ev == Errc::ok || ev == Errc::codec));
  for (size_t i = dst_n; i < dst_n + 64; ++i) {
    REQUIRE(a[i] == 0xAA);
    REQUIRE(b[i] == 0x55);
  }
  if (ev == Errc::ok) {
    CHECK(std::memcmp(a.data(), b.data(), dst_n) == 0);
    CHECK(std::memcmp(c.data(), b.data(), dst_n) == 0);
    if (raw) CHECK(std::memcmp(raw->data(), b.data(), dst_n) == 0);
  }
}
}  // namespace

TEST_CASE("AVX2 kernel on every type, z > 0, partial groups, raw mode and damaged payloads equals the scalar decoders") {
  // F32 and z > 0 (float-ans-trim) chunks run the AVX2 kernel too; each
  // payload is decoded by the scalar and AVX2 kernels and the reference.
  std::mt19937 rng(4242);
  std::normal_distribution<float> g(0.f, 1.f);
  int coded_payloads = 0, kernel_payloads = 0;
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3}) {
    const size_t es = esize(t);
    for (unsigned zb : {0u, 3u, 9u, 16u}) {
      if (es == 2 && zb > 3) continue;
      if (es == 1 && zb > 0) continue;
      // n: whole groups of 32 lanes, partial last groups
      // (lanes 40 = 32 + 8, 48, 56, 45 = 32 + 13, 37 = 32 + 5; one group of 21,
      // 29, 11, 8 or 3 lanes), sub-streams of unequal lengths
      for (size_t n : {size_t(64) * 256, size_t(40) * 256 - 17, size_t(48) * 256 - 5, size_t(56) * 256 - 100,
                       size_t(45) * 256 - 3, size_t(37) * 256, size_t(20) * 256 + 1, size_t(29) * 256 - 255,
                       size_t(11) * 256 - 1, size_t(8) * 256 - 128, size_t(3) * 256}) {
        for (int variant = 0; variant < 3; ++variant) {
          CAPTURE(int(t));
          CAPTURE(zb);
          CAPTURE(n);
          CAPTURE(variant);
          std::vector<uint8_t> raw(n * es);
          for (size_t i = 0; i < n; ++i) {
            float x = variant == 2 ? std::exp(2.5f * g(rng)) * (g(rng) < 0 ? -1.f : 1.f) * 1e-2f : g(rng) * 0.02f;
            uint32_t u;
            std::memcpy(&u, &x, 4);
            if (es == 2) u = t == DType::BF16 ? f32_to_bf16(x) : uint32_t(rng() & 0xBFFF);
            if (es == 1) u = uint32_t(rng() % 7 == 0 ? rng() : (rng() & 0x87) | 0x30);
            u &= ~((1u << zb) - 1u);
            std::memcpy(&raw[es * i], &u, es);
          }
          fans::Params p = coded();
          p.trim = zb > 0;
          p.sub_bits = 8;
          if (variant == 1) { p.k = 1; p.joint = 0; }
          if (variant == 2 && es >= 2) { p.k = 3; p.joint = 1; p.prob_bits = 12; }  // > 256 symbols
          std::vector<uint8_t> enc;
          fans::encode_with(t, raw.data(), raw.size(), enc, p);
          REQUIRE(enc.size() > 4);
          REQUIRE(enc[0] == 1);
          ++coded_payloads;
          fans::layout::ChunkLayout L;
          std::vector<uint8_t> q(fans::layout::kMaxAlphabet);
          REQUIRE(fans::layout::parse_chunk(uint32_t(t), enc.data(), enc.size(), raw.size(), &L, q.data(), true));
          if (zb >= 3) CHECK(L.s.z > 0);
          if (L.nsub >= 8 && L.h.prob_bits <= 12) ++kernel_payloads;
          check_kernels_agree(t, enc, raw.size(), true, &raw);
          // damaged copies: bits flipped in the states, word counts, streams
          // and plane; truncated; words swapped
          for (int it = 0; it < 24; ++it) {
            auto bad = enc;
            const size_t lo = std::min(bad.size() - 1, size_t(L.states_off));
            if (it % 4 == 3) bad.resize(lo + rng() % (bad.size() - lo));
            else {
              const int nf = 1 + int(rng() % 3);
              for (int f = 0; f < nf; ++f) bad[lo + rng() % (bad.size() - lo)] ^= uint8_t(1u << (rng() % 8));
            }
            check_kernels_agree(t, bad, raw.size(), true, nullptr);
          }
        }
      }
    }
  }
  CHECK(coded_payloads > 0);
  CHECK(kernel_payloads * 2 > coded_payloads);
  // raw mode (incompressible bits) and the empty chunk
  for (DType t : {DType::F32, DType::BF16}) {
    std::vector<uint8_t> raw(4096 * esize(t));
    for (auto& b : raw) b = uint8_t(rng());
    std::vector<uint8_t> enc;
    fans::encode(t, raw.data(), raw.size(), enc, true);
    CHECK(enc[0] == 0);
    check_kernels_agree(t, enc, raw.size(), true, &raw);
    fans::encode(t, raw.data(), 0, enc, true);
    check_kernels_agree(t, enc, 0, true, &raw);
  }
}

}  // TEST_SUITE

namespace {
// Deterministic (library-independent) weight-like bit patterns: sign random,
// exponent bias - 6 - geometric, mantissa random; a few repeated values.
std::vector<uint8_t> golden_input(DType t, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  auto nx = [&] { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; };
  const size_t es = esize(t);
  std::vector<uint8_t> raw(n * es);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t r = nx();
    const uint32_t geo = uint32_t(__builtin_ctzll(r | (1ull << 40)));
    const uint32_t sign = uint32_t(r >> 63);
    uint32_t bits;
    if ((r >> 41 & 63) == 0) bits = 0;  // some zeros
    else if (t == DType::F32) bits = sign << 31 | (127 - 6 - geo) << 23 | uint32_t(nx() & 0x7FFFFF);
    else if (t == DType::BF16) bits = sign << 15 | (127 - 6 - geo) << 7 | uint32_t(nx() & 0x7F);
    else if (t == DType::F16) bits = sign << 15 | (15 - 6 - std::min(geo, 8u)) << 10 | uint32_t(nx() & 0x3FF);
    else bits = uint32_t(nx() & 0xFF);
    for (size_t b = 0; b < es; ++b) raw[i * es + b] = uint8_t(bits >> (8 * b));
  }
  return raw;
}
}  // namespace

// In the suite (it sat outside one, so ctest never ran it and its value went
// stale when the sampled histograms changed the encoder's choices).
TEST_SUITE("float_ans") {
TEST_CASE("encoder output matches golden hash (both encoders)") {
  const DType types[] = {DType::F8_E4M3, DType::F8_E5M2, DType::F16, DType::BF16, DType::F32};
  const size_t sizes[] = {1, 33, 1000, 64 * 32 * 3 + 17, 65536, 131072 + 5};
  for (int which : {0, -1}) {
    fans::detail::force_encoder(which);
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](const std::vector<uint8_t>& v) {
      for (uint8_t c : v) { h ^= c; h *= 1099511628211ull; }
      h ^= v.size(); h *= 1099511628211ull;
    };
    std::vector<uint8_t> enc;
    for (DType t : types)
      for (size_t n : sizes) {
        const auto raw = golden_input(t, n, n * 31 + esize(t));
        fans::encode(t, raw.data(), raw.size(), enc);
        mix(enc);
        fans::Params p;
        p.sub_bits = 7;
        p.prob_bits = 12;
        fans::encode_with(t, raw.data(), raw.size(), enc, p);
        mix(enc);
      }
    {  // a full default-size chunk of BF16, and every 16-bit pattern
      const auto raw = golden_input(DType::BF16, 131072, 99);
      fans::encode(DType::BF16, raw.data(), raw.size(), enc);
      mix(enc);
      const auto all = all_patterns16();
      fans::encode_with(DType::BF16, all.data(), all.size(), enc, coded());
      mix(enc);
    }
    MESSAGE("golden hash (encoder " << which << "): " << h);
    CHECK(h == 17039286672974711610ull);
  }
  fans::detail::force_encoder(-1);
}
}  // TEST_SUITE
