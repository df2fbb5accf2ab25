// float-ans-trim (codec 3, container 1.2): `pack --codec auto` leaves out
// mantissa bits that are zero in every element where that pays, and only
// there, so every other file stays as 1.0/1.1 readers know it.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lib/api.h"
#include "packed_check.h"
#include "st_builder.h"
#include "test_util.h"
#include "weights_gen.h"

using wc::DType;

namespace {

// F32 bit patterns of BF16 values (the low 16 bits zero), or of F16 values
// (the low 13 bits zero), from weight-like floats.
std::vector<uint8_t> f32_of_reduced(size_t n, unsigned zero_bits, uint64_t seed) {
  const auto w = testdata::weights(DType::F32, n, seed);
  std::vector<uint8_t> out(w);
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &out[4 * i], 4);
    u &= ~((1u << zero_bits) - 1u);
    std::memcpy(&out[4 * i], &u, 4);
  }
  return out;
}

}  // namespace

TEST_SUITE("trim") {
  TEST_CASE("an F32 model of BF16 values: float-ans-trim, container 1.2, restored byte for byte") {
    tu::TempDir t;
    const std::string m = t / "m.safetensors", c = t / "m.wcz";
    std::vector<stb::StTensor> ts = {
        {"a.weight", DType::F32, {128, 256}, f32_of_reduced(128 * 256, 16, 1)},
        {"b.weight", DType::F32, {64, 128}, f32_of_reduced(64 * 128, 13, 2)},
        {"zeros", DType::F32, {256, 256}, std::vector<uint8_t>(256 * 256 * 4, 0)},
        {"full", DType::F32, {64, 64}, testdata::weights(DType::F32, 64 * 64, 3)},
    };
    tu::write_file(m, stb::build(ts));
    wc::PackOptions po;
    po.threads = 2;
    const auto r = wc::pack(m, c, po);
    // zeros: zero low bits too, but zstd codes it to nothing; full: no zero bits
    const auto sum = tu::check_packed(c, m, 2, {"float-ans-trim", "float-ans-trim", "zstd", "float-ans"},
                                      t / "back.safetensors");
    CHECK(sum[0].bits_per_weight < 17);  // 16 of 32 bits are never stored
    // forcing the codec works on any float tensor, zero bits or not
    po.codec = "float-ans-trim";
    po.force = true;
    wc::pack(m, c, po);
    CHECK(wc::verify(c, m, 2, {}).compared);
    (void)r;
  }

  TEST_CASE("constant tensors and full-precision weights stay float-ans or zstd, and the file 1.0") {
    tu::TempDir t;
    const std::string m = t / "m.safetensors", c = t / "m.wcz";
    std::vector<uint8_t> ones(64 * 64 * 4);
    const float one = 1.0f;
    for (size_t i = 0; i < 64 * 64; ++i) std::memcpy(&ones[4 * i], &one, 4);
    std::vector<stb::StTensor> ts = {
        {"ones", DType::F32, {64, 64}, ones},
        {"bias", DType::F32, {4096}, std::vector<uint8_t>(4096 * 4, 0)},
        {"w", DType::F32, {64, 256}, testdata::weights(DType::F32, 64 * 256, 4)},
        {"tiny", DType::F32, {8}, f32_of_reduced(8, 16, 5)},  // too small to pay
    };
    tu::write_file(m, stb::build(ts));
    wc::PackOptions po;
    po.threads = 2;
    wc::pack(m, c, po);
    std::vector<wc::TensorSummary> sum;
    const auto ir = wc::inspect(c, false, &sum);
    CHECK(ir.version_major == 1);
    CHECK(ir.version_minor == 0);
    for (const auto& s : sum) CHECK(s.codec != "float-ans-trim");
    CHECK(wc::verify(c, m, 2, {}).compared);
  }
}
