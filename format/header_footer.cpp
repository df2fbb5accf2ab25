#include <cstring>
#include <string>
#include "format/hash.h"

#include "format/bytes.h"
#include "format/container.h"
#include "format/footer.h"
#include "format/header.h"

namespace wc {

static void check_version(uint16_t major, uint16_t minor, uint64_t at) {
  if (major != kVersionMajor && major != kVersionMajorLossy)
    fail_at(Errc::unsupported_version, at,
            "container version " + std::to_string(major) + "." + std::to_string(minor) +
                " is not supported (this reader reads 1.x and 2.x)");
}

void write_file_header(const FileHeader& h, uint8_t out[64]) {
  std::memset(out, 0, 64);
  std::memcpy(out, kHeadMagic, 8);
  store_u16(out + 8, h.major);
  store_u16(out + 10, h.minor);
  store_u64(out + 16, h.manifest_stored);
  store_u64(out + 24, h.manifest_raw);
  store_u64(out + 32, h.manifest_xxh3);
  store_u64(out + 56, XXH3_64bits(out, 56));
}

void fail_not_container(const uint8_t* p, uint64_t n) {
  // safetensors: a little-endian header length, then the JSON object
  const bool st = n >= 9 && load_u64(p) >= 2 && load_u64(p) <= 100'000'000 && p[8] == '{';
  fail_at(Errc::bad_magic, 0,
          st ? "not a wcodec container: this looks like a safetensors file (to compress it: wcodec pack)"
             : "not a wcodec container");
}

FileHeader read_file_header(const uint8_t in[64], uint64_t file_size) {
  if (std::memcmp(in, kHeadMagic, 8) != 0) fail_not_container(in, 64);
  FileHeader h;
  h.major = load_u16(in + 8);
  h.minor = load_u16(in + 10);
  if (load_u64(in + 56) != XXH3_64bits(in, 56)) fail_at(Errc::checksum, 0, "file header");
  check_version(h.major, h.minor, 8);
  if (load_u32(in + 12) != 0) fail_at(Errc::corrupt, 12, "reserved header flags are not zero");
  for (int i = 40; i < 56; ++i)
    if (in[i] != 0) fail_at(Errc::corrupt, i, "reserved header bytes are not zero");
  h.manifest_stored = load_u64(in + 16);
  h.manifest_raw = load_u64(in + 24);
  h.manifest_xxh3 = load_u64(in + 32);
  if (h.manifest_stored > kMaxManifestSize || h.manifest_raw > kMaxManifestSize)
    fail_at(Errc::limit, 16, "manifest size exceeds limit");
  if (h.manifest_raw > max_meta_raw_size(h.manifest_stored))
    fail_at(Errc::limit, 24, "manifest claims an implausible decompressed size for its stored size");
  if (file_size != UINT64_MAX && kHeaderSize + h.manifest_stored + kFooterSize > file_size)
    fail_at(Errc::truncated, 16, "manifest runs past the end of the file");
  return h;
}

void write_file_footer(const FileFooter& f, uint8_t out[64]) {
  std::memset(out, 0, 64);
  store_u64(out + 0, f.index_offset);
  store_u64(out + 8, f.index_stored);
  store_u64(out + 16, f.index_raw);
  store_u64(out + 24, f.index_xxh3);
  store_u64(out + 32, f.file_size);
  store_u16(out + 40, f.major);
  store_u16(out + 42, f.minor);
  store_u64(out + 48, XXH3_64bits(out, 48));
  std::memcpy(out + 56, kTailMagic, 8);
}

FileFooter read_file_footer(const uint8_t in[64], uint64_t at) {
  if (std::memcmp(in + 56, kTailMagic, 8) != 0)
    fail_at(Errc::bad_magic, at + 56, "no magic at the end of the file (truncated, or not a wcodec container)");
  if (load_u64(in + 48) != XXH3_64bits(in, 48)) fail_at(Errc::checksum, at, "footer");
  FileFooter f;
  f.index_offset = load_u64(in + 0);
  f.index_stored = load_u64(in + 8);
  f.index_raw = load_u64(in + 16);
  f.index_xxh3 = load_u64(in + 24);
  f.file_size = load_u64(in + 32);
  f.major = load_u16(in + 40);
  f.minor = load_u16(in + 42);
  check_version(f.major, f.minor, at + 40);
  if (load_u32(in + 44) != 0) fail_at(Errc::corrupt, at + 44, "reserved footer flags are not zero");
  if (f.file_size != at + kFooterSize)
    fail_at(Errc::truncated, at + 32, "file length " + std::to_string(at + kFooterSize) +
                                          " differs from the recorded length " + std::to_string(f.file_size));
  if (f.index_stored > kMaxIndexSize || f.index_raw > kMaxIndexSize) fail_at(Errc::limit, at, "index size exceeds limit");
  if (f.index_raw > max_meta_raw_size(f.index_stored))
    fail_at(Errc::limit, at + 16, "index claims an implausible decompressed size for its stored size");
  if (f.index_offset < kHeaderSize || f.index_offset > at || f.index_stored != at - f.index_offset)
    fail_at(Errc::corrupt, at, "index does not end where the footer begins");
  return f;
}

}  // namespace wc
