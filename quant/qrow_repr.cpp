#include "quant/qrow_repr.h"

#include <string>

#include "codec/codec.h"
#include "format/bytes.h"
#include "quant/bitstack.h"
#include "quant/exact_top.h"
#include "quant/qrow.h"
#include "quant/qrow_math.h"
#include "quant/refine_math.h"

namespace wc {

int32_t qrow_base_exp(const TensorRecord& t) { return int16_t(load_u16(t.params.data())); }

void qrow_check_parts(const TensorRecord& t, size_t part_count, const char* name, size_t level_count) {
  auto bad = [&](const std::string& why) {
    Error e(Errc::corrupt, std::string(name) + ": " + why);
    e.at_tensor(t.name);
    throw e;
  };
  if (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32) bad("dtype must be BF16, F16 or F32");
  if (t.params.size() != 2) bad("parameters must be 2 bytes (the base exponent)");
  const int32_t b = qrow_base_exp(t);
  if (b < qrow::kMinBaseExp || b > qrow::kMaxBaseExp) bad("base exponent " + std::to_string(b) + " is out of range");
  if (t.levels.size() != level_count) bad("must have exactly one level");
  if (t.parts.size() != part_count)
    bad(part_count == 2   ? "must have exactly two parts (scales, codes)"
        : part_count == 3 ? "must have exactly three parts (scales, codes, outliers)"
                          : "must have two parts a level: scales and codes, then tables and residuals of each level "
                            "above 0");
  const PartRecord& s = t.parts[0];
  const PartRecord& c = t.parts[1];
  if (s.level != 0 || c.level != 0) bad("parts 0 and 1 must be at level 0");
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

namespace {

// Level k's parts as a sign-magnitude block's (BITSTACK.md §1): the factors
// (U8, tensor-wide or inline) and the signs (U8 per element, a byte codec).
template <class Bad>
void check_block_parts(const TensorRecord& t, size_t k, const Bad& bad) {
  const PartRecord& f = t.parts[2 * k];
  const PartRecord& s = t.parts[2 * k + 1];
  const std::string lv = "level " + std::to_string(k);
  auto stores_u8 = [](const PartRecord& p) {
    return codec_id_valid(p.codec) && p.codec != exact::kCodecExactResidual &&
           codec_supports_part(static_cast<CodecId>(p.codec), DType::U8);
  };
  const bool wide = f.layout == PartLayout::tensor_wide, in = f.layout == PartLayout::inline_items;
  if (f.role != PartRole::block || f.level != k || f.item != DType::U8 || (!wide && !in) ||
      ((wide || f.codec != 0) && !stores_u8(f)))
    bad("part " + std::to_string(2 * k) + " must be " + lv +
        "'s factors (a sign-magnitude block, role 6): U8, tensor-wide (a codec that stores U8 items) or inline");
  if (s.role != PartRole::block || s.level != k || s.layout != PartLayout::per_element || s.item != DType::U8 ||
      !stores_u8(s) || !s.params.empty() || s.items != t.elements())
    bad("part " + std::to_string(2 * k + 1) + " must be " + lv +
        "'s signs (a sign-magnitude block, role 6): U8, per element, a codec that stores U8 items, no parameters");
}

}  // namespace

void qrow_check(const TensorRecord& t) {
  const size_t L = t.levels.size();
  if (L == 1) {
    qrow_check_parts(t, 2, "qrow");
    return;
  }
  auto bad = [&](const std::string& why) {
    Error e(Errc::corrupt, "qrow: " + why);
    e.at_tensor(t.name);
    throw e;
  };
  if (L > refine::kMaxLevels) bad("has more than 8 levels");
  // levels above 0: refinement levels (2.8, REFINE.md §1), the last of them
  // possibly the exact top layer (2.7, EXACT_TOP.md §1); two parts each
  qrow_check_parts(t, 2 * L, "qrow", L);
  for (size_t k = 1; k < L; ++k) {
    const PartRecord& tb = t.parts[2 * k];
    const PartRecord& rs = t.parts[2 * k + 1];
    if (tb.role == PartRole::block || rs.role == PartRole::block) {  // 2.14: a sign-magnitude block (BITSTACK.md §1)
      check_block_parts(t, k, bad);
      continue;
    }
    const bool top = k + 1 == L && tb.role == PartRole::exact_top;
    const PartRole role = top ? PartRole::exact_top : PartRole::residual;
    const std::string lv = "level " + std::to_string(k);
    const bool wide = tb.layout == PartLayout::tensor_wide;
    if (tb.role != role || tb.level != k || (tb.layout != PartLayout::inline_items && !wide) ||
        tb.item != DType::U8 || (wide && (tb.items == 0 || tb.items > kMaxInlinePart)) ||
        ((tb.codec != 0 || wide) &&
         (!codec_id_valid(tb.codec) || !codec_supports_part(static_cast<CodecId>(tb.codec), tb.item))))
      bad("part " + std::to_string(2 * k) + " must be " + lv + "'s tables (" +
          (top ? "the exact top layer" : "a refinement level, role 4") +
          "): U8, inline (codec 0 or one that stores U8 items) or tensor-wide (1 to 65536 bytes, such a codec)");
    // 2.8: no items, inline as they are, in a tensor of one tile: the tables ride in its payload
    if (tb.layout == PartLayout::inline_items && tb.items == 0 && (tb.codec != 0 || t.tile_count() != 1))
      bad("part " + std::to_string(2 * k) + ": tables of no items (carried by the tile's payload) must be inline, "
          "codec 0, in a tensor of one tile");
    const DType want = !top ? DType::U16 : t.dtype == DType::F32 ? DType::U32 : DType::U16;
    if (rs.role != role || rs.level != k || rs.layout != PartLayout::per_element || rs.item != want ||
        rs.codec != exact::kCodecExactResidual || !rs.params.empty() || rs.items != t.elements())
      bad("part " + std::to_string(2 * k + 1) + " must be " + lv + "'s " +
          (top ? "exact top layer residuals" : "refinement codes") + ": per element, " +
          (want == DType::U32 ? "U32" : "U16") + ", codec 6");
  }
  for (size_t p = 0; p < t.parts.size(); p += p < 2 ? 1 : 2)
    if (t.parts[p].codec == exact::kCodecExactResidual)
      bad("codec 6 stores the residuals of levels above 0 only");
}

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
  const uint64_t rows = t.rows_in_tile(tile), cols = t.cols();
  const uint8_t* e = qrow_tile_steps(t, tile, in);
  const unsigned cb = t.parts[1].item_bytes();
  if (!e || in.size[1] != rows * cols * cb) return Errc::codec;
  qrow::decode_rows_fast(qrow_base_exp(t), e, in.data[1], cb, rows, cols, out, dst);
  if (level == 0) return Errc::ok;
  // levels above 0 (REFINE.md, EXACT_TOP.md) apply onto level 0's values in
  // the tensor's own dtype (the reader asks for no other)
  if (out != t.dtype) return Errc::usage;
  return qrow_upgrade_tile(t, tile, 0, level, in, dst);
}

Errc qrow_upgrade_tile(const TensorRecord& t, uint32_t tile, unsigned from, unsigned to, const TileInputs& in,
                       uint8_t* dst) {
  if (from >= to || to >= t.levels.size()) return Errc::usage;
  const uint32_t dt = uint32_t(t.dtype);
  // (thread-local: the tables' vectors keep their memory from tile to tile)
  thread_local exact::Tables tb, scratch;
  // part 0 inline as they are (in the record): a payload may leave its step bytes to it
  exact::TileContext cx;
  const PartRecord& s = t.parts[0];
  if (s.layout == PartLayout::inline_items && s.codec == 0) {
    TileInputs p0;
    p0.data[0] = s.data.data(), p0.size[0] = s.data.size();
    cx.steps = qrow_tile_steps(t, tile, p0);
  }
  const uint64_t rows = t.rows_in_tile(tile);
  for (unsigned k = from + 1; k <= to; ++k) {
    const unsigned p = 2 * k;
    if (t.parts[p].role == PartRole::block) {  // BITSTACK.md §2
      const Errc rc = bitstack::apply_tile(in.data[p], in.size[p], in.data[p + 1], in.size[p + 1], dt, t.rows(),
                                           uint64_t(tile) * t.tile_rows(), rows, t.cols(), dst);
      if (rc != Errc::ok) return rc;
      continue;
    }
    cx.refine = t.parts[p].role != PartRole::exact_top;
    cx.tables_in_payload = t.parts[p].items == 0;
    if (!cx.tables_in_payload) {
      const bool ok = cx.refine ? exact::parse_refine_tables(in.data[p], in.size[p], tb)
                                : exact::parse_tables(in.data[p], in.size[p], dt, tb);
      if (!ok) return Errc::codec;
    }
    const Errc rc = exact::apply_tile(tb, cx, scratch, in.data[p + 1], in.size[p + 1], dt, qrow_base_exp(t), rows,
                                      t.cols(), dst);
    if (rc != Errc::ok) return rc;
  }
  return Errc::ok;
}

}  // namespace wc
