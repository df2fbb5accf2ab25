#include "quant/qrow_repr.h"

#include <string>

#include "codec/codec.h"
#include "format/bytes.h"
#include "quant/qrow.h"
#include "quant/qrow_math.h"

namespace wc {

int32_t qrow_base_exp(const TensorRecord& t) { return int16_t(load_u16(t.params.data())); }

void qrow_check_parts(const TensorRecord& t, size_t part_count, const char* name) {
  auto bad = [&](const std::string& why) {
    Error e(Errc::corrupt, std::string(name) + ": " + why);
    e.at_tensor(t.name);
    throw e;
  };
  if (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32) bad("dtype must be BF16, F16 or F32");
  if (t.params.size() != 2) bad("parameters must be 2 bytes (the base exponent)");
  const int32_t b = qrow_base_exp(t);
  if (b < qrow::kMinBaseExp || b > qrow::kMaxBaseExp) bad("base exponent " + std::to_string(b) + " is out of range");
  if (t.levels.size() != 1) bad("must have exactly one level");
  if (t.parts.size() != part_count)
    bad(part_count == 2 ? "must have exactly two parts (scales, codes)"
                        : "must have exactly three parts (scales, codes, outliers)");
  const PartRecord& s = t.parts[0];
  const PartRecord& c = t.parts[1];
  if (s.role != PartRole::scales || s.item != DType::U8 ||
      (s.layout != PartLayout::per_row && s.layout != PartLayout::inline_items) || s.items != t.rows())
    bad("part 0 must be the scales: U8, one per row, per-row or inline");
  if (c.role != PartRole::codes || (c.item != DType::U8 && c.item != DType::U16) ||
      (c.layout != PartLayout::per_element && !(c.layout == PartLayout::inline_items && t.tile_count() == 1)) ||
      c.items != t.elements())
    bad("part 1 must be the codes: U8 or U16, per element, or inline in a tensor of one tile");
  // an inline part's codec may be 0 (the items) or one that stores them (2.3)
  for (const PartRecord* p : {&s, &c})
    if ((p->layout != PartLayout::inline_items || p->codec != 0) &&
        (!codec_id_valid(p->codec) || !codec_supports_part(static_cast<CodecId>(p->codec), p->item)))
      bad("codec " + std::to_string(p->codec) + " cannot store its part");
}

void qrow_check(const TensorRecord& t) { qrow_check_parts(t, 2, "qrow"); }

const uint8_t* qrow_tile_steps(const TensorRecord& t, uint32_t tile, const TileInputs& in) {
  const uint64_t rows = t.rows_in_tile(tile);
  const uint8_t* e = in.data[0];
  size_t e_n = in.size[0];
  if (t.parts[0].layout == PartLayout::inline_items) {  // the whole tensor's steps; this tile's slice
    const uint64_t first = uint64_t(tile) * t.tile_rows();
    if (first + rows > e_n) return nullptr;
    e += first, e_n = rows;
  }
  return e_n == rows ? e : nullptr;
}

Errc qrow_decode_tile(const TensorRecord& t, uint32_t tile, unsigned level, const TileInputs& in, DType out,
                      uint8_t* dst) {
  (void)level;  // one level
  const uint64_t rows = t.rows_in_tile(tile), cols = t.cols();
  const uint8_t* e = qrow_tile_steps(t, tile, in);
  const unsigned cb = t.parts[1].item_bytes();
  if (!e || in.size[1] != rows * cols * cb) return Errc::codec;
  qrow::decode_rows_fast(qrow_base_exp(t), e, in.data[1], cb, rows, cols, out, dst);
  return Errc::ok;
}

}  // namespace wc
