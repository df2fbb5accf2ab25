// The wcodec container, versions 1.x and 2.0: constants and the in-memory form of its
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
// 2.0 only when a tensor is lossy (parts, levels, level-major chunks);
// a file of exact tensors stays 1.x, byte for byte.
inline constexpr uint16_t kVersionMajorLossy = 2;
inline constexpr uint16_t kVersionMinorLossy = 0;

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
// Codec ids below this (raw, zstd, float-ans; float-ans-trim since 1.2,
// float-ans-mixed since 1.3, float-ans-patch since 1.5) take no parameters: a record of theirs with
// parameters is corrupt. So do codecs 7 (float-ans-groups, 1.6) and 8
// (float-ans-pairs, 1.7).
inline constexpr uint8_t kCodecIdsWithoutParams = 6;
// Codec 3 (float-ans-trim) is new in 1.2: a 1.x file using it is 1.2.
inline constexpr uint8_t kCodecFirst12 = 3;
inline constexpr uint16_t kVersionMinorTrim = 2;
// Codec 4 (float-ans-mixed) is new in 1.3 and 2.1: a file using it says so.
inline constexpr uint8_t kCodecFirst13 = 4;
inline constexpr uint16_t kVersionMinorMixed = 3;
inline constexpr uint16_t kVersionMinorLossyMixed = 1;
// Representation 2 (qrow-outliers) is new in 2.2: a file using it says so
// (2.2 includes 2.1's codec 4).
inline constexpr uint8_t kReprFirst22 = 2;
inline constexpr uint16_t kVersionMinorLossyOutliers = 2;
// Inline parts with a codec (their payload in the record, no chunk) are new
// in 2.3: a file with one says so.
inline constexpr uint16_t kVersionMinorLossyInlineCoded = 3;
// Part layout 4 (per group of elements) and representation 3 (vq) are new in
// 2.4.
inline constexpr uint16_t kVersionMinorLossyVq = 4;
inline constexpr uint8_t kReprFirst24 = 3;
inline constexpr size_t kMaxParts = 16;          // parts of a lossy tensor
inline constexpr unsigned kMaxLevels = 255;
inline constexpr uint64_t kMaxInlinePart = 1u << 16;  // bytes of an inline part
// An exact tensor stored in its record (1.4, 2.5): its whole coded payload in
// the manifest instead of chunks, for tensors so small that a chunk's header,
// padding and index entry (about 70 bytes) would be a large part of them.
inline constexpr uint16_t kVersionMinorInline = 4;
inline constexpr uint16_t kVersionMinorLossyInline = 5;
// Codec 5 (float-ans-patch) is new in 1.5 and 2.6.
inline constexpr uint8_t kCodecFirst15 = 5;
inline constexpr uint16_t kVersionMinorPatch = 5;
inline constexpr uint16_t kVersionMinorLossyPatch = 6;
// Codec 7 (float-ans-groups) is new in 1.6 and 2.10.
inline constexpr uint8_t kCodecGroups = 7;
inline constexpr uint16_t kVersionMinorGroups = 6;
inline constexpr uint16_t kVersionMinorLossyGroups = 10;
// Codec 8 (float-ans-pairs) is new in 1.7 and 2.12.
inline constexpr uint8_t kCodecPairs = 8;
inline constexpr uint16_t kVersionMinorPairs = 7;
inline constexpr uint16_t kVersionMinorLossyPairs = 12;
// Pools (FORMAT.md §4.6) are new in 1.8 and 2.13: extension type 1 codes
// the inline exact tensors of codec 9 of one dtype as one chunk.
inline constexpr uint8_t kCodecPooled = 9;
inline constexpr uint16_t kVersionMinorPools = 8;
inline constexpr uint16_t kVersionMinorLossyPools = 13;
inline constexpr uint16_t kExtPools = 1;
inline constexpr uint32_t kMaxPools = 64;
inline constexpr uint64_t kMaxPoolRaw = uint64_t(1) << 24;
// A pool decodes to at most this much per stored byte (and 2^16 more): its
// decoding costs in proportion to the bytes read.
inline constexpr uint64_t kPoolRawPerStored = 64;
// The dtypes a pool may hold (float-ans's floats), and its codecs: the exact
// tensors' (0 to 5, 7, 8); 6 (exact-residual) is a part's, 9 a member's.
inline constexpr DType kPoolDTypes[] = {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::F8_E5M2};
inline bool pool_dtype(DType t) {
  for (DType d : kPoolDTypes)
    if (d == t) return true;
  return false;
}
inline bool pool_codec(uint8_t c) { return c <= kCodecPairs && c != 6; }
// A qrow tensor's exact top layer (level 1, spec/EXACT_TOP.md) is new in 2.7.
inline constexpr uint16_t kVersionMinorLossyExactTop = 7;
// Refinement levels of a qrow tensor (role 4 parts, spec/REFINE.md) are new in 2.8.
inline constexpr uint16_t kVersionMinorLossyRefine = 8;
// Chunk order 1 (steps: every tensor's levels above 0 ordered model-wide,
// spec/FORMAT.md §4.3) is new in 2.9.
inline constexpr uint16_t kVersionMinorLossyOrder = 9;
// vq (representation 3) with d = 1 (scalar palettes), one codebook per group
// of rows, or a tensor-wide codebook part (K up to 2^16) is new in 2.11.
inline constexpr uint16_t kVersionMinorLossyVqBooks = 11;
// Sign-magnitude blocks of a qrow tensor (role 6 parts, spec/BITSTACK.md) are new in 2.14.
inline constexpr uint16_t kVersionMinorLossyBlocks = 14;
// The newest minors this reader reads (what --version names): move them with
// every new minor above.
inline constexpr uint16_t kVersionMinorNewest = kVersionMinorPools;
inline constexpr uint16_t kVersionMinorLossyNewest = kVersionMinorLossyBlocks;
inline constexpr uint64_t kMaxInlineTensor = 1u << 16;  // raw bytes of an inline exact tensor

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

// A lossy tensor's part (spec §4.4): a flat array of items with its own
// byte codec, chunked per tile (per element, per row), in one chunk
// (tensor-wide), or stored in the manifest (inline).
enum class PartRole : uint8_t { codes = 0, scales = 1, codebook = 2, outliers = 3, residual = 4, exact_top = 5, block = 6 };
inline constexpr uint8_t kPartRoleCount = 7;
enum class PartLayout : uint8_t { per_element = 0, per_row = 1, tensor_wide = 2, inline_items = 3, per_group = 4 };
inline constexpr uint8_t kPartLayoutCount = 5;

struct PartRecord {
  PartRole role = PartRole::codes;
  uint8_t level = 0;
  uint8_t codec = 0;
  PartLayout layout = PartLayout::per_element;
  DType item = DType::U8;
  std::vector<uint8_t> params;  // codec parameters
  uint64_t items = 0;
  // inline parts: the items (codec 0), or the codec's payload that decodes
  // to them (2.3; the reader of the tile decodes it)
  std::vector<uint8_t> data;
  // per_group (2.4): one item per `group` consecutive elements of a row (the
  // part record's reserved byte); 0 for the other layouts
  uint8_t group = 0;
  bool tiled() const {
    return layout == PartLayout::per_element || layout == PartLayout::per_row || layout == PartLayout::per_group;
  }
  unsigned item_bytes() const { return dtype_bits(item) / 8; }
};

// Per level of a lossy tensor: the hash of its reconstruction (in the
// tensor's dtype) and informative error figures.
struct LevelRecord {
  uint64_t xxh3 = 0;
  float rel_rmse = 0, max_abs = 0;
};

struct TensorRecord {
  std::string name;
  DType dtype = DType::U8;
  uint8_t codec = 0;
  uint8_t repr = 0;               // 0 exact; else a lossy representation (2.0)
  std::vector<uint64_t> shape;
  uint64_t byte_size = 0;
  uint32_t chunk_size = 0;        // exact: raw bytes per chunk (the last may be shorter; 0: inline); lossy: rows per tile
  std::vector<uint8_t> params;    // exact: codec parameters; lossy: the representation's
  std::vector<PartRecord> parts;  // lossy only
  std::vector<LevelRecord> levels;  // lossy only
  // exact tensors stored in their record (1.4, 2.5; chunk_size 0, byte_size
  // > 0): the codec's payload of the whole tensor. A pool member (codec 9,
  // 1.8, 2.13) has none in the file; once its pool is decoded (a reader's
  // ManifestCheck::pools) it holds the member's bytes and its codec is 0.
  std::vector<uint8_t> payload;
  // Derived: a pool member's pool (Manifest::pools), UINT32_MAX for none, and
  // its share of the pool's payload (its bytes' part, for inspect's figures).
  uint32_t pool = UINT32_MAX;
  uint64_t pool_share = 0;
  // Derived, not stored:
  uint64_t record_offset = 0;     // where its record was read (errors cite it), as other manifest errors do
  uint32_t first_chunk = 0;       // the first chunk of level 0
  uint32_t chunk_count = 0;       // chunks at every level
  std::vector<uint32_t> level_first, level_chunks;  // per level of the tensor
  // The model level (step) at which each of its levels arrives (2.9, chunk
  // order 1, §4.3): level_step[0] = 0, increasing; level-major: L itself.
  std::vector<uint8_t> level_step;
  // The level of the tensor that arrives at model level (step) K, or
  // UINT32_MAX when none does (level_step empty: level-major, K itself).
  uint32_t level_arriving(unsigned K) const {
    if (level_step.empty()) return K;
    for (uint32_t L = 0; L < level_step.size(); ++L)
      if (level_step[L] == K) return L;
    return UINT32_MAX;
  }
  uint64_t elements() const;
  bool lossy() const { return repr != 0; }
  // An exact tensor whose bytes lie in its record (1.4, 2.5), not in chunks.
  bool inline_exact() const { return repr == 0 && byte_size > 0 && chunk_size == 0; }
  // The matrix view of a lossy tensor: shape[0] rows.
  uint64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  uint64_t cols() const;
  uint32_t tile_rows() const { return chunk_size; }
  uint64_t tile_count() const;
  uint64_t rows_in_tile(uint64_t tile) const;
  // Chunk i of the tensor (its chunks numbered level by level): global number
  // and raw size.
  uint32_t global_chunk(uint32_t i) const;
  // Its inverse: the tensor's chunk number of global chunk g, or UINT32_MAX
  // when g is not one of the tensor's.
  uint32_t local_chunk(uint32_t g) const;
  uint32_t chunk_raw_size(uint32_t i) const;
  // Lossy: which part (and tile, for a tiled part) chunk i holds.
  struct PartChunk {
    uint32_t part = 0;
    uint64_t tile = 0;
  };
  PartChunk part_chunk(uint32_t i) const;
  // Bytes of part p in tile `tile` (tiled parts) or in all (others).
  uint64_t part_bytes(uint32_t p, uint64_t tile) const;
  // The chunk of part p for tile `tile` at its level (p chunked), as i.
  uint32_t chunk_of_part(uint32_t p, uint64_t tile) const;
};

// A pool (1.8, 2.13; FORMAT.md §4.6): the bytes of its members (the inline
// exact tensors of codec 9 and its dtype, in tensor order) as one payload.
struct PoolRecord {
  DType dtype = DType::F16;
  uint8_t codec = 0;
  std::vector<uint8_t> payload;
  // Derived: its members' bytes together, and where its extension was read.
  uint64_t raw_size = 0;
  uint64_t offset = 0;
};

struct Manifest {
  uint16_t major = kVersionMajor;  // 2 when a tensor is lossy (set by derive_chunks for writers)
  std::vector<FileRecord> files;
  std::vector<TensorRecord> tensors;
  std::vector<PoolRecord> pools;  // extension type 1 (1.8, 2.13); none before
  uint32_t chunk_count = 0;
  uint8_t level_count = 1;                 // 2.0: levels (chunk order 1: steps) of the model
  uint8_t chunk_order = 0;                 // 0 level-major; 1 (2.9) steps: each tensor's level_step
  std::vector<uint32_t> level_first_chunk;  // 2.0: first chunk of each level
  // Fills the derived fields (level-major order in 2.0); throws on limits.
  void derive_chunks();
  bool has_lossy() const;
  // Elements of the tensors of its safetensors files (blobs are not weights).
  uint64_t weights() const;
  // Bytes of the original files it describes.
  uint64_t original_bytes() const;
};

// Walks the chunks in container order (level-major, §4.3) without a table:
// next() gives each chunk's tensor and its number within the tensor.
class ChunkCursor {
 public:
  explicit ChunkCursor(const Manifest& m) : m_(m) {}
  bool next(uint32_t* tensor, uint32_t* i) {
    for (;;) {
      if (level_ >= m_.level_count) return false;
      if (t_ >= m_.tensors.size()) {
        ++level_, t_ = 0, j_ = 0;
        continue;
      }
      const TensorRecord& r = m_.tensors[t_];
      // the tensor's level that arrives at this model level (level-major:
      // that level; chunk order 1: the one its level_step puts there)
      const uint32_t L = r.level_arriving(level_);
      if (L < r.level_chunks.size() && j_ < r.level_chunks[L]) {
        uint32_t i0 = 0;
        for (unsigned k = 0; k < L; ++k) i0 += r.level_chunks[k];
        *tensor = t_, *i = i0 + j_++;
        return true;
      }
      ++t_, j_ = 0;
    }
  }

 private:
  const Manifest& m_;
  unsigned level_ = 0;
  uint32_t t_ = 0, j_ = 0;
};

// Visits every chunk in container order: f(global, tensor index, i), i the
// chunk's number within its tensor.
template <class F>
void for_each_chunk(const Manifest& m, F&& f) {
  ChunkCursor c(m);
  uint32_t t, i, g = 0;
  while (c.next(&t, &i)) f(g++, t, i);
}

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
  // Each lossy tensor record once read and found well formed by the
  // container's rules (the representation's own rules); `at`: its offset.
  void (*tensor)(const TensorRecord& t, uint64_t at) = nullptr;
  // The pools (1.8, 2.13), once the whole manifest holds to the container's
  // rules: decodes each and gives its members their bytes (codec 0), or
  // throws. Without it a member keeps codec 9 and no payload, which a decoder
  // refuses as an unknown codec.
  void (*pools)(Manifest& m) = nullptr;
};

// The pools' members (1.8, 2.13, §4.6): each codec-9 exact tensor linked to
// its dtype's pool (TensorRecord::pool, pool_share) and each pool's raw
// size summed; throws (corrupt) where a rule of §4.6 on them breaks. The
// reader runs it as it reads the manifest, a writer once its pools are made.
void link_pools(Manifest& m);

// Serialisation of the manifest and index (raw, before zstd).
std::vector<uint8_t> encode_manifest(const Manifest& m);
// Bytes of t's record in the (uncompressed) manifest.
uint64_t tensor_record_size(const TensorRecord& t);
// Every byte t takes in a file with index `idx` whose chunk area starts at
// `chunks_start` (the manifest's end): its chunks' payloads, their 16-byte
// headers and the zero padding that aligns them, their 24-byte index
// entries, and its share of the compressed manifest (its record's raw size,
// its name aside since any format stores names, times the manifest's
// stored/raw ratio, `shares.ratio`). The figure `--bits` budgets and
// inspect reports.
// Inline parts' coded payloads (2.3) count by what they add to the
// compressed manifest (ManifestShares).
struct ManifestShares {
  double ratio = 1;          // stored/raw of the manifest without coded inline payloads
  double payload_scale = 0;  // what the payloads add to the stored manifest, per payload byte
};
double tensor_file_bytes(const TensorRecord& t, const std::vector<ChunkEntry>& idx, uint64_t chunks_start,
                         const ManifestShares& shares);
// Stored bytes of t: its chunks' payloads (index `idx`) and the bytes its
// record holds in their place (an inline tensor's payload, inline parts).
uint64_t tensor_stored_bytes(const TensorRecord& t, const std::vector<ChunkEntry>& idx);
// Bytes of t's record that are inline parts' coded payloads (and their
// 4-byte sizes).
uint64_t coded_inline_bytes(const TensorRecord& t);
// The shares of manifest m, whose encoding is `raw` bytes and its zstd frame
// `stored` bytes: the manifest is compressed again without the coded inline
// payloads (at the writer's level), and the difference is theirs, the
// mixing of incompressible payloads with the rest included.
ManifestShares manifest_shares(const Manifest& m, uint64_t raw, uint64_t stored);
// `major`, `minor`: the file's version (paths as file names need 1.1 or 2.0;
// lossy tensors 2.0).
Manifest decode_manifest(const uint8_t* p, size_t n, uint64_t base_offset, const ManifestCheck& check,
                         uint16_t minor = kVersionMinor, uint16_t major = kVersionMajor);
std::vector<uint8_t> encode_index(const std::vector<ChunkEntry>& idx);
std::vector<ChunkEntry> decode_index(const uint8_t* p, size_t n, uint64_t base_offset);


}  // namespace wc
