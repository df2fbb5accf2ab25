// Codec 7, float-ans-groups (spec/FLOAT_ANS.md §2.3): mode 5 stores a
// chunk's byte planes, per block of 16384 elements, as one zstd frame each.
// Near-duplicate rows (a token embedding's untrained rows) are the case it
// exists for: their repeats lie in the high bytes, hidden in element order
// by the noisy low bytes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "codec/byte_groups.h"
#include "codec/codec.h"
#include "format/bytes.h"
#include "lib/api.h"
#include "chunk_coding.h"
#include "packed_check.h"
#include "quant/qrow_math.h"
#include "st_builder.h"
#include "test_util.h"
#include "weights_gen.h"

using wc::CodecId;
using wc::DType;

namespace {

// Bits of value v in dtype t (F32, F16 or BF16; BF16 by truncation).
void put(DType t, float v, uint8_t* p) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  if (t == DType::F32) {
    std::memcpy(p, &b, 4);
  } else {
    const uint16_t h = t == DType::F16 ? wc::qrow::f32_to_f16_rne(b) : uint16_t(b >> 16);
    std::memcpy(p, &h, 2);
  }
}

// A token embedding of `rows` x `cols` in dtype t whose rows from `first_trained` on
// are trained (independent draws) and whose first rows stay near one shared
// initial row, each element off by a few units in its last place.
std::vector<uint8_t> embedding(DType t, size_t rows, size_t cols, size_t first_trained, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 0.3f);
  std::uniform_int_distribution<int> ulp(-3, 3);
  const size_t eb = wc::dtype_bits(t) / 8;
  std::vector<float> init(cols);
  for (auto& v : init) v = g(rng);
  std::vector<uint8_t> out(rows * cols * eb);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) {
      uint8_t* p = out.data() + (r * cols + c) * eb;
      if (r >= first_trained) {
        put(t, g(rng), p);
        continue;
      }
      put(t, init[c], p);
      // a few units in the last place of the stored value
      if (eb == 2) {
        uint16_t h;
        std::memcpy(&h, p, 2);
        h = uint16_t(h + ulp(rng));
        std::memcpy(p, &h, 2);
      } else {
        uint32_t w;
        std::memcpy(&w, p, 4);
        w = uint32_t(int64_t(w) + ulp(rng) * 4096);  // F32: noise in bits 12..
        std::memcpy(p, &w, 4);
      }
    }
  return out;
}


}  // namespace

TEST_SUITE("byte_groups") {
  TEST_CASE("planes: block layout and its inverse") {
    // 3 elements of 4 bytes: plane k holds byte k of each, in element order
    const std::vector<uint8_t> e = {1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24};
    std::vector<uint8_t> p(12);
    for (unsigned k = 0; k < 4; ++k) wc::groups::plane(e.data(), 3, 4, k, p.data() + 3 * k);
    CHECK(p == std::vector<uint8_t>{1, 11, 21, 2, 12, 22, 3, 13, 23, 4, 14, 24});
    std::vector<uint8_t> back(12);
    wc::groups::interleave(p.data(), 3, 4, back.data());
    CHECK(back == e);
    CHECK(wc::groups::supports(DType::BF16));
    CHECK(wc::groups::supports(DType::F16));
    CHECK(wc::groups::supports(DType::F32));
    CHECK(!wc::groups::supports(DType::F8_E4M3));
    CHECK(!wc::groups::supports(DType::F8_E5M2));
  }

  TEST_CASE("mode 5: near-duplicate rows, smaller than codec 5's modes, exact in every float dtype") {
    // 40000 elements: two whole blocks and a partial third
    for (DType t : {DType::F16, DType::BF16, DType::F32}) {
      CAPTURE(wc::dtype_name(t));
      const auto v = embedding(t, 625, 64, 400, 11);
      const auto s7 = tu::encode_chunk(CodecId::float_ans_groups, t, v),
                 s5 = tu::encode_chunk(CodecId::float_ans_patch, t, v);
      REQUIRE(!s7.empty());
      CHECK(s7[0] == wc::groups::kMode);
      CHECK(double(s7.size()) < 0.97 * double(s5.size()));
      std::vector<uint8_t> back(v.size());
      REQUIRE(tu::decode_both(CodecId::float_ans_groups, t, s7, back) == wc::Errc::ok);
      CHECK(back == v);
      // codecs 4 and 5 do not know mode 5
      CHECK(tu::decode_both(CodecId::float_ans_patch, t, s7, back) != wc::Errc::ok);
      CHECK(tu::decode_both(CodecId::float_ans_mixed, t, s7, back) != wc::Errc::ok);
    }
  }

  TEST_CASE("codec 7 keeps codec 5's bytes where the planes do not win; no planes without the zstd trial") {
    const auto w = testdata::weights(DType::BF16, 50000, 4);
    CHECK(tu::encode_chunk(CodecId::float_ans_groups, DType::BF16, w) ==
          tu::encode_chunk(CodecId::float_ans_patch, DType::BF16, w));
    const auto v = embedding(DType::F16, 300, 64, 200, 12);
    const auto s = tu::encode_chunk(CodecId::float_ans_groups, DType::F16, v, false);
    CHECK(s[0] != wc::groups::kMode);
    CHECK(s == tu::encode_chunk(CodecId::float_ans_patch, DType::F16, v, false));
    // FP8 never takes mode 5 (one plane)
    const auto f8 = testdata::weights(DType::F8_E4M3, 20000, 5);
    CHECK(tu::encode_chunk(CodecId::float_ans_groups, DType::F8_E4M3, f8)[0] != wc::groups::kMode);
  }

  TEST_CASE("mode 5: the planes of a large chunk at zstd level 1 (writer level 3 or less), else the writer's level") {
    // the payload rebuilt frame by frame at a given level
    auto planes_at = [](DType t, const std::vector<uint8_t>& v, int level) {
      const size_t eb = wc::dtype_bits(t) / 8, count = v.size() / eb;
      std::vector<uint8_t> out{wc::groups::kMode}, pl, f;
      for (size_t s = 0; s < count; s += wc::groups::kBlockElems) {
        const size_t m = std::min(wc::groups::kBlockElems, count - s);
        pl.resize(m);
        for (unsigned k = 0; k < eb; ++k) {
          wc::groups::plane(v.data() + s * eb, m, eb, k, pl.data());
          wc::EncodeOptions o;
          o.zstd_level = level;
          wc::encode_chunk(CodecId::zstd, DType::U8, pl.data(), m, f, o);
          out.insert(out.end(), f.begin(), f.end());
        }
      }
      return out;
    };
    // levels 1 and 3 code these planes differently, so the check can tell them apart
    const auto big = embedding(DType::F16, 1024, 64, 600, 13);    // 128 KiB
    const auto small = embedding(DType::F16, 1000, 64, 600, 13);  // just under
    REQUIRE(big.size() == wc::kGroupsFastFrom);
    REQUIRE(planes_at(DType::F16, big, 1) != planes_at(DType::F16, big, 3));
    REQUIRE(planes_at(DType::F16, small, 1) != planes_at(DType::F16, small, 3));
    std::vector<uint8_t> s;
    wc::EncodeOptions o;
    wc::encode_byte_groups(DType::F16, big.data(), big.size(), s, o);
    CHECK(s == planes_at(DType::F16, big, 1));
    wc::encode_byte_groups(DType::F16, small.data(), small.size(), s, o);
    CHECK(s == planes_at(DType::F16, small, 3));
    o.zstd_level = 9;  // a writer that asks for more gets it
    wc::encode_byte_groups(DType::F16, big.data(), big.size(), s, o);
    CHECK(s == planes_at(DType::F16, big, 9));
  }

  TEST_CASE("mode 5: every rule is checked; no read beyond the payload") {
    const auto v = embedding(DType::F16, 400, 64, 300, 13);  // 25600 elements: two blocks
    const auto s = tu::encode_chunk(CodecId::float_ans_groups, DType::F16, v);
    REQUIRE(s[0] == wc::groups::kMode);
    std::vector<uint8_t> back(v.size());
    auto refused = [&](const std::vector<uint8_t>& b, DType t = DType::F16, size_t n = 0) {
      std::vector<uint8_t> out(n ? n : back.size());
      return tu::decode_both(CodecId::float_ans_groups, t, b, out) != wc::Errc::ok;
    };
    CHECK(!refused(s));
    {  // a byte after the last frame
      auto b = s;
      b.push_back(0);
      CHECK(refused(b));
    }
    // every truncation
    for (size_t cut = 0; cut < s.size(); cut += 1 + cut / 16)
      CHECK(refused(std::vector<uint8_t>(s.begin(), s.begin() + cut)));
    // the frames' contents do not match the chunk: one element fewer or more
    CHECK(refused(s, DType::F16, v.size() - 2));
    CHECK(refused(s, DType::F16, v.size() + 2));
    // an 8-bit dtype: mode 5 is invalid (the same bytes as 51200 FP8 elements)
    CHECK(refused(s, DType::F8_E4M3, v.size()));
    // BF16 reads the same planes: valid (the dtype is the record's to say)
    CHECK(!refused(s, DType::BF16));
    {  // a skippable frame before the first frame
      std::vector<uint8_t> b = {wc::groups::kMode, 0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0};
      b.insert(b.end(), s.begin() + 1, s.end());
      CHECK(refused(b));
    }
    {  // a frame's content bytes flipped: the zstd checksum-free frame may
       // decode to other bytes, but never out of bounds (the guard page)
      for (size_t at = 1; at < s.size(); at += 97) {
        auto b = s;
        b[at] ^= 0x5A;
        std::vector<uint8_t> out(v.size());
        (void)tu::decode_both(CodecId::float_ans_groups, DType::F16, b, out);
      }
    }
    // zero elements: the mode byte alone, nothing after it
    std::vector<uint8_t> none;
    CHECK(wc::decode_chunk(CodecId::float_ans_groups, DType::F16, s.data(), 1, none.data(), 0) == wc::Errc::ok);
    CHECK(wc::decode_chunk(CodecId::float_ans_groups, DType::F16, s.data(), 2, none.data(), 0) != wc::Errc::ok);
  }

  TEST_CASE("pack --codec auto: an embedding with untrained rows gets float-ans-groups, file 1.6; "
            "ordinary weights never") {
    tu::TempDir t;
    std::vector<stb::StTensor> ts = {{"emb", DType::F16, {1024, 128}, embedding(DType::F16, 1024, 128, 600, 21)},
                                     {"w", DType::F16, {256, 512}, testdata::weights(DType::F16, 256 * 512, 22)}};
    tu::write_file(t / "m.safetensors", stb::build(ts));
    wc::PackOptions po;
    wc::pack(t / "m.safetensors", t / "m.wcz", po);
    const auto s7 =
        tu::check_packed(t / "m.wcz", t / "m.safetensors", 6, {"float-ans-groups", "float-ans"},
                         t / "back.safetensors");
    // the embedding: smaller than codec 5 with every chunk trying zstd
    po.codec = "float-ans-patch";
    po.force = true;
    wc::pack(t / "m.safetensors", t / "m5.wcz", po);
    std::vector<wc::TensorSummary> s5;
    wc::inspect(t / "m5.wcz", false, &s5);
    REQUIRE(s5.size() == 2);
    CHECK(double(s7[0].stored_bytes) < 0.97 * double(s5[0].stored_bytes));
    // forced, every tensor of a float dtype gets it (and stays exact)
    po.codec = "float-ans-groups";
    wc::pack(t / "m.safetensors", t / "m7.wcz", po);
    tu::check_packed(t / "m7.wcz", t / "m.safetensors", 6, {"float-ans-groups", "float-ans-groups"});
    // a lossy file whose exact embedding uses it is 2.10
    wc::PackOptions lo;
    lo.bits = 4;
    lo.keep = "emb";
    lo.min_elements = 1;
    wc::pack(t / "m.safetensors", t / "l.wcz", lo);
    const auto sum = tu::check_version(t / "l.wcz", 2, 10);
    REQUIRE(sum.size() == 2);
    CHECK(sum[0].codec == "float-ans-groups");
  }
}
