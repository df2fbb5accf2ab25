// qrow-outliers' entry in the representation table (quant/repr.cpp): qrow
// plus exact sparse outliers (spec/OUTLIERS.md).
#pragma once
#include "quant/repr.h"

namespace wc {

inline constexpr uint8_t kReprQrowOutliers = 2;

void qrow_outliers_check(const TensorRecord& t);
Errc qrow_outliers_decode_tile(const TensorRecord& t, uint32_t tile, unsigned level, const TileInputs& in, DType out,
                               uint8_t* dst);

// Writes tile `tile`'s outliers from the outlier block (n bytes) over dst
// (the tile decoded as qrow, in dtype out). False when the block's table or
// the tile's section breaks spec/OUTLIERS.md §2.
bool apply_outliers(const TensorRecord& t, uint32_t tile, const uint8_t* block, size_t n, DType out, uint8_t* dst);

// The outliers a qrow-outliers record stores (0 for another record, or when
// its block breaks spec/OUTLIERS.md §2: inspect lists, decoding reports).
uint64_t qrow_outlier_count(const TensorRecord& t);

}  // namespace wc
