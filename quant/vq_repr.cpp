#include "quant/vq_repr.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "codec/codec.h"
#include "format/bytes.h"
#include "quant/float_load.h"
#include "quant/qrow_math.h"
#include "quant/qrow_repr.h"
#include "quant/vq_math.h"

namespace wc {

uint32_t vq_dim(const TensorRecord& t) { return t.params.size() == 4 || t.params.size() == 6 ? t.params[2] : 0; }
uint32_t vq_shift(const TensorRecord& t) { return t.params.size() == 4 || t.params.size() == 6 ? t.params[3] : 0; }
uint32_t vq_second(const TensorRecord& t) { return t.params.size() == 6 ? load_u16(t.params.data() + 4) : 0; }
uint64_t vq_books(const TensorRecord& t) {
  const uint32_t s = vq_shift(t);
  return s == 0 ? 1 : (t.rows() >> s) + ((t.rows() & ((uint64_t(1) << s) - 1)) != 0);
}
uint64_t vq_entries(const TensorRecord& t) {
  const uint64_t per = vq_books(t) * vq_dim(t);
  return per && t.parts.size() == 3 ? t.parts[2].items / per : 0;
}
uint64_t vq_codes(const TensorRecord& t) {
  const uint64_t e = vq_entries(t), k2 = vq_second(t);
  return k2 ? (e > k2 ? (e - k2) * k2 : 0) : e;
}

void vq_check(const TensorRecord& t) {
  auto bad = [&](const std::string& why) {
    Error e(Errc::corrupt, "vq: " + why);
    e.at_tensor(t.name);
    throw e;
  };
  if (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32) bad("dtype must be BF16, F16 or F32");
  if (t.params.size() != 4 && t.params.size() != 6)
    bad("parameters must be 4 bytes (base exponent, d, book shift) or 6 (and the second codebook's size)");
  if (t.params.size() == 6 && vq_second(t) == 0) bad("the second codebook's size must be at least 1");
  const int32_t b = qrow_base_exp(t);
  if (b < qrow::kMinBaseExp || b > qrow::kMaxBaseExp) bad("base exponent " + std::to_string(b) + " is out of range");
  const uint32_t d = vq_dim(t);
  if (d != 1 && d != 2 && d != 4 && d != 8) bad("d must be 1, 2, 4 or 8");
  if (t.cols() % d != 0) bad("the columns must be a multiple of d");
  if (vq_shift(t) > kMaxVqShift) bad("the book shift must be at most " + std::to_string(kMaxVqShift));
  if (t.levels.size() != 1) bad("must have exactly one level");
  if (t.parts.size() != 3) bad("must have exactly three parts (scales, codes, codebook)");
  const PartRecord& s = t.parts[0];
  const PartRecord& c = t.parts[1];
  const PartRecord& cb = t.parts[2];
  if (s.role != PartRole::scales || s.item != DType::U8 ||
      (s.layout != PartLayout::per_row && s.layout != PartLayout::inline_items) || s.items != t.rows())
    bad("part 0 must be the scales: U8, one per row, per-row or inline");
  const uint64_t groups = t.rows() * (t.cols() / d);
  // d = 1 (a scalar palette): one code per element, layout 0 (layout 4 needs g >= 2)
  const bool tiled = d == 1 ? c.layout == PartLayout::per_element : c.layout == PartLayout::per_group && c.group == d;
  if (c.role != PartRole::codes || (c.item != DType::U8 && c.item != DType::U16) || c.items != groups ||
      !(tiled || (c.layout == PartLayout::inline_items && t.tile_count() == 1)))
    bad("part 1 must be the codes: U8 or U16, one per group of d, per group (per element when d = 1) or inline in a "
        "tensor of one tile");
  const uint64_t per_k = vq_books(t) * d;
  if (cb.role != PartRole::codebook || cb.item != DType::F32 ||
      !(cb.layout == PartLayout::inline_items || cb.layout == PartLayout::tensor_wide) ||
      (cb.layout == PartLayout::inline_items && cb.codec != 0) || cb.items == 0 || cb.items % per_k != 0 ||
      cb.items / per_k > kMaxVqEntries)
    bad("part 2 must be the codebook: F32, inline (codec 0) or tensor-wide, books x K x d values, 1 <= K <= 65536");
  if (const uint64_t k2 = vq_second(t); k2 && (vq_entries(t) <= k2 || vq_codes(t) > kMaxVqEntries))
    bad("additive codebooks: each book must hold K1 >= 1 entries, then K2, with K1 x K2 <= 65536");
  for (const PartRecord* p : {&s, &c, &cb})
    if ((p->layout != PartLayout::inline_items || p->codec != 0) &&
        (!codec_id_valid(p->codec) || !codec_supports_part(static_cast<CodecId>(p->codec), p->item)))
      bad("codec " + std::to_string(p->codec) + " cannot store its part");
  for (size_t p : {size_t(0), size_t(1), size_t(2)})
    if (t.parts[p].level != 0) bad("every part is at level 0");
}

namespace vq {

namespace {
uint32_t out_id(DType out) { return uint32_t(out); }
}  // namespace

bool decode_rows_ref(int32_t base_exp, const uint8_t* e, const uint8_t* codes, unsigned code_bytes, const Books& b,
                     uint64_t n, uint64_t cols, DType out, uint8_t* dst) {
  for (uint64_t i = 0; i < n * cols; ++i)
    if (!element(base_exp, e, codes, code_bytes, b, cols, i, out_id(out), dst)) return false;
  return true;
}

bool decode_rows_fast(int32_t base_exp, const uint8_t* e, const uint8_t* codes, unsigned code_bytes, const Books& b,
                      uint64_t n, uint64_t cols, DType out, uint8_t* dst) {
  const uint32_t d = b.d, k = b.k;
  const uint64_t gpr = cols / d;
  // each row's values as binary32 first, then converted together (the
  // element-by-element F16 conversion took three quarters of the time)
  thread_local std::vector<float> vals;
  vals.resize(size_t(cols));
  const size_t ob = dtype_bits(out) / 8;
  for (uint64_t r = 0; r < n; ++r) {
    const float step = qrow::step_of(base_exp, e[r]);
    const uint64_t book = b.shift ? (b.row0 + r) >> b.shift : 0;
    const uint8_t* cb = b.cb + book * book_entries(b) * d * 4;  // this row's book
    const uint8_t* cb2 = b.k2 ? cb + size_t(k / b.k2) * d * 4 : nullptr;  // additive: the second codebook
    for (uint64_t g = 0; g < gpr; ++g) {
      const uint64_t gi = r * gpr + g;
      const uint32_t u = code_bytes == 1 ? uint32_t(codes[gi]) : uint32_t(codes[2 * gi] | codes[2 * gi + 1] << 8);
      if (u >= k) return false;
      float* vg = vals.data() + g * d;
      if (cb2) {
        const uint32_t i = u / b.k2, m = u - i * b.k2;
        for (uint32_t j = 0; j < d; ++j)
          vg[j] = value_of(step, sum_of(cb_value(cb, size_t(i) * d + j), cb_value(cb2, size_t(m) * d + j)));
      } else {
        for (uint32_t j = 0; j < d; ++j) vg[j] = value_of(step, cb_value(cb, size_t(u) * d + j));
      }
    }
    store_floats(out, vals.data(), size_t(gpr * d), dst + r * cols * ob);  // finite or Inf: never NaN
  }
  return true;
}

}  // namespace vq

Errc vq_decode_tile(const TensorRecord& t, uint32_t tile, unsigned level, const TileInputs& in, DType out,
                    uint8_t* dst) {
  (void)level;
  const uint64_t rows = t.rows_in_tile(tile), cols = t.cols();
  const uint32_t d = vq_dim(t);
  const uint8_t* e = qrow_tile_steps(t, tile, in);
  const unsigned cb_bytes = t.parts[1].item_bytes();
  if (!e || in.size[1] != rows * (cols / d) * cb_bytes) return Errc::codec;
  // the codebook part (inline, or a tensor-wide chunk) holds every book
  if (!in.data[2] || in.size[2] != t.parts[2].items * 4) return Errc::codec;
  for (size_t j = 0; j < t.parts[2].items; ++j)
    if (!std::isfinite(vq::cb_value(in.data[2], j))) return Errc::codec;
  const vq::Books b{in.data[2], uint32_t(vq_codes(t)), d, vq_shift(t), uint64_t(tile) * t.tile_rows(), vq_second(t)};
  return vq::decode_rows_fast(qrow_base_exp(t), e, in.data[1], cb_bytes, b, rows, cols, out, dst) ? Errc::ok
                                                                                                   : Errc::codec;
}

}  // namespace wc
