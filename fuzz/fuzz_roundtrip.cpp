// Round trip: arbitrary bytes as a tensor chunk encode with one codec and
// decode to themselves. Compiled once per codec with WC_FUZZ_CODEC = 0 (raw),
// 1 (zstd) or 2 (float_ans).
//
// Input: byte 0 picks the dtype, byte 1 the encoder settings (zstd level;
// float_ans parameters, 0 = defaults), the rest is the chunk (cut to whole
// elements). Checks: encoding succeeds, the stored size is within what the
// container accepts (max_stored_size), and decoding gives the input back.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "codec/codec.h"
#include "format/container.h"
#include "fuzz/fuzz_common.h"
#if WC_FUZZ_CODEC == 2
#include "codec/float_ans.h"
#endif

#ifndef WC_FUZZ_CODEC
#error "define WC_FUZZ_CODEC"
#endif

namespace {

void check_decodes(wc::CodecId c, wc::DType t, const std::vector<uint8_t>& stored, const uint8_t* raw, size_t n) {
  WC_FUZZ_CHECK(stored.size() <= wc::max_stored_size(n));
  std::vector<uint8_t> exact(stored);  // own-size buffer: over-reads are caught
  std::vector<uint8_t> out(n + 1, 0xA5);
  WC_FUZZ_CHECK(wc::decode_chunk(c, t, exact.data(), exact.size(), out.data(), n) == wc::Errc::ok);
  WC_FUZZ_CHECK(out[n] == 0xA5);
  WC_FUZZ_CHECK(n == 0 || std::memcmp(out.data(), raw, n) == 0);
#if WC_FUZZ_CODEC == 2
  std::vector<uint8_t> ref(n + 1, 0x5A);
  WC_FUZZ_CHECK(wc::fans::decode_reference(t, exact.data(), exact.size(), ref.data(), n) == wc::Errc::ok);
  WC_FUZZ_CHECK(n == 0 || std::memcmp(ref.data(), raw, n) == 0);
#endif
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const auto codec = static_cast<wc::CodecId>(WC_FUZZ_CODEC);
  const wc::DType t = wcfuzz::pick_dtype(data[0]);
  [[maybe_unused]] const uint8_t opt = data[1];
  size_t n = size - 2;
  n -= n % wcfuzz::elem_bytes(t);
  std::vector<uint8_t> raw(data + 2, data + 2 + n);
  std::vector<uint8_t> stored;
  wc::EncodeOptions eo;
#if WC_FUZZ_CODEC == 1
  eo.zstd_level = int(opt % 23) - 3;  // -3 .. 19
  if (eo.zstd_level == 0) eo.zstd_level = 1;
#endif
  wc::encode_chunk(codec, t, raw.data(), n, stored, eo);  // must not throw for valid input
  check_decodes(codec, t, stored, raw.data(), n);
#if WC_FUZZ_CODEC == 2
  // codec 5 (float-ans-patch): mode 4 where a listed few spoil a trim;
  // codec 7 (float-ans-groups): mode 5, the byte planes, where they are smallest;
  // codec 8 (float-ans-pairs): mode 6 for FP8
  for (const wc::CodecId c : {wc::CodecId::float_ans_patch, wc::CodecId::float_ans_groups, wc::CodecId::float_ans_pairs}) {
    wc::encode_chunk(c, t, raw.data(), n, stored, eo);
    WC_FUZZ_CHECK(stored.size() <= wc::max_stored_size(n));
    std::vector<uint8_t> exact(stored), out(n + 1, 0xA5);
    WC_FUZZ_CHECK(wc::decode_chunk(c, t, exact.data(), exact.size(), out.data(), n) == wc::Errc::ok);
    WC_FUZZ_CHECK(out[n] == 0xA5 && (n == 0 || std::memcmp(out.data(), raw.data(), n) == 0));
  }
  if (opt != 0) {
    // Explicit encoder parameters within their documented ranges.
    wc::fans::Params p;
    p.k = int(opt & 7) - 1;               // -1 (choose) .. 6
    p.joint = int((opt >> 3) & 1) - ((opt >> 7) & 1);  // -1, 0 or 1
    p.qshift = int((opt >> 4) & 3);       // 0..3
    p.sub_bits = 6 + int(opt % 10);       // 6..15
    p.prob_bits = 10 + int((opt >> 2) % 5);  // 10..14
    try {
      wc::fans::encode_with(t, raw.data(), n, stored, p);
    } catch (const wc::Error& e) {
      // Only a configuration the encoder declines may throw, and then with
      // a reason (default parameters above never throw).
      wcfuzz::check_error(e);
      return 0;
    }
    check_decodes(codec, t, stored, raw.data(), n);
  }
#endif
  return 0;
}
