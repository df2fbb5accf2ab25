// zstd frames for the manifest and the index: compress, and decompress with
// the raw size known in advance and bounded.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace wc {

// True when p[0..n) is exactly one zstd frame (RFC 8878 §3.1.1; not a
// skippable frame, nothing after it). zstd's decoder would otherwise also
// decode a second frame, or skip a skippable one carrying anything at all.
bool zstd_single_frame(const uint8_t* p, size_t n);

std::vector<uint8_t> zframe_compress(const std::vector<uint8_t>& raw, int level);
// Throws Errc::corrupt (naming `what` and `offset`) unless p[0..n) is one
// frame that declares `raw_size` as its content size and decodes to it.
std::vector<uint8_t> zframe_decompress(const uint8_t* p, size_t n, uint64_t raw_size, const char* what, uint64_t offset);

}  // namespace wc
