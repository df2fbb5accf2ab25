// Codec 8, float-ans-pairs (spec/FLOAT_ANS.md §2.4): mode 6 codes two FP8
// elements per rANS symbol, as one 16-bit word with both exponents on top,
// so that a decoder takes half the steps. The word map, the round trip of
// every byte pattern, the shift, the rules a decoder enforces, and the
// writer's choice.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "codec/auto_select.h"
#include "codec/channel_shift.h"
#include "codec/codec.h"
#include "codec/fp8_pairs.h"
#include "lib/api.h"
#include "chunk_coding.h"
#include "packed_check.h"
#include "st_builder.h"
#include "test_util.h"
#include "weights_gen.h"

using wc::CodecId;
using wc::DType;

namespace {

// FP8 bits of f: E5M2 is F16's top byte (same exponent bias); E4M3 by
// truncation, |f| below 2^-6 to a signed zero, above 448 to 448.
uint8_t fp8_of(DType t, float f) {
  const uint32_t s = std::signbit(f) ? 0x80u : 0u;
  const float a = std::fabs(f);
  if (t == DType::F8_E5M2) {
    uint32_t u;
    std::memcpy(&u, &a, 4);
    // F16 by truncation: exponent rebias 127 -> 15, top 2 mantissa bits
    const int e = int((u >> 23) & 255) - 127 + 15;
    if (e <= 0) return uint8_t(s);
    return uint8_t(s | uint32_t(std::min(e, 30)) << 2 | ((u >> 21) & 3u));
  }
  if (a < 0x1p-6f) return uint8_t(s);
  int e;
  const float m = std::frexp(std::min(a, 448.f), &e);  // a = m * 2^e, m in [0.5, 1)
  const uint32_t mant = uint32_t((m * 2.f - 1.f) * 8.f) & 7u;
  return uint8_t(s | uint32_t(std::min(e - 1 + 7, 15)) << 3 | mant);
}

// A [rows, cols] FP8 weight: normal values, each column's scale 2^(c mod 7)
// apart when `channels` (what a per-channel shift takes out).
std::vector<uint8_t> fp8_weights(DType t, size_t rows, size_t cols, bool channels, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, t == DType::F8_E5M2 ? 0.02f : 1.f);
  std::vector<uint8_t> out(rows * cols);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) out[r * cols + c] = fp8_of(t, g(rng) * (channels ? std::exp2(float(c % 7)) : 1.f));
  return out;
}

// The spec's formula for elements 2i and 2i + 1 of word P (FLOAT_ANS.md
// §2.4), written from its text, bit by bit.
void spec_unpack(uint32_t P, unsigned E, uint8_t* a, uint8_t* b) {
  const unsigned M = 7 - E;
  uint32_t ma = 0, mb = 0;
  for (unsigned j = 0; j < M; ++j) {
    ma |= ((P >> (2 + 2 * j)) & 1u) << j;
    mb |= ((P >> (1 + 2 * j)) & 1u) << j;
  }
  *a = uint8_t((P >> 15) << 7 | ((P >> (15 - E)) & ((1u << E) - 1u)) << M | ma);
  *b = uint8_t((P & 1u) << 7 | ((P >> (15 - 2 * E)) & ((1u << E) - 1u)) << M | mb);
}

template <unsigned E>
void check_word_map() {
  std::set<uint16_t> words;
  for (uint32_t a = 0; a < 256; ++a)
    for (uint32_t b = 0; b < 256; ++b) {
      const uint16_t p = wc::pairs::pack<E>(a, b);
      words.insert(p);
      // the exponents on top: F16's exponent field and 2E - 5 bits below it
      const uint32_t M = 7 - E;
      REQUIRE(((p >> (15 - 2 * E)) & ((1u << (2 * E)) - 1u)) == (((a >> M) & ((1u << E) - 1u)) << E | ((b >> M) & ((1u << E) - 1u))));
      REQUIRE(wc::pairs::unpack<E>(p) == uint16_t(a | b << 8));
      uint8_t sa, sb;
      spec_unpack(p, E, &sa, &sb);
      REQUIRE(sa == a);
      REQUIRE(sb == b);
    }
  CHECK(words.size() == 65536);  // a bijection
}

std::vector<uint8_t> encode_with(CodecId c, DType t, const std::vector<uint8_t>& v, const wc::shift::Plan* sh,
                                 bool try_zstd = false) {
  wc::EncodeOptions o;
  o.mixed_try_zstd = try_zstd;
  o.shift = sh;
  std::vector<uint8_t> out;
  wc::encode_chunk(c, t, v.data(), v.size(), out, o);
  return out;
}

}  // namespace

TEST_SUITE("fp8_pairs") {
  TEST_CASE("the pair word: a bijection with both exponents on top, inverted as the spec's formula says") {
    check_word_map<5>();
    check_word_map<4>();
    CHECK(wc::pairs::supports(DType::F8_E5M2));
    CHECK(wc::pairs::supports(DType::F8_E4M3));
    CHECK_FALSE(wc::pairs::supports(DType::F16));
    CHECK_FALSE(wc::pairs::supports(DType::U8));
  }

  TEST_CASE("codec 8 round trip: mode 6 for both FP8 dtypes, even and odd sizes, every byte pattern") {
    for (DType t : {DType::F8_E5M2, DType::F8_E4M3}) {
      for (size_t n : {size_t(2), size_t(3), size_t(64), size_t(4097), size_t(262144), size_t(262143)}) {
        CAPTURE(int(t));
        CAPTURE(n);
        std::vector<uint8_t> v = fp8_weights(t, 1, n, false, n + 7);
        // every byte pattern somewhere (NaN, infinities, both zeros, subnormals)
        if (n >= 4097)
          for (size_t i = 0; i < 256; ++i) v[i * 13 % n] = uint8_t(i);
        const auto s = tu::encode_chunk(CodecId::float_ans_pairs, t, v, false);
        std::vector<uint8_t> back(n);
        REQUIRE(tu::decode_both(CodecId::float_ans_pairs, t, s, back) == wc::Errc::ok);
        CHECK(back == v);
        if (n >= 4097) {  // (a few dozen pairs may not pay for their table: then mode 1 or 0)
          CHECK(s[0] == wc::pairs::kMode);
          CHECK(s[1] == (n % 2 ? v[n - 1] : 0));  // the tail
          CHECK(s[2] == 0);                         // no shift asked for
        }
        // codec 7 never writes mode 6, and codec 7 (and older) refuse it
        CHECK(tu::encode_chunk(CodecId::float_ans_groups, t, v, false)[0] != wc::pairs::kMode);
        for (CodecId c : {CodecId::float_ans_groups, CodecId::float_ans_patch, CodecId::float_ans_mixed,
                          CodecId::float_ans_trim, CodecId::float_ans})
          if (s[0] == wc::pairs::kMode) CHECK(tu::decode_both(c, t, s, back) != wc::Errc::ok);
      }
    }
  }

  TEST_CASE("mode 6 costs a little size against per-element coding, and only FP8 takes it") {
    for (DType t : {DType::F8_E5M2, DType::F8_E4M3}) {
      const auto v = fp8_weights(t, 256, 1024, false, 3);
      const size_t paired = tu::encode_chunk(CodecId::float_ans_pairs, t, v, false).size();
      const size_t single = tu::encode_chunk(CodecId::float_ans_groups, t, v, false).size();
      CAPTURE(paired);
      CAPTURE(single);
      CHECK(double(paired) <= 1.03 * double(single));
      CHECK(double(paired) < 0.9 * double(v.size()));
    }
    // a 16-bit tensor under codec 8 is coded as codec 7 codes it
    const auto w = testdata::weights(DType::BF16, 20000, 5);
    CHECK(tu::encode_chunk(CodecId::float_ans_pairs, DType::BF16, w) ==
          tu::encode_chunk(CodecId::float_ans_groups, DType::BF16, w));
  }

  TEST_CASE("the plan tries zstd on no chunk of FP8 pairs where zstd stays above the bar on every chunk") {
    // zstd a little smaller than mode 6 on a chunk (as on most E5M2 chunks:
    // the pairs' symbol costs about 1%) is no reason to try it: a pairs
    // chunk takes zstd only below zstd_bar(true) of its size. Each trial
    // costs a zstd -3 encode of the chunk (a quarter of the encode time on
    // Whisper tiny.en as E5M2).
    const DType t = DType::F8_E5M2;
    const uint32_t chunk = 64 << 10;
    const auto v = fp8_weights(t, 512, 1024, false, 11);  // 8 chunks, no repeats
    wc::EncodeOptions eo;
    const wc::CodecPlan plan = wc::plan_codec(t, v.data(), v.size(), chunk, eo, 1024);
    REQUIRE(plan.codec == CodecId::float_ans_pairs);
    int closer = 0;
    for (size_t c = 0; c * chunk < v.size(); ++c) {
      const std::vector<uint8_t> part(v.begin() + c * chunk, v.begin() + (c + 1) * chunk);
      const size_t paired = encode_with(CodecId::float_ans_pairs, t, part, nullptr).size();
      const size_t z = encode_with(CodecId::zstd, t, part, nullptr).size();
      CAPTURE(c);
      REQUIRE(double(z) >= wc::zstd_bar(true) * double(paired));  // the case this test is about
      closer += z + 1 < paired;
      CHECK(wc::repeat_rate(t, part.data(), part.size()) < wc::kRepeatTryZstd);
    }
    CHECK(closer > 0);  // zstd under mode 6 somewhere: what once set every chunk trying
    REQUIRE(plan.try_zstd.size() == v.size() / chunk);
    for (size_t c = 0; c * chunk < v.size(); ++c)
      CHECK_FALSE(wc::chunk_tries_zstd(plan, t, uint32_t(c), v.data() + c * chunk, chunk));
  }

  TEST_CASE("mode 6 with a per-channel shift: flag, round trip, and smaller than without") {
    for (DType t : {DType::F8_E5M2, DType::F8_E4M3}) {
      CAPTURE(int(t));
      const size_t rows = 200, cols = 1001;  // odd: the tail and rows that straddle pairs
      const auto v = fp8_weights(t, rows, cols, true, 11);
      const wc::shift::Plan sh = wc::shift::plan(t, v.data(), v.size(), cols);
      REQUIRE_FALSE(sh.d.empty());
      const auto s = encode_with(CodecId::float_ans_pairs, t, v, &sh);
      REQUIRE(s[0] == wc::pairs::kMode);
      CHECK(s[2] == wc::pairs::kFlagShift);
      CHECK(s[4] == wc::shift::kMode);
      std::vector<uint8_t> back(v.size());
      REQUIRE(tu::decode_both(CodecId::float_ans_pairs, t, s, back) == wc::Errc::ok);
      CHECK(back == v);
      CHECK(s.size() < encode_with(CodecId::float_ans_pairs, t, v, nullptr).size());
    }
  }

  TEST_CASE("the plan gives FP8 pairs the per-channel shift where channels differ in scale, and none where not") {
    for (DType t : {DType::F8_E5M2, DType::F8_E4M3}) {
      CAPTURE(int(t));
      const size_t rows = 600, cols = 1024;  // 600 KiB: three chunks, all sampled
      for (bool channels : {true, false}) {
        CAPTURE(channels);
        const auto v = fp8_weights(t, rows, cols, channels, 21);
        const wc::CodecPlan p = wc::plan_codec(t, v.data(), v.size(), 256u << 10, wc::EncodeOptions{}, cols);
        CHECK(p.codec == CodecId::float_ans_pairs);
        CHECK(p.shift.d.empty() == !channels);
        // the sampled chunks it keeps are the pairs, flagged as shifted where it is
        REQUIRE(!p.samples.empty());
        for (const auto& sm : p.samples) {
          REQUIRE(sm.bytes.size() > wc::pairs::kHeadBytes);
          CHECK(sm.bytes[0] == wc::pairs::kMode);
          CHECK((sm.bytes[2] == wc::pairs::kFlagShift) == channels);
        }
      }
    }
  }

  TEST_CASE("mode 6 payloads that break a rule are refused, and no input reads out of bounds") {
    const DType t = DType::F8_E5M2;
    const auto v = fp8_weights(t, 1, 5000, false, 9);
    const auto s = tu::encode_chunk(CodecId::float_ans_pairs, t, v, false);
    REQUIRE(s[0] == wc::pairs::kMode);
    std::vector<uint8_t> back(v.size());
    auto refused = [&](std::vector<uint8_t> b, size_t dst_n, DType dt = DType::F8_E5M2) {
      std::vector<uint8_t> out(dst_n);
      return tu::decode_both(CodecId::float_ans_pairs, dt, b, out) != wc::Errc::ok;
    };
    auto with = [&](size_t at, uint8_t val) {
      auto b = s;
      b[at] = val;
      return b;
    };
    CHECK(refused(with(1, 7), v.size()));      // a tail under an even n
    CHECK(refused(with(2, 2), v.size()));      // an unknown flag
    CHECK(refused(with(2, 1), v.size()));      // a shift flag with no shift block
    CHECK(refused(with(3, 1), v.size()));      // the reserved byte
    CHECK(refused(with(4, 0), v.size()));      // an inner raw payload
    CHECK(refused(with(4, 3), v.size()));      // an inner mode 3
    CHECK(refused(with(4, 6), v.size()));      // mode 6 inside mode 6
    CHECK(refused(s, v.size() - 2));           // the words do not fill the chunk
    CHECK(refused(s, v.size(), DType::F16));   // mode 6 of a 16-bit dtype
    CHECK(refused(s, v.size(), DType::BF16));
    CHECK(refused({6, 0, 0, 0}, 2));           // no inner payload
    CHECK(refused({6, 0, 0, 0, 1}, 1));        // n = 1: no pair
    for (size_t cut = 1; cut < s.size(); cut += 97) CHECK(refused(std::vector<uint8_t>(s.begin(), s.begin() + long(cut)), v.size()));
    // any byte changed: decodes or is refused, inside its buffers (guarded copies)
    std::mt19937_64 rng(4);
    for (int k = 0; k < 300; ++k) {
      auto b = s;
      b[rng() % b.size()] ^= uint8_t(1u << (rng() % 8));
      (void)tu::decode_both(CodecId::float_ans_pairs, t, b, back);
    }
  }

  TEST_CASE("pack --codec auto: FP8 weights get float-ans-pairs, file 1.7 (2.12 beside lossy tensors); "
            "16-bit weights never") {
    tu::TempDir t;
    std::vector<stb::StTensor> ts = {{"a", DType::F8_E5M2, {300, 512}, fp8_weights(DType::F8_E5M2, 300, 512, true, 1)},
                                     {"b", DType::F8_E4M3, {257, 333}, fp8_weights(DType::F8_E4M3, 257, 333, false, 2)},
                                     {"w", DType::F16, {256, 512}, testdata::weights(DType::F16, 256 * 512, 22)}};
    tu::write_file(t / "m.safetensors", stb::build(ts));
    wc::PackOptions po;
    wc::pack(t / "m.safetensors", t / "m.wcz", po);
    tu::check_packed(t / "m.wcz", t / "m.safetensors", 7, {"float-ans-pairs", "float-ans-pairs", "float-ans"},
                     t / "back.safetensors");
    // without FP8 the file is what it was: 1.x below 7
    std::vector<stb::StTensor> w16 = {ts[2]};
    tu::write_file(t / "w.safetensors", stb::build(w16));
    wc::pack(t / "w.safetensors", t / "w.wcz", po);
    tu::check_packed(t / "w.wcz", t / "w.safetensors", 0, {"float-ans"});
    // a lossy file whose exact FP8 tensors use it is 2.12
    wc::PackOptions lo;
    lo.bits = 4;
    lo.min_elements = 1;
    wc::pack(t / "m.safetensors", t / "l.wcz", lo);
    const auto sum = tu::check_version(t / "l.wcz", 2, 12);
    REQUIRE(sum.size() == 3);
    CHECK(sum[0].codec == "float-ans-pairs");
    CHECK(sum[1].codec == "float-ans-pairs");
    CHECK(wc::verify(t / "l.wcz", "", 2, {}).chunks > 0);  // throws on a bad chunk or hash
  }
}
