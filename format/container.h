// The wcodec container, version 1: constants and the in-memory form of its
// records. spec/FORMAT.md is the normative description of the bytes; this
// header mirrors it. format/ knows nothing of what a codec puts in a chunk.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "format/dtype.h"

namespace wc {

inline constexpr uint8_t kHeadMagic[8] = {0x89, 'W', 'C', 'Z', '\r', '\n', 0x1A, '\n'};
inline constexpr uint8_t kTailMagic[8] = {0x89, 'W', 'C', 'Z', 'E', 'N', 'D', '\n'};
inline constexpr uint16_t kVersionMajor = 1;
// 1.1 only when a file name is a relative path (a model folder with
// subfolders); every other container is written as 1.0, unchanged.
inline constexpr uint16_t kVersionMinor = 1;
inline constexpr uint16_t kVersionMinorFlat = 0;

inline constexpr uint64_t kHeaderSize = 64;
inline constexpr uint64_t kFooterSize = 64;
inline constexpr uint64_t kChunkHeaderSize = 16;
inline constexpr uint64_t kAlign = 64;  // every chunk payload starts at a multiple of this

// Hard limits: anything larger is refused before memory is allocated for it.
inline constexpr uint64_t kMaxManifestSize = 1ull << 30;
inline constexpr uint64_t kMaxIndexSize = 1ull << 30;
inline constexpr uint32_t kMaxChunkSize = 1u << 28;  // raw bytes per chunk
inline constexpr uint32_t kMaxFiles = 1u << 16;
inline constexpr uint32_t kMaxTensors = 10'000'000;
inline constexpr uint32_t kMaxChunks = 1u << 28;
inline constexpr unsigned kMaxRank = 64;
inline constexpr size_t kMaxFileNameLen = 255;   // one path component (NAME_MAX)
inline constexpr size_t kMaxFilePathLen = 4095;  // a whole relative path (PATH_MAX - 1)
inline constexpr size_t kMaxFilePathDepth = 32;  // components in a relative path
// Codec ids below this (raw, zstd, float-ans) are defined by 1.0 with no
// parameters: a record of theirs with parameters is corrupt.
inline constexpr uint8_t kCodecIdsWithoutParams = 3;

enum class FileKind : uint8_t {
  safetensors = 0,  // prefix = the original header bytes, then tensor data
  blob = 1,         // an opaque file (e.g. model.safetensors.index.json): one U8 tensor
};

struct FileRecord {
  FileKind kind = FileKind::safetensors;
  std::string name;          // relative path: components joined by '/' (1.1)
  uint64_t size = 0;         // original file length
  uint64_t xxh3 = 0;         // XXH3-64 of the original file
  uint32_t first_tensor = 0;
  uint32_t tensor_count = 0;
  std::vector<uint8_t> prefix;  // bytes written before the first tensor
};

struct TensorRecord {
  std::string name;
  DType dtype = DType::U8;
  uint8_t codec = 0;
  std::vector<uint64_t> shape;
  uint64_t byte_size = 0;
  uint32_t chunk_size = 0;        // raw bytes per chunk; the last may be shorter
  std::vector<uint8_t> params;    // codec parameters (none defined in 1.0)
  // Derived, not stored:
  uint32_t first_chunk = 0;
  uint32_t chunk_count = 0;
  uint64_t elements() const;
  uint32_t chunk_raw_size(uint32_t i) const;  // i relative to first_chunk
};

struct Manifest {
  std::vector<FileRecord> files;
  std::vector<TensorRecord> tensors;
  uint32_t chunk_count = 0;
  // Fills first_chunk/chunk_count and chunk_count; throws on limits.
  void derive_chunks();
};

struct ChunkEntry {
  uint64_t offset = 0;    // absolute offset of the payload
  uint32_t stored_size = 0;
  uint32_t raw_size = 0;
  uint64_t xxh3 = 0;      // XXH3-64 of the stored bytes
};

// Offset of the payload that follows a structure ending at `prev_end`: the
// chunk header takes the 16 bytes just before it and the gap is zero.
inline uint64_t next_payload_offset(uint64_t prev_end) {
  return (prev_end + kChunkHeaderSize + kAlign - 1) / kAlign * kAlign;
}

// The most raw bytes a manifest or index of `stored` compressed bytes may
// claim. Real ones compress 2-20x; the bound stops a tiny file from making a
// reader allocate up to the 1 GiB limit.
inline uint64_t max_meta_raw_size(uint64_t stored) { return (1u << 20) + 256 * stored; }

// The most stored bytes a chunk of `raw` bytes may take. Codecs stay well
// inside it; readers refuse larger claims, which bounds their memory.
inline uint64_t max_stored_size(uint64_t raw) { return raw + raw / 8 + 4096; }

// Checks a reader's user adds to the container's own rules. decode_manifest
// runs them where the records they need have been read, so a container with
// several faults reports the same first one whoever checks what. lib/ passes
// model/file_check.h's check_manifest_files (each file's stored safetensors
// header against its tensor records); {}: the container's rules only.
struct ManifestCheck {
  // Each file record as soon as it is read, before any tensor record; `at`
  // is the record's offset.
  void (*record)(const FileRecord& f, uint64_t at) = nullptr;
  // Each file record, in order, once every record is read and the
  // container's rules hold for it; `base` is the manifest's offset.
  void (*file)(const Manifest& m, const FileRecord& f, uint64_t base) = nullptr;
};

// Serialisation of the manifest and index (raw, before zstd).
std::vector<uint8_t> encode_manifest(const Manifest& m);
// `minor`: the file's version_minor (paths as file names need 1.1).
Manifest decode_manifest(const uint8_t* p, size_t n, uint64_t base_offset, const ManifestCheck& check,
                         uint16_t minor = kVersionMinor);
std::vector<uint8_t> encode_index(const std::vector<ChunkEntry>& idx);
std::vector<ChunkEntry> decode_index(const uint8_t* p, size_t n, uint64_t base_offset);


}  // namespace wc
