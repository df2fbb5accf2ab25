// zstd frames for the manifest and the index: compress, and decompress with
// the raw size known in advance and bounded.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace wc {

std::vector<uint8_t> zframe_compress(const std::vector<uint8_t>& raw, int level);
// Throws Errc::corrupt (naming `what` and `offset`) unless the frame decodes
// to exactly `raw_size` bytes.
std::vector<uint8_t> zframe_decompress(const uint8_t* p, size_t n, uint64_t raw_size, const char* what, uint64_t offset);

}  // namespace wc
