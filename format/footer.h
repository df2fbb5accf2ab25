// The 64-byte footer at the very end: where the index is, the file's total
// length, the version again, a checksum, and the closing magic. A reader with
// random access starts here.
#pragma once
#include <cstdint>

namespace wc {

struct FileFooter {
  uint64_t index_offset = 0;
  uint64_t index_stored = 0;
  uint64_t index_raw = 0;
  uint64_t index_xxh3 = 0;
  uint64_t file_size = 0;
  uint16_t major = 0, minor = 0;
};

void write_file_footer(const FileFooter& f, uint8_t out[64]);
// `footer_offset` is where the 64 bytes were read from (file_size - 64).
FileFooter read_file_footer(const uint8_t in[64], uint64_t footer_offset);

}  // namespace wc
