// Codec 5, float-ans-patch (spec/FLOAT_ANS.md §2.2): a trim of the low bits
// that all but a few listed elements have zero. F16 of BF16 values is the
// case it exists for: the low 3 bits are zero except in F16 subnormals.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "codec/codec.h"
#include "codec/trim_patch.h"
#include "format/reader.h"
#include "lib/api.h"
#include "lib/reader_checks.h"
#include "format/bytes.h"
#include "chunk_coding.h"
#include "packed_check.h"
#include "quant/qrow_math.h"
#include "st_builder.h"
#include "test_util.h"
#include "weights_gen.h"

using wc::CodecId;
using wc::DType;

namespace {

// F16 bits of BF16-rounded values: weights of scale `sigma`, a fraction of
// them tiny (F16 subnormals below 2^-16, where the low 3 bits are not zero).
std::vector<uint8_t> f16_of_bf16(size_t n, double sigma, double tiny, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, float(sigma));
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<uint8_t> out(2 * n);
  for (size_t i = 0; i < n; ++i) {
    float v = g(rng);
    if (u(rng) < tiny) v = float(std::ldexp(double(g(rng)) / sigma, -19));  // about 2^-19
    uint32_t b;
    std::memcpy(&b, &v, 4);
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000u;  // BF16, round to nearest even
    const uint16_t h = wc::qrow::f32_to_f16_rne(b);
    std::memcpy(&out[2 * i], &h, 2);
  }
  return out;
}


}  // namespace

TEST_SUITE("patch") {
  TEST_CASE("mode 4: listed elements restore what the trim leaves out; smaller than codec 4, exact") {
    const auto v = f16_of_bf16(60000, 0.02, 0.001, 1);
    const wc::patch::Choice c = wc::patch::choose(DType::F16, v.data(), v.size() / 2);
    CHECK(c.z == 3);
    CHECK(!c.idx.empty());
    CHECK(c.idx.size() < 200);
    const auto s5 = tu::encode_chunk(CodecId::float_ans_patch, DType::F16, v, false),
               s4 = tu::encode_chunk(CodecId::float_ans_mixed, DType::F16, v, false);
    REQUIRE(!s5.empty());
    CHECK(s5[0] == wc::patch::kMode);
    CHECK(double(s5.size()) < 0.9 * double(s4.size()));  // 3 of about 13 bits a weight
    std::vector<uint8_t> back(v.size());
    REQUIRE(tu::decode_both(CodecId::float_ans_patch, DType::F16, s5, back) == wc::Errc::ok);
    CHECK(back == v);
    // codec 4 does not know mode 4
    CHECK(tu::decode_both(CodecId::float_ans_mixed, DType::F16, s5, back) != wc::Errc::ok);
  }

  TEST_CASE("mode 4 on F32 of BF16 values with a few full-precision ones, and BF16 with few significant bits") {
    auto f32 = testdata::weights(DType::F32, 40000, 3);
    for (size_t i = 0; i < f32.size(); i += 4)
      if ((i / 4) % 997) f32[i] = f32[i + 1] = 0;  // all but 1 in 997: BF16 values
    std::vector<uint8_t> back(f32.size());
    const auto s = tu::encode_chunk(CodecId::float_ans_patch, DType::F32, f32, false);
    CHECK(s[0] == wc::patch::kMode);
    REQUIRE(tu::decode_both(CodecId::float_ans_patch, DType::F32, s, back) == wc::Errc::ok);
    CHECK(back == f32);
    CHECK(double(s.size()) < 0.7 * double(tu::encode_chunk(CodecId::float_ans_mixed, DType::F32, f32, false).size()));
    // weights with every low bit in use: mode 4 never pays, codec 4's bytes
    const auto w = testdata::weights(DType::BF16, 50000, 4);
    CHECK(tu::encode_chunk(CodecId::float_ans_patch, DType::BF16, w, false) ==
          tu::encode_chunk(CodecId::float_ans_mixed, DType::BF16, w, false));
  }

  TEST_CASE("mode 4: a sure patch is coded alone; an unsure one only where it beats the plain coding") {
    // F16 of BF16 values: 3 bits an element trimmed, far over patch::kSure
    const auto v = f16_of_bf16(60000, 0.02, 0.001, 5);
    const wc::patch::Choice c = wc::patch::choose(DType::F16, v.data(), v.size() / 2);
    CHECK(wc::patch::sure(c, v.size() / 2, 2));
    CHECK(c.gain_bits > 0.15 * 16.0 * double(v.size() / 2));
    const auto s5 = tu::encode_chunk(CodecId::float_ans_patch, DType::F16, v, false),
               s4 = tu::encode_chunk(CodecId::float_ans_mixed, DType::F16, v, false);
    REQUIRE(!s5.empty());
    CHECK(s5[0] == wc::patch::kMode);
    // the estimate: the bits the patch saves, within 30% of what it did save
    CHECK(8.0 * double(s4.size() - s5.size()) > 0.7 * c.gain_bits);
    CHECK(8.0 * double(s4.size() - s5.size()) < 1.3 * c.gain_bits);
    // F32 with bit 0 clear but in 1 of 2000: a bit of 32 saved, under kSure:
    // both codings tried, the patched one smaller
    auto f = testdata::weights(DType::F32, 40000, 6);
    for (size_t i = 0; i < f.size(); i += 4)
      if ((i / 4) % 2000) f[i] &= 0xFE;
    const wc::patch::Choice cf = wc::patch::choose(DType::F32, f.data(), f.size() / 4);
    CHECK(cf.z == 1);
    CHECK_FALSE(wc::patch::sure(cf, f.size() / 4, 4));
    const auto f5 = tu::encode_chunk(CodecId::float_ans_patch, DType::F32, f, false),
               f4 = tu::encode_chunk(CodecId::float_ans_mixed, DType::F32, f, false);
    CHECK(f5[0] == wc::patch::kMode);
    CHECK(f5.size() < f4.size());
    std::vector<uint8_t> back(f.size());
    REQUIRE(tu::decode_both(CodecId::float_ans_patch, DType::F32, f5, back) == wc::Errc::ok);
    CHECK(back == f);
  }

  TEST_CASE("mode 4: every rule before the inner payload is checked; no read beyond the payload") {
    const auto v = f16_of_bf16(5000, 0.02, 0.01, 5);
    const auto s = tu::encode_chunk(CodecId::float_ans_patch, DType::F16, v, false);
    REQUIRE(s[0] == wc::patch::kMode);
    const uint32_t count = wc::load_u32(s.data() + 4);
    REQUIRE(count >= 2);
    std::vector<uint8_t> back(v.size());
    auto refused = [&](std::vector<uint8_t> b) {
      return tu::decode_both(CodecId::float_ans_patch, DType::F16, b, back) != wc::Errc::ok;
    };
    auto with_count = [&](uint32_t c) {
      auto b = s;
      wc::store_u32(b.data() + 4, c);
      return b;
    };
    CHECK(refused(with_count(0)));
    CHECK(refused(with_count(uint32_t(v.size() / 2 + 1))));  // more than the elements
    CHECK(refused(with_count(count + 1)));                    // the list swallows the inner payload's bytes
    for (size_t r = 1; r < 4; ++r) {  // reserved bytes
      auto b = s;
      b[r] = 1;
      CHECK(refused(b));
    }
    {  // a gap beyond the last element
      auto b = s;
      b[8] = 0xFF, b[9] = 0xFF, b[10] = 0x7F;
      CHECK(refused(b));
    }
    {  // a gap of 6 LEB128 bytes
      std::vector<uint8_t> b(s.begin(), s.begin() + 8);
      b.insert(b.end(), {0x80, 0x80, 0x80, 0x80, 0x80, 0x00});
      b.insert(b.end(), s.begin() + 8, s.end());
      CHECK(refused(b));
    }
    // every truncation: refused, never a read past the end (the guard page)
    for (size_t cut = 0; cut < s.size(); cut += 1 + cut / 8) CHECK(refused(std::vector<uint8_t>(s.begin(), s.begin() + cut)));
    // an inner payload of mode 0, 2 or 4
    size_t at = 0;
    REQUIRE(wc::patch::parse(DType::F16, s.data(), s.size(), v.size() / 2, &at));
    for (uint8_t m : {0, 2, 4}) {
      auto b = s;
      b[at] = m;
      CHECK(refused(b));
    }
  }

  TEST_CASE("pack --codec auto: F16 of BF16 values gets float-ans-patch, file 1.5; ordinary weights never do") {
    tu::TempDir t;
    std::vector<stb::StTensor> ts = {{"w", DType::F16, {512, 512}, f16_of_bf16(512 * 512, 0.02, 0.0005, 7)},
                                     {"v", DType::F16, {256, 512}, testdata::weights(DType::F16, 256 * 512, 8)}};
    tu::write_file(t / "m.safetensors", stb::build(ts));
    wc::PackOptions po;
    po.chunk_size = 64 << 10;
    const auto r = wc::pack(t / "m.safetensors", t / "m.wcz", po);
    tu::check_packed(t / "m.wcz", t / "m.safetensors", 5, {"float-ans-patch", "float-ans"}, t / "back.safetensors");
    po.codec = "float-ans-mixed";
    po.force = true;
    const auto r4 = wc::pack(t / "m.safetensors", t / "m4.wcz", po);
    CHECK(double(r.output_bytes) < 0.93 * double(r4.output_bytes));
  }
}

namespace {

// patch::choose by its definition alone (FLOAT_ANS.md §2.2's writer rule as
// trim_patch.cpp prices it): the z of the largest positive gain over every
// z above the bits all elements have zero, and the elements it lists.
wc::patch::Choice choose_by_definition(DType t, const uint8_t* src, uint64_t n) {
  const unsigned eb = wc::dtype_bits(t) / 8;
  const unsigned mb = t == DType::F32 ? 23 : t == DType::F16 ? 10 : t == DType::BF16 ? 7 : t == DType::F8_E4M3 ? 3 : 2;
  auto tz = [&](uint64_t i) {
    const uint32_t m = wc::load_elem(src + i * eb, eb) & ((1u << mb) - 1u);
    return m ? unsigned(__builtin_ctz(m)) : mb;
  };
  unsigned z_all = mb;
  for (uint64_t i = 0; i < n; ++i) z_all = std::min(z_all, tz(i));
  wc::patch::Choice c;
  double best = 0;
  for (unsigned z = z_all + 1; z <= mb; ++z) {
    uint64_t listed = 0;
    for (uint64_t i = 0; i < n; ++i) listed += tz(i) < z;
    const double gain = double(n) * (z - z_all) - 8.0 * double(listed) * double(2 + eb);
    if (gain > best) best = gain, c.z = z;
  }
  if (c.z)
    for (uint64_t i = 0; i < n; ++i)
      if (tz(i) < c.z) c.idx.push_back(uint32_t(i));
  return c;
}

}  // namespace

TEST_SUITE("patch") {
TEST_CASE("patch::choose equals the search over every z, whatever the share of odd elements (its early stop included)") {
  // Elements with bit 0 set in a share p around each dtype's bound (8 c0
  // (2 + eb) >= n mb, where choose stops early), the others with 1 to mb
  // trailing zero bits; the odd ones at the start, the end or spread.
  std::mt19937_64 rng(7);
  int compared = 0, found = 0;
  for (DType t : {DType::F16, DType::BF16, DType::F32, DType::F8_E4M3, DType::F8_E5M2}) {
    const unsigned eb = wc::dtype_bits(t) / 8;
    const unsigned mb = t == DType::F32 ? 23 : t == DType::F16 ? 10 : t == DType::BF16 ? 7 : t == DType::F8_E4M3 ? 3 : 2;
    for (double p : {0.0, 0.001, 0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.32, 0.45, 0.5, 0.6})
      for (int where = 0; where < 3; ++where)
        for (uint64_t n : {uint64_t(1), uint64_t(100), uint64_t(5000), uint64_t(20000)}) {
          std::vector<uint8_t> v(n * eb);
          std::uniform_real_distribution<double> u(0, 1);
          for (uint64_t i = 0; i < n; ++i) {
            const bool odd = where == 0 ? u(rng) < p : where == 1 ? i < uint64_t(p * double(n)) : i >= n - uint64_t(p * double(n));
            uint32_t x = uint32_t(rng()) & ~((1u << mb) - 1u);  // sign, exponent (and any higher bits of the element)
            // most even ones with every low bit zero: then a trim pays right up to the bound
            const unsigned z = odd ? 0 : u(rng) < 0.9 ? mb : 1 + unsigned(rng() % mb);
            x |= z >= mb ? 0 : ((uint32_t(rng()) | 1u) << z) & ((1u << mb) - 1u);
            std::memcpy(v.data() + i * eb, &x, eb);
          }
          const wc::patch::Choice a = wc::patch::choose(t, v.data(), n), b = choose_by_definition(t, v.data(), n);
          CHECK(a.z == b.z);
          CHECK(a.idx == b.idx);
          ++compared, found += b.z != 0;
        }
  }
  CHECK(compared == 5 * 13 * 3 * 4);
  CHECK(found > 20);  // the comparison covers trims that pay, not only refusals
  CHECK(found < compared - 20);
}
}
