// Sparse exact outliers for qrow-outliers (spec/OUTLIERS.md): which elements
// are kept exactly, and the outlier block that stores them. The decoder side
// is quant/outlier_math.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "format/dtype.h"

namespace wc::qrow {

// Elements whose score x² imp_c / rms_r² exceeds this (|x| more than 6 row
// root mean squares from zero, with unit importance) are the natural
// outliers; their fraction is the one --scheme auto offers.
inline constexpr double kOutlierScore = 36.0;
// At most this fraction of a tensor's elements are outliers.
inline constexpr double kMaxOutlierFraction = 0.01;

// Score of element (r, c): x² × imp[c] / rms[r]² (imp normalised to mean 1;
// null: 1). Elements above `min_score` are candidates.
struct OutlierScores {
  std::vector<std::pair<float, uint64_t>> cand;  // (score, row-major index), above min_score
};
OutlierScores score_outliers(DType t, const uint8_t* data, uint64_t rows, uint64_t cols,
                             const std::vector<double>& rms, const float* imp, double min_score);

// The `count` highest-scoring candidates (ties: lower index first), sorted
// by index.
std::vector<uint64_t> pick_outliers(const OutlierScores& s, uint64_t count);

// The outlier block of §2 for outliers `pos` (sorted row-major indices) of a
// [rows, cols] tensor cut in tiles of tile_rows rows; each tile's section
// in the smaller of the two forms.
std::vector<uint8_t> outlier_block(DType t, const uint8_t* data, uint64_t rows, uint64_t cols, uint64_t tile_rows,
                                   const std::vector<uint64_t>& pos);

// A copy of the tensor (n elements) with the outliers set to +0: what the
// quantizer codes.
std::vector<uint8_t> zero_outliers(DType t, const uint8_t* data, uint64_t n, const std::vector<uint64_t>& pos);

// The same for the given rows alone of a tensor of `cols` columns (pos
// ascending): each row r of `rows` written to out + r * cols elements, the
// other rows of `out` left as they are (the writer measures its choices on
// sampled rows, and a copy of every row per tensor held while it planned
// was as much memory as the model).
void zero_outliers_rows(DType t, const uint8_t* data, uint64_t cols, const std::vector<uint64_t>& pos,
                        const std::vector<uint64_t>& rows, uint8_t* out);

}  // namespace wc::qrow
