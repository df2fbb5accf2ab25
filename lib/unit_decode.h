// Tensors decode in units: an exact tensor's chunks, a lossy tensor's tiles
// (spec/FORMAT.md §4.4: a tile decodes alone from its parts' chunks). The
// decode driver, the extractors and the C API walk units; this is where a
// unit's chunks are found and turned into the tensor's bytes.
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>

#include "format/container.h"
#include "format/hash.h"
#include "lib/decode_driver.h"

namespace wc {

// The level a decode asks for: kTopLevel is each tensor's top level (the
// original bits, or its best reconstruction); a lower level is each lossy
// tensor's min(level, its top) (exact tensors have level 0 only).
inline constexpr unsigned kTopLevel = 255;
inline unsigned level_of(const TensorRecord& t, unsigned level) {
  return t.levels.empty() ? 0 : std::min<unsigned>(level, unsigned(t.levels.size() - 1));
}
// The tensor's level in the model at model level (step) K: the highest of
// its levels that has arrived by then (FORMAT.md §4.3: level-major, min(K,
// its top); chunk order 1, its levels' steps). The decode functions below
// take tensor levels; the drivers of whole models map theirs with this.
inline unsigned level_at(const TensorRecord& t, unsigned K) {
  if (t.level_step.size() <= 1) return level_of(t, K);
  unsigned L = 0;
  while (L + 1 < t.level_step.size() && L + 1 < t.levels.size() && t.level_step[L + 1] <= K) ++L;
  return L;
}

// Units of tensor t: chunks (exact) or tiles (lossy).
uint64_t unit_count(const TensorRecord& t);
// Chunks one unit reads (exact: 1; lossy: its chunked parts at the levels
// decoded), and the global number of the j-th, in container order.
uint32_t unit_chunks(const TensorRecord& t, unsigned level = kTopLevel);
uint32_t unit_chunk(const TensorRecord& t, uint64_t u, uint32_t j, unsigned level = kTopLevel);
// The same for the parts of levels lo..hi only (an upgrade reads the new
// levels' chunks and nothing else).
uint32_t unit_chunks_in(const TensorRecord& t, unsigned lo, unsigned hi);
uint32_t unit_chunk_in(const TensorRecord& t, uint64_t u, uint32_t j, unsigned lo, unsigned hi);
// Bytes unit u decodes to in dtype `out` (exact tensors: their own dtype).
uint64_t unit_out_size(const TensorRecord& t, uint64_t u, DType out);
// Where unit u + 1 starts in the output less where unit u starts: every
// unit but the last decodes to this many bytes.
uint64_t unit_stride(const TensorRecord& t, DType out);

// Throws Errc::unsupported_version (file and tensor named) when this build
// cannot decode t: a representation it does not know. Called before a
// tensor's chunks are fetched, so a stream is not asked for chunks a newer
// representation lays out differently.
void check_decodable(const TensorRecord& t, const std::string& file);

// Decodes the chunk numbered `global` in the container, of tensor t, into
// dst (its raw size, as the index states it): an exact tensor's bytes, or
// the items of a lossy tensor's part. For tools that walk chunks rather
// than tensors (fuzz targets, chunk checks). Throws as decode_unit.
void decode_stored_chunk(const TensorRecord& t, uint32_t global, std::span<const uint8_t> stored, uint8_t* dst,
                         const std::string& file);

// Per-slot workspace: the decoded bytes of each part of a tile.
struct UnitWork {
  RawBuffer part[kMaxParts];
};

// Decodes unit u of t from the stored bytes of its chunks (stored[j], j <
// unit_chunks(t)) into dst (unit_out_size bytes); a lossy tensor at its top
// level in dtype `out` (BF16, F16, F32; exact tensors ignore it). Throws
// naming the file and tensor: Errc::codec for bytes that do not decode,
// Errc::unsupported_version for a codec or representation this build does
// not know.
void decode_unit(const TensorRecord& t, uint64_t u, const std::span<const uint8_t>* stored, UnitWork& ws, DType out,
                 uint8_t* dst, const std::string& file, unsigned level = kTopLevel);

// Brings unit u of lossy tensor t, held at level `from` in its own dtype in
// dst, to level `to` in place from the stored chunks of levels from+1..to
// (stored[j], j < unit_chunks_in(t, from + 1, to)). Throws as decode_unit;
// Errc::usage when t has no such levels or its representation none above.
void upgrade_unit(const TensorRecord& t, uint64_t u, unsigned from, unsigned to, const std::span<const uint8_t>* stored,
                  UnitWork& ws, uint8_t* dst, const std::string& file);

// Checks a lossy tensor's decoded bytes against the xxh3 of the level
// decoded (its top by default) as units arrive in order (exact tensors pass:
// the file's hash and the chunks' cover them).
class ReconstructionCheck {
 public:
  // The bytes of unit u of t, in order. Throws Errc::checksum (file and
  // tensor named) after the last unit when the hash differs.
  void bytes(const TensorRecord& t, uint64_t u, const uint8_t* p, size_t n, const std::string& file,
             unsigned level = kTopLevel);

 private:
  HashState hs_;
};

}  // namespace wc
