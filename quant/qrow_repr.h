// qrow's entry in the representation table (quant/repr.cpp): its record
// rules and its tile decoder (spec/QROW.md).
#pragma once
#include "quant/repr.h"

namespace wc {

inline constexpr uint8_t kReprQrow = 1;

void qrow_check(const TensorRecord& t);
// qrow's rules on parts 0 and 1 (and everything but the parts after them) for
// a record of part_count parts; errors say `name`. Throws Errc::corrupt.
void qrow_check_parts(const TensorRecord& t, size_t part_count, const char* name, size_t level_count = 1);
Errc qrow_decode_tile(const TensorRecord& t, uint32_t tile, unsigned level, const TileInputs& in, DType out,
                      uint8_t* dst);

// Levels from+1..to of a qrow tensor: refinement levels (REFINE.md) and its
// exact top layer (EXACT_TOP.md), applied in turn.
Errc qrow_upgrade_tile(const TensorRecord& t, uint32_t tile, unsigned from, unsigned to, const TileInputs& in,
                       uint8_t* dst);

// The step exponents of tile `tile`'s rows in `in` (part 0: the tile's
// chunk, or its slice of the inline part); null when there are not exactly
// that many. qrow, qrow-outliers and vq share part 0.
const uint8_t* qrow_tile_steps(const TensorRecord& t, uint32_t tile, const TileInputs& in);

// The record's base exponent (params, i16 little-endian).
int32_t qrow_base_exp(const TensorRecord& t);

}  // namespace wc
