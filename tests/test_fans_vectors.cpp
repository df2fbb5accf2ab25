// float-ans payload vectors with several 32-lane groups sharing word streams
// (tests/vectors/float_ans, made by make_vectors.cpp there): every decoder
// must give the expected bytes, and the encoder still writes these bytes.
#include <doctest/doctest.h>

#include "codec/float_ans.h"
#include "test_util.h"

TEST_SUITE("vectors_float_ans") {
  TEST_CASE("multi-group float-ans payloads decode to the expected bytes") {
    struct V { const char* file; wc::DType t; int sub_bits, joint; };
    const V vs[] = {{"bf16_3groups.BF16", wc::DType::BF16, 6, 0},
                    {"f16_2groups_joint.F16", wc::DType::F16, 6, 1},
                    {"f32_partial_group.F32", wc::DType::F32, 6, -1},
                    {"e4m3_2groups.F8_E4M3", wc::DType::F8_E4M3, 6, -1}};
    const std::string dir = std::string(WCODEC_TEST_DIR) + "/vectors/float_ans/";
    for (const V& v : vs) {
      CAPTURE(v.file);
      auto enc = tu::read_file(dir + v.file + ".fans");
      auto raw = tu::read_file(dir + v.file + ".raw");
      REQUIRE(enc.size() > 100);
      REQUIRE(raw.size() > enc.size());
      std::vector<uint8_t> out(raw.size());
      CHECK(wc::fans::decode(v.t, enc.data(), enc.size(), out.data(), out.size()) == wc::Errc::ok);
      CHECK(out == raw);
      std::fill(out.begin(), out.end(), 0);
      CHECK(wc::fans::decode_reference(v.t, enc.data(), enc.size(), out.data(), out.size()) == wc::Errc::ok);
      CHECK(out == raw);
      wc::fans::Params p;
      p.sub_bits = v.sub_bits;
      p.joint = v.joint;
      p.allow_raw = false;
      std::vector<uint8_t> again;
      wc::fans::encode_with(v.t, raw.data(), raw.size(), again, p);
      CHECK(again == enc);  // the encoder is deterministic and unchanged
    }
  }
}
