// The 64-byte file header at offset 0: magic, version, and where the
// manifest is. Checksummed on its own so a flipped bit is caught before the
// manifest is trusted.
#pragma once
#include <cstddef>
#include <cstdint>

namespace wc {

struct FileHeader {
  uint16_t major = 0, minor = 0;
  uint64_t manifest_stored = 0;  // zstd frame bytes, starting at offset 64
  uint64_t manifest_raw = 0;
  uint64_t manifest_xxh3 = 0;
};

void write_file_header(const FileHeader& h, uint8_t out[64]);
// Validates magic, version, reserved bytes, checksum and limits; `file_size` is
// UINT64_MAX when unknown (streaming).
FileHeader read_file_header(const uint8_t in[64], uint64_t file_size);

// Throws Errc::bad_magic for a file that does not start with the magic; the
// message says so, and suggests `wcodec pack` when the n >= 0 bytes at p look
// like the start of a safetensors file.
[[noreturn]] void fail_not_container(const uint8_t* p, uint64_t n);

}  // namespace wc
