// Structure-aware fuzzing of the container (targets container_struct and
// stream_struct). A fuzz input is not a container but a description of one;
// assemble() turns it into a container whose checksums are all valid and
// whose layout follows spec/FORMAT.md §5, so the fuzzer spends its time in
// the semantic checks behind the checksums instead of on the first XXH3.
//
// Description (little-endian; every length is clamped to the bytes that are
// left, so any byte string is a description):
//
//   u32 manifest_len, then manifest_len bytes: the raw (decompressed) manifest
//   u16 chunk_count,  then chunk_count x { u32 len, then len bytes: a stored payload }
//   the rest: tweaks, 6 bytes each { u8 op, u8 sel, u32 val } (the first 16 count)
//
// assemble():
//  1. applies the manifest tweaks (clone a file or tensor record many times);
//  2. reads the manifest leniently (format only, no validation) and, unless a
//     kFixups tweak turns them off, fixes what a mutation of one field breaks
//     elsewhere: byte_size from shape and dtype, each safetensors file's stored
//     header (rewritten from its records when it does not describe them; the
//     metadata is lost then), the chunk count, file sizes,
//     the number of payloads (missing ones are zeros encoded with the tensor's
//     codec, extra ones dropped) and each file's XXH3-64 (by decoding its
//     chunks, within fuzz_common.h's caps);
//  3. compresses the manifest (zstd level 1) and writes header, manifest,
//     chunk headers, payloads at their aligned offsets, the index (raw sizes
//     from the manifest when it reads, else the stored sizes) and the footer,
//     version 1.1 when a file name is a path, else 1.0 (as a writer does);
//  4. applies the container tweaks (lies in checksum-covered places: versions,
//     reserved fields, index entries, chunk headers, padding, extra zstd
//     frames, frames without a content size, ...) and only then computes every
//     checksum, so the lies carry valid checksums.
// It reports whether the result certainly breaks a MUST of the spec (a lie it
// told, or a rule of §4 it sees broken in the manifest: counts, sizes, names,
// reserved fields, params, stored safetensors headers): a reader must then
// reject the file.
//
// Nothing here calls the validating readers; the converter describe() (for
// seeds) uses the header/footer/zstd/index helpers on containers the library
// wrote.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace wcfuzz::sa {

struct Description {
  std::vector<uint8_t> manifest;             // raw manifest bytes
  std::vector<std::vector<uint8_t>> chunks;  // stored payloads, in chunk order
  std::vector<uint8_t> tweaks;               // 6 bytes per tweak
};

inline constexpr size_t kTweakSize = 6;
inline constexpr size_t kMaxTweaks = 16;

// op is taken modulo kOpCount; a tweak of a chunk or index entry picks it as
// sel % (number of chunks).
enum Op : uint8_t {
  kVersionMinor,       // header and footer minor = val (allowed: a 1.x reader reads 1.y)
  kHeaderMinor,        // header minor = val
  kFooterMinor,        // footer minor = val
  kVersionMajor,       // header and footer major = val
  kHeaderFlags,        // header flags (u32 at 12) = val
  kHeaderReserved,     // header reserved byte 40 + sel % 16 = val
  kFooterFlags,        // footer flags (u32 at 44) = val
  kManifestRawDelta,   // header manifest_raw += (int32)val
  kManifestFrame,      // after the manifest frame, sel % 4: 0 skippable frame, 1 zero bytes,
                       // 2 empty zstd frame, 3 zstd frame with content
  kManifestNoSize,     // manifest frame without a content size
  kIndexRawDelta,      // footer index_raw += (int32)val
  kIndexFrame,         // as kManifestFrame, after the index frame
  kIndexNoSize,        // index frame without a content size
  kIndexCount,         // the index's u64 count += (int32)val
  kEntryOffset,        // index entry sel: offset += (int32)val
  kEntryStored,        // index entry sel: stored_size = val (0xFFFFFFFF: the largest plausible, §5)
  kEntryRaw,           // index entry sel: raw_size = val
  kEntryHash,          // index entry sel: xxh3 ^= val
  kChunkSeq,           // chunk header sel: sequence = val
  kChunkStored,        // chunk header sel: stored_size = val (0xFFFFFFFF: the largest plausible, §5)
  kChunkHash,          // chunk header sel: xxh3 ^= val
  kPadding,            // a non-zero byte in the padding before chunk sel % (count + 1) (= count or
                       // sel = 255: before the index)
  kGap,                // 64 more zero bytes before chunk sel (as kPadding); the index says where they are
  kDropChunk,          // chunk sel left out of the file and the index
  kExtraEntry,         // one more index entry (a copy of the last, or zeros)
  kFooterFileSize,     // footer file_size += (int32)val
  kFooterIndexOffset,  // footer index_offset += (int32)val
  kFixups,             // turn fixups off: bit 0 byte_size, 1 file size, 2 chunk count,
                       // 3 file hash, 4 payload count, 5 safetensors headers
  kCloneTensor,        // tensor sel: val & 0xFFFF more copies right after it (bit 31: same name), up to
                       // 128 KiB of manifest (sel bit 7: 256 KiB), the stored header's growth included
  kCloneFile,          // file sel: val & 0xFFFF more empty safetensors files with its prefix (bit 31:
                       // same name), up to 128 KiB of manifest (sel bit 7: 512 KiB)
  kOpCount
};

// Lenient, never fails; parse(serialize(d)) == d for up to 65535 chunks.
Description parse(const uint8_t* p, size_t n);
std::vector<uint8_t> serialize(const Description& d);
void add_tweak(Description& d, uint8_t op, uint8_t sel, uint32_t val);

struct Assembled {
  std::vector<uint8_t> bytes;  // the container
  bool must_reject = false;    // certainly breaks a MUST of spec/FORMAT.md (a tweak's lie, or a
                               // manifest rule the assembler sees broken): readers must refuse it
  const char* why = "";        // the first reason, for the report
};

Assembled assemble(const Description& d);

// Container -> description (manifest decompressed, each payload cut out
// using the index). Throws wc::Error on a file the library would not write.
Description describe(const std::vector<uint8_t>& wcz);

// The lenient view of a raw manifest that assemble() and the custom
// mutator use: where each record and field is. No validation beyond "the
// bytes are there".
struct MFile {
  size_t at = 0, end = 0, name_len = 0;
  uint8_t kind = 0;
  uint32_t first = 0, count = 0;
  uint64_t prefix_len = 0;
  size_t size_at() const { return at + 4 + name_len; }
  size_t xxh_at() const { return size_at() + 8; }
  size_t first_at() const { return size_at() + 16; }
  size_t count_at() const { return size_at() + 20; }
  size_t plen_at() const { return size_at() + 24; }
  size_t prefix_at() const { return size_at() + 32; }
};
struct MTensor {
  size_t at = 0, end = 0, name_len = 0;
  uint8_t dtype = 0, codec = 0, rank = 0;
  uint64_t byte_size = 0;
  uint32_t chunk_size = 0;
  // 1.4: an exact tensor with data and chunk size 0 holds its payload (u32
  // size, then the bytes) after its params
  bool inline_payload = false;
  size_t payload_at = 0, payload_len = 0;
  size_t dtype_at() const { return at + 2 + name_len; }
  size_t shape_at() const { return dtype_at() + 4; }
  size_t byte_size_at() const { return shape_at() + 8 * size_t(rank); }
  size_t chunk_size_at() const { return byte_size_at() + 8; }
  size_t params_at() const { return chunk_size_at() + 4; }  // u16 length, then bytes
};
struct MLayout {
  uint32_t nfiles = 0, ntensors = 0, nchunks = 0;
  std::vector<MFile> files;
  std::vector<MTensor> tensors;
  size_t tensors_end = 0;  // where the extension count begins
};
bool parse_layout(const std::vector<uint8_t>& m, MLayout& out);

// Property checks of the struct targets: WC_FUZZ_CHECK with a tag that the
// environment variable WCODEC_FUZZ_IGNORE can turn off, so that a fuzzing
// session can look past a finding that is not fixed yet. It is a
// comma-separated list of TAG (that check, always) or TAG~TEXT (only when
// the check's detail, e.g. a reader's error message, contains TEXT).
bool ignored(const char* tag, std::string_view detail = {});

}  // namespace wcfuzz::sa

#define WC_STRUCT_CHECK(tag, cond)                                                                          \
  do {                                                                                                      \
    if (!(cond) && !::wcfuzz::sa::ignored(tag)) {                                                           \
      std::fprintf(stderr, "fuzz property failed [%s]: %s (%s:%d)\n", tag, #cond, __FILE__, __LINE__); \
      std::abort();                                                                                         \
    }                                                                                                       \
  } while (0)
