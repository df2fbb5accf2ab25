// One codec's decoder fed arbitrary bytes. Compiled once per codec with
// WC_FUZZ_CODEC = 0 (raw), 1 (zstd) or 2 (float_ans).
//
// Input: byte 0 picks the dtype (float_ans: one of its five float types;
// its bit 7 decodes as float-ans-trim, codec 3, whose header may leave out
// zero mantissa bits),
// bytes 1..4 the decoded size (u32 LE, reduced modulo 256 KiB + 1), the rest is
// the stored chunk. Checks: the decoder stays inside its buffers (ASan, and a
// canary for builds without it), returns ok or Errc::codec, is deterministic,
// and float_ans's fast decoder agrees with the reference decoder.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "codec/codec.h"
#include "fuzz/fuzz_common.h"
#if WC_FUZZ_CODEC == 2
#include "codec/float_ans.h"
#endif

#ifndef WC_FUZZ_CODEC
#error "define WC_FUZZ_CODEC"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
#if WC_FUZZ_CODEC == 2
  const bool trim = (data[0] & 0x80) != 0;
  const auto codec = trim ? wc::CodecId::float_ans_trim : wc::CodecId::float_ans;
#else
  const auto codec = static_cast<wc::CodecId>(WC_FUZZ_CODEC);
#endif
  const wc::DType t = wcfuzz::pick_dtype(data[0]);
  uint32_t dn;
  std::memcpy(&dn, data + 1, 4);
  const size_t dst_n = dn % (wcfuzz::kMaxFuzzDecodeOut + 1);
  // The stored bytes in a buffer of their own size, so reading past them is caught.
  std::vector<uint8_t> src(data + 5, data + size);
  constexpr size_t kCanary = 64;
  std::vector<uint8_t> dst(dst_n + kCanary, 0xA5);
  wc::Errc rc = wc::decode_chunk(codec, t, src.data(), src.size(), dst.data(), dst_n);
  WC_FUZZ_CHECK(rc == wc::Errc::ok || rc == wc::Errc::codec);
  for (size_t i = 0; i < kCanary; ++i) WC_FUZZ_CHECK(dst[dst_n + i] == 0xA5);
  if (rc == wc::Errc::ok) {
    std::vector<uint8_t> again(dst_n + 1);
    WC_FUZZ_CHECK(wc::decode_chunk(codec, t, src.data(), src.size(), again.data(), dst_n) == wc::Errc::ok);
    WC_FUZZ_CHECK(std::memcmp(again.data(), dst.data(), dst_n) == 0);
  }
#if WC_FUZZ_CODEC == 2
  std::vector<uint8_t> ref(dst_n + kCanary, 0x5A);
  wc::Errc rrc = wc::fans::decode_reference(t, src.data(), src.size(), ref.data(), dst_n, trim);
  for (size_t i = 0; i < kCanary; ++i) WC_FUZZ_CHECK(ref[dst_n + i] == 0x5A);
  WC_FUZZ_CHECK(rrc == rc);
  if (rc == wc::Errc::ok) WC_FUZZ_CHECK(std::memcmp(ref.data(), dst.data(), dst_n) == 0);
  wc::fans::ChunkInfo info;
  (void)wc::fans::chunk_info(t, src.data(), src.size(), dst_n, &info);
  // the same bytes as a codec-5 chunk (its mode 4: a list, then an inner payload)
  std::vector<uint8_t> p5(dst_n + kCanary, 0xA5);
  const wc::Errc r5 = wc::decode_chunk(wc::CodecId::float_ans_patch, t, src.data(), src.size(), p5.data(), dst_n);
  WC_FUZZ_CHECK(r5 == wc::Errc::ok || r5 == wc::Errc::codec);
  for (size_t i = 0; i < kCanary; ++i) WC_FUZZ_CHECK(p5[dst_n + i] == 0xA5);
  // and as a codec-7 chunk (its mode 5: byte planes in zstd frames) and a
  // codec-8 chunk (its mode 6: FP8 pairs), by both entry points, which agree
  std::vector<uint8_t> ws(wc::decode_workspace_size());
  for (const wc::CodecId c : {wc::CodecId::float_ans_groups, wc::CodecId::float_ans_pairs}) {
    std::vector<uint8_t> p(dst_n + kCanary, 0xA5), w(dst_n + kCanary, 0xA5);
    const wc::Errc r = wc::decode_chunk(c, t, src.data(), src.size(), p.data(), dst_n);
    WC_FUZZ_CHECK(r == wc::Errc::ok || r == wc::Errc::codec);
    WC_FUZZ_CHECK(wc::decode_chunk_ws(c, t, src.data(), src.size(), w.data(), dst_n, ws.data(), ws.size()) == r);
    for (size_t i = 0; i < kCanary; ++i) WC_FUZZ_CHECK(p[dst_n + i] == 0xA5 && w[dst_n + i] == 0xA5);
    if (r == wc::Errc::ok) WC_FUZZ_CHECK(std::memcmp(p.data(), w.data(), dst_n) == 0);
  }
#endif
  return 0;
}
