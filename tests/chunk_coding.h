// One chunk through a codec, for the codec suites (mixed, patch,
// byte_groups): encode it, and decode it with both entry points from a copy
// that ends against a PROT_NONE page, so an over-read faults in every build.
#pragma once
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "codec/codec.h"
#include "test_util.h"

namespace tu {

// `v` as one chunk of codec c; try_zstd: whether a float-ans-mixed (or
// later) chunk also tries zstd (and, under codec 7, the byte planes).
inline std::vector<uint8_t> encode_chunk(wc::CodecId c, wc::DType t, const std::vector<uint8_t>& v,
                                         bool try_zstd = true) {
  wc::EncodeOptions o;
  o.mixed_try_zstd = try_zstd;
  std::vector<uint8_t> out;
  wc::encode_chunk(c, t, v.data(), v.size(), out, o);
  return out;
}

// decode_chunk into `back` (its size: the chunk's raw bytes); decode_chunk_ws
// must return the same code and, on success, the same bytes.
inline wc::Errc decode_both(wc::CodecId c, wc::DType t, const std::vector<uint8_t>& s, std::vector<uint8_t>& back) {
  GuardedCopy g(s.data(), s.size());
  const wc::Errc e = wc::decode_chunk(c, t, g.data, g.size, back.data(), back.size());
  std::vector<uint8_t> ws(wc::decode_workspace_size()), back2(back.size());
  CHECK(wc::decode_chunk_ws(c, t, g.data, g.size, back2.data(), back2.size(), ws.data(), ws.size()) == e);
  if (e == wc::Errc::ok) CHECK(back2 == back);
  return e;
}

}  // namespace tu
