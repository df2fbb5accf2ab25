// float-ans-mixed (codec 4, container 1.3): chunk by chunk the smaller of
// float-ans-trim and zstd, for tensors whose chunks differ (padding rows,
// duplicated rows, positional tables). `pack --codec auto` picks it only
// where some chunk gains, so every other file stays as older readers know it.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "codec/auto_select.h"
#include "codec/codec.h"
#include "lib/api.h"
#include "st_builder.h"
#include "test_util.h"
#include "weights_gen.h"

using wc::CodecId;
using wc::DType;

namespace {

constexpr size_t kCols = 1024;  // BF16 row: 2 KiB, 128 rows per 256 KiB chunk

// `rows` rows of BF16 weights where the rows in [dup_lo, dup_hi) are copies
// of 16 distinct rows (what zstd finds and float-ans cannot use).
std::vector<uint8_t> bf16_with_dup_rows(size_t rows, size_t dup_lo, size_t dup_hi, uint64_t seed) {
  auto w = testdata::weights(DType::BF16, rows * kCols, seed);
  const size_t rb = kCols * 2;
  for (size_t r = dup_lo; r < dup_hi; ++r)
    std::memcpy(&w[r * rb], &w[(dup_lo + (r - dup_lo) % 16) * rb], rb);
  return w;
}

std::vector<uint8_t> enc(CodecId c, DType t, const std::vector<uint8_t>& v, bool try_zstd = true) {
  wc::EncodeOptions o;
  o.mixed_try_zstd = try_zstd;
  std::vector<uint8_t> out;
  wc::encode_chunk(c, t, v.data(), v.size(), out, o);
  return out;
}

}  // namespace

TEST_SUITE("mixed") {
  TEST_CASE("codec 4 keeps the smaller of zstd (mode 2) and float-ans-trim per chunk, and decodes both") {
    const auto dup = bf16_with_dup_rows(128, 0, 128, 7);
    const auto w = testdata::weights(DType::BF16, 128 * kCols, 8);
    const auto s_dup = enc(CodecId::float_ans_mixed, DType::BF16, dup);
    const auto s_w = enc(CodecId::float_ans_mixed, DType::BF16, w);
    REQUIRE(!s_dup.empty());
    REQUIRE(!s_w.empty());
    CHECK(s_dup[0] == 2);  // zstd frame
    CHECK(s_w[0] != 2);    // float-ans-trim payload
    CHECK(s_dup.size() <= enc(CodecId::zstd, DType::BF16, dup).size() + 1);
    CHECK(s_dup.size() < enc(CodecId::float_ans, DType::BF16, dup).size() / 4);
    CHECK(s_w.size() <= enc(CodecId::float_ans_trim, DType::BF16, w).size());
    // not asked to try zstd: float-ans-trim even where zstd would win
    const auto s_no = enc(CodecId::float_ans_mixed, DType::BF16, dup, false);
    REQUIRE(!s_no.empty());
    CHECK(s_no[0] != 2);

    std::vector<uint8_t> ws(wc::decode_workspace_size());
    for (const auto* p : {&s_dup, &s_w, &s_no}) {
      const auto& orig = (p == &s_w) ? w : dup;
      std::vector<uint8_t> back(orig.size(), 0xAB);
      CHECK(wc::decode_chunk(CodecId::float_ans_mixed, DType::BF16, p->data(), p->size(), back.data(),
                             back.size()) == wc::Errc::ok);
      CHECK(back == orig);
      std::fill(back.begin(), back.end(), 0xAB);
      CHECK(wc::decode_chunk_ws(CodecId::float_ans_mixed, DType::BF16, p->data(), p->size(), back.data(),
                                back.size(), ws.data(), ws.size()) == wc::Errc::ok);
      CHECK(back == orig);
    }
    // a zstd frame of the wrong size, or cut short, is a codec error
    std::vector<uint8_t> back(dup.size() - 2);
    CHECK(wc::decode_chunk(CodecId::float_ans_mixed, DType::BF16, s_dup.data(), s_dup.size(), back.data(),
                           back.size()) == wc::Errc::codec);
    back.resize(dup.size());
    CHECK(wc::decode_chunk(CodecId::float_ans_mixed, DType::BF16, s_dup.data(), s_dup.size() - 3, back.data(),
                           back.size()) == wc::Errc::codec);
    // mode 2 is not a float-ans (codec 2) mode
    CHECK(wc::decode_chunk(CodecId::float_ans, DType::BF16, s_dup.data(), s_dup.size(), back.data(),
                           back.size()) == wc::Errc::codec);
  }

  TEST_CASE("repeat_rate flags zeros, duplicated rows and small value sets, not weights") {
    const size_t n = 128 * kCols;
    const std::vector<uint8_t> zeros(n * 2, 0);
    CHECK(wc::repeat_rate(DType::BF16, zeros.data(), n) >= wc::kRepeatTryZstd);
    const auto dup = bf16_with_dup_rows(128, 0, 128, 3);
    CHECK(wc::repeat_rate(DType::BF16, dup.data(), n) >= wc::kRepeatTryZstd);
    // 16 distinct values (a dequantized 4-bit tensor)
    auto few = testdata::weights(DType::BF16, n, 4);
    std::mt19937 rng(5);
    for (size_t i = 0; i < n; ++i) std::memcpy(&few[2 * i], &few[2 * (rng() % 16)], 2);
    CHECK(wc::repeat_rate(DType::BF16, few.data(), n) >= wc::kRepeatTryZstd);
    for (DType t : {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::F8_E5M2}) {
      CAPTURE(static_cast<int>(t));
      const auto w = testdata::weights(t, n, 6);
      CHECK(wc::repeat_rate(t, w.data(), n) < wc::kRepeatTryZstd);
    }
  }

  TEST_CASE("pack --codec auto: a tensor with duplicated rows in one chunk gets float-ans-mixed, file 1.3") {
    tu::TempDir t;
    const std::string m = t / "m.safetensors", c = t / "m.wcz";
    // 8 chunks of 128 rows; rows 128..255 (chunk 1, not a sampled one) are
    // copies of 16 rows, the rest are weights
    std::vector<stb::StTensor> ts = {
        {"emb.weight", DType::BF16, {1024, kCols}, bf16_with_dup_rows(1024, 128, 256, 11)},
        {"w.weight", DType::BF16, {256, kCols}, testdata::weights(DType::BF16, 256 * kCols, 12)},
    };
    tu::write_file(m, stb::build(ts));
    auto size_with = [&](const std::string& codec) {
      wc::PackOptions po;
      po.threads = 2;
      po.force = true;
      po.codec = codec;
      return wc::pack(m, c, po).output_bytes;
    };
    const uint64_t s_fans = size_with("float-ans");
    const uint64_t s_zstd = size_with("zstd");
    const uint64_t s_all = size_with("float-ans-mixed");  // every chunk tries zstd
    const uint64_t s_auto = size_with("auto");
    std::vector<wc::TensorSummary> sum;
    const auto ir = wc::inspect(c, false, &sum);
    CHECK(ir.version_major == 1);
    CHECK(ir.version_minor == 3);
    REQUIRE(sum.size() == 2);
    CHECK(sum[0].codec == "float-ans-mixed");
    CHECK(sum[1].codec == "float-ans");  // homogeneous: no need for mixed
    // the plan found the one chunk that gains: as small as trying zstd everywhere
    CHECK(s_auto == s_all);
    CHECK(s_auto + 100 * 1024 < s_fans);  // 16 distinct rows of 128: ~7/8 of a 256 KiB chunk saved
    CHECK(s_auto < s_zstd);
    CHECK(wc::verify(c, m, 2, {}).compared);
    wc::UnpackOptions uo;
    wc::unpack(c, t / "back.safetensors", uo);
    CHECK(tu::read_file(t / "back.safetensors") == tu::read_file(m));
  }

  TEST_CASE("homogeneous weights never get float-ans-mixed: the file stays 1.0") {
    tu::TempDir t;
    const std::string m = t / "m.safetensors", c = t / "m.wcz";
    std::vector<stb::StTensor> ts = {
        {"a.weight", DType::BF16, {1024, kCols}, testdata::weights(DType::BF16, 1024 * kCols, 21)},
        {"b.weight", DType::F16, {512, kCols}, testdata::weights(DType::F16, 512 * kCols, 22)},
        {"zeros", DType::BF16, {512, kCols}, std::vector<uint8_t>(512 * kCols * 2, 0)},
    };
    tu::write_file(m, stb::build(ts));
    wc::PackOptions po;
    po.threads = 2;
    wc::pack(m, c, po);
    std::vector<wc::TensorSummary> sum;
    const auto ir = wc::inspect(c, false, &sum);
    CHECK(ir.version_major == 1);
    CHECK(ir.version_minor == 0);
    REQUIRE(sum.size() == 3);
    CHECK(sum[0].codec == "float-ans");
    CHECK(sum[1].codec == "float-ans");
    CHECK(sum[2].codec == "zstd");  // zero everywhere: zstd on every chunk
    CHECK(wc::verify(c, m, 2, {}).compared);
  }
}
