#include "format/zframe.h"

#include <string>
#include <zstd.h>

#include "platform/error.h"

namespace wc {

std::vector<uint8_t> zframe_compress(const std::vector<uint8_t>& raw, int level) {
  std::vector<uint8_t> out(ZSTD_compressBound(raw.size()));
  size_t r = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(r)) fail(Errc::io, std::string("zstd: ") + ZSTD_getErrorName(r));
  out.resize(r);
  return out;
}

bool zstd_single_frame(const uint8_t* p, size_t n) {
  if (n < 4 || p[0] != 0x28 || p[1] != 0xB5 || p[2] != 0x2F || p[3] != 0xFD) return false;  // ZSTD_MAGICNUMBER
  size_t first = ZSTD_findFrameCompressedSize(p, n);
  return !ZSTD_isError(first) && first == n;
}

std::vector<uint8_t> zframe_decompress(const uint8_t* p, size_t n, uint64_t raw_size, const char* what, uint64_t offset) {
  if (!zstd_single_frame(p, n))
    fail_at(Errc::corrupt, offset, std::string(what) + " is not exactly one zstd frame");
  // The frame must declare the size we expect before we allocate for it.
  unsigned long long declared = ZSTD_getFrameContentSize(p, n);
  if (declared != raw_size)
    fail_at(Errc::corrupt, offset, std::string(what) + " frame does not declare its recorded size");
  // zstd expands at most 32768x (a 128 KiB RLE block takes at least 4 bytes).
  if (raw_size > uint64_t(n) * 32768 + 131072)
    fail_at(Errc::corrupt, offset, std::string(what) + " frame declares more bytes than it can hold");
  std::vector<uint8_t> out(raw_size);
  size_t r = ZSTD_decompress(out.data(), out.size(), p, n);
  if (ZSTD_isError(r) || r != raw_size)
    fail_at(Errc::corrupt, offset, std::string(what) + " does not decompress to its recorded size");
  return out;
}

}  // namespace wc
