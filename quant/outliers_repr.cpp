#include "quant/outliers_repr.h"

#include "quant/outlier_math.h"
#include "quant/qrow_repr.h"

namespace wc {

void qrow_outliers_check(const TensorRecord& t) {
  qrow_check_parts(t, 3, "qrow-outliers");
  const PartRecord& o = t.parts[2];
  if (o.role != PartRole::outliers || o.level != 0 || o.layout != PartLayout::inline_items || o.item != DType::U8 ||
      o.codec != 0) {
    Error e(Errc::corrupt, "qrow-outliers: part 2 must be the outliers: U8, inline, level 0");
    e.at_tensor(t.name);
    throw e;
  }
}

bool apply_outliers(const TensorRecord& t, uint32_t tile, const uint8_t* block, size_t n, DType out, uint8_t* dst) {
  size_t off = 0, len = 0;
  return qrow::outlier_section(block, n, t.tile_count(), tile, off, len) &&
         qrow::apply_outlier_section(block + off, len, t.rows_in_tile(tile), t.cols(), uint32_t(t.dtype),
                                     uint32_t(out), dst);
}

Errc qrow_outliers_decode_tile(const TensorRecord& t, uint32_t tile, unsigned level, const TileInputs& in, DType out,
                               uint8_t* dst) {
  const Errc rc = qrow_decode_tile(t, tile, level, in, out, dst);
  if (rc != Errc::ok) return rc;
  return apply_outliers(t, tile, in.data[2], in.size[2], out, dst) ? Errc::ok : Errc::codec;
}

uint64_t qrow_outlier_count(const TensorRecord& t) {
  if (t.repr != kReprQrowOutliers || t.parts.size() != 3) return 0;
  const std::vector<uint8_t>& b = t.parts[2].data;
  uint64_t total = 0;
  for (uint64_t i = 0; i < t.tile_count(); ++i) {
    size_t off = 0, len = 0, vpos = 0;
    uint64_t n = 0;
    if (!qrow::outlier_section(b.data(), b.size(), t.tile_count(), i, off, len) ||
        !qrow::outlier_section_check(b.data() + off, len, t.rows_in_tile(i), t.cols(), uint32_t(t.dtype), n, vpos))
      return 0;
    total += n;
  }
  return total;
}

}  // namespace wc
