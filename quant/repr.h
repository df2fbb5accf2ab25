// Lossy representations (spec/FORMAT.md §4.4): how a tensor's parts combine
// into values. One entry per representation in repr.cpp's table; adding one
// is a new file plus a table entry. Decoders write into caller memory and
// allocate nothing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "format/container.h"
#include "platform/error.h"

namespace wc {

// The bytes of each part available to one tile: a tiled part's chunk for
// that tile (decoded), a tensor-wide part's single chunk, an inline part's
// items.
struct TileInputs {
  const uint8_t* data[kMaxParts] = {};
  size_t size[kMaxParts] = {};
};

struct Repr {
  uint8_t id;
  std::string_view name;
  // Rules the representation puts on a record (dtype, rank, parts, levels,
  // params), checked when a manifest is decoded. Throws Errc::corrupt.
  void (*check)(const TensorRecord& t);
  // Rows of tile `tile` reconstructed at level `level` in dtype `out`
  // (BF16, F16, F32) into dst (rows_in_tile × cols elements). Returns
  // Errc::codec when the parts' bytes are not valid for the record.
  Errc (*decode_tile)(const TensorRecord& t, uint32_t tile, unsigned level, const TileInputs& in, DType out,
                      uint8_t* dst);
  // Rows of tile `tile` held at level `from` in the tensor's dtype (dst)
  // brought to level `to` in place, from the parts of levels from+1..to
  // only (in holds those). Null where a representation has one level.
  Errc (*upgrade_tile)(const TensorRecord& t, uint32_t tile, unsigned from, unsigned to, const TileInputs& in,
                       uint8_t* dst) = nullptr;
};

// nullptr for an id this build does not know (the tensor is listed, and
// reported as unsupported when it must be decoded).
const Repr* find_repr(uint8_t id) noexcept;
std::string_view repr_name(uint8_t id) noexcept;  // "exact", "qrow", or "unknown"

}  // namespace wc

namespace wc {

// ManifestCheck::tensor: a known representation's rules on a lossy record
// (offset `at` and the tensor named in the error); unknown ones pass.
void check_repr_record(const TensorRecord& t, uint64_t at);

}  // namespace wc
