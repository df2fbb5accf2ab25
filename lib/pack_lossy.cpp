#include "lib/pack_lossy.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <queue>
#include <regex>

#include "codec/auto_select.h"
#include "codec/codec.h"
#include "format/bytes.h"
#include "format/hash.h"
#include "format/writer.h"
#include "format/zframe.h"
#include "lib/decode_driver.h"
#include "model/safetensors.h"
#include "platform/file_io.h"
#include "quant/allocate.h"
#include "quant/bitstack_math.h"
#include "quant/float_load.h"
#include "quant/outliers.h"
#include "quant/outliers_repr.h"
#include "quant/qrow.h"
#include "quant/qrow_math.h"
#include "quant/qrow_repr.h"
#include "quant/vq_repr.h"
#include "lib/calibration.h"
#include "quant/sensitivity.h"

namespace wc {

namespace {

// A tile holds about this many elements: chunks of codes as large as the
// lossless default (256 KiB of one-byte codes), whole rows.
constexpr uint64_t kTileElements = 1u << 18;
// Per chunk beyond its payload: a 16-byte header, on average 32 bytes of
// alignment padding, a 24-byte index entry. (inspect counts the real ones.)
constexpr double kLossyChunkOverhead = 16 + 32 + 24;
// Step multipliers tried per tensor: 2^(k/8) x the row's scale (steps of
// about 1/8 bit a weight), from about 13 bits a weight down to below 1.
// (A 1/16 grid measured the same on the corpus model within kld_eval's
// standard error: KLD 0.0744 against 0.0730 at 4.25 bits, 0.391 against
// 0.400 at 3.25; it costs twice the curve time.)
constexpr int kGridLo = -88, kGridHi = 24, kGridDiv = 8;
// The curve is measured coarse to fine: every kCoarse-th step of the grid
// first (29 of 113), then, once a first allocation has shown where each
// tensor's choice lies, the steps within kFine of it (in each of its
// variants, plain and outliers zeroed): near the choice the allocation
// picks among the full grid's points, further off among every 4th, at a
// third of the full grid's cost (the curve took about 80% of a lossy
// pack; on the corpus the final choices are the full grid's).
constexpr int kCoarse = 4, kFine = 3;
static_assert((kGridHi - kGridLo) % kCoarse == 0, "the coarse grid ends at kGridHi");
// Weight of the rate term of the rounding, by budget: rate savings matter
// more as the rate falls. On the corpus model 0.1 was best at 4.25 bits (KLD
// 0.073 against 0.077 with 0.2), 0.2 at 2.25 (2.15 against 2.33), both gave
// 0.387 at 3.25; letting the allocation pick per tensor was worse at every
// budget (its objective is weight error, which the rate term trades away).
// With GPTQ feedback (--calib) a rounding error is partly absorbed by the
// columns after it, so the rate term can stay at its floor down to about 2
// bits (corpus model, 3.25 bpw: KLD 0.252 at 0.15, 0.238 at 0.1; 2.25 bpw:
// 1.858 at 0.2, 1.861 at 0.1; 1.6 bpw: 3.84 at 0.2, 4.44 at 0.1).
double rd_mu(double bits, bool feedback) {
  if (feedback) return bits > 2 ? 0.1 : 0.2;
  return std::clamp(0.1 + 0.1 * (4.0 - bits) / 1.5, 0.1, 0.2);
}
// What zstd makes of a record before the real manifest is measured.
constexpr double kManifestRatioGuess = 0.5;
// Rows sampled for the rate-distortion curve of a large tensor.
constexpr uint64_t kSampleElements = 1u << 16;
// Smallest budget the encoder accepts: codes cost at least the table and a
// fraction of a bit.
constexpr double kMinBits = 0.5;
// Largest: beyond it the codes need more than 16 bits, and lossless coding
// of a BF16 or F16 model (10-12 bits) is the better choice anyway.
constexpr double kMaxBits = 12;
// --refine: the factors by which a level may make a tensor's step finer
// (the encoder chooses per tensor and level, REFINE.md §5; an even one
// codes odd multiples of a step half as large, so that its bins nest in
// those below), and a level's where none was chosen (--refine-factor's
// default: its cost everywhere is a level's budget)
constexpr uint32_t kRefineFactors[] = {2, 3, 4, 5, 6};
constexpr uint32_t kRefineDefault = 3;
// Tiles a factor's rate and error are measured on, spread over the tensor,
// and the weights at most, the first rows of each (their levels below and
// each factor's codes and counts computed on those rows only)
constexpr uint64_t kRefineSampleTiles = 8;
// (2^17: on Whisper tiny.en the factor trials were 43% of pack --refine 3
// on whole tiles; the choices are those of whole tiles on its BF16 variant,
// one tensor level differs on F16, 0.02% smaller, 0.01% more error)
constexpr uint64_t kRefineSampleElements = uint64_t(1) << 17;
// --refine, --exact: the bytes of tiles' levels kept from planning for the
// chunks and hashes built on them (LevelCache); a model whose levels take
// more has the rest rebuilt from level 0 as needed
constexpr uint64_t kLevelCacheBytes = uint64_t(1) << 30;
std::atomic<uint64_t> level_cache_bytes{kLevelCacheBytes};
// --refine: refinement levels at most (with --exact, 8 levels: two parts
// each and a record's 16 parts)
constexpr unsigned kMaxRefine = 6;

struct Candidate {
  uint32_t tensor = 0;
  uint64_t rows = 0, cols = 0;
  std::vector<double> rms;
  double rms_all = 0;
  double sensitivity = 1;
  std::vector<qrow::Plan> grid;
  std::vector<RatePoint> curve;
  std::vector<int> steps_g;  // the grid step (kGridLo .. kGridHi) of each qrow point, grid[0 .. n_vq0)
  std::vector<uint64_t> sample;  // rows the curve and the rounding's rate table are measured on
  double fixed_bits = 0;
  uint64_t chunks = 0;  // chunks the tensor takes in the file
  std::shared_ptr<const qrow::Feedback> fb;  // --calib
  // curve points [0, n_plain) are qrow's, the rest qrow-outliers' (its data
  // with the outliers zeroed: their element indices, ascending; their rows'
  // scales and its outlier block). The zeroed data is made where it is read
  // (zeroed_rows, zeroed_all), not kept: a copy per tensor with outliers to
  // offer, held through the plan, was as much memory as the model (1.1x on
  // a 1.87 GB generated BF16 model, 74 of Whisper tiny.en's 75 MB).
  size_t n_plain = 0;
  std::vector<uint64_t> zero_pos;
  double e_scale = 1;  // the zeroed sample rows' energy over the plain ones'
  std::vector<double> rms_z;
  double rms_all_z = 0;
  std::vector<uint8_t> block;
  uint64_t outliers = 0;
  // curve points [n_vq0, ...) are vq's, one codebook each (steps: vq_steps)
  size_t n_vq0 = SIZE_MAX;
  std::vector<std::shared_ptr<const vq::Codebook>> vq;
  qrow::Steps vq_steps;
  std::shared_ptr<const qrow::Feedback> vq_fb;  // GPTQ for the codes (a hessian): identity order
  std::shared_ptr<const std::vector<float>> imp;
  // --exact, a tensor with Inf or NaN values: the tensor with them set to 0,
  // which level 0 quantizes (its top layer restores them)
  std::shared_ptr<const std::vector<uint8_t>> finite;
  const uint8_t* plain(const uint8_t* data) const { return finite ? finite->data() : data; }
};

// The tensor with its non-finite elements (exponent field all ones) set to +0.
std::shared_ptr<const std::vector<uint8_t>> finite_copy(DType t, const uint8_t* data, uint64_t n) {
  auto out = std::make_shared<std::vector<uint8_t>>(data, data + n * (dtype_bits(t) / 8));
  uint8_t* p = out->data();
  for (uint64_t i = 0; i < n; ++i) {
    if (t == DType::F32) {
      if ((load_u32(p + 4 * i) & 0x7F800000u) == 0x7F800000u) store_u32(p + 4 * i, 0);
    } else {
      const uint16_t e = t == DType::F16 ? 0x7C00 : 0x7F80;
      if ((load_u16(p + 2 * i) & e) == e) store_u16(p + 2 * i, 0);
    }
  }
  return out;
}

uint32_t tile_rows_for(uint64_t rows, uint64_t cols) {
  return uint32_t(std::clamp<uint64_t>(kTileElements / std::max<uint64_t>(cols, 1), 1, std::min<uint64_t>(rows, 1u << 30)));
}

// Scalars per tensor name from a safetensors file (F32, one element).
std::vector<std::pair<std::string, double>> read_sensitivities(const std::string& path) {
  MappedFile f(path);
  st::Header h;
  try {
    h = st::parse_header(f.data(), f.size(), f.size());
  } catch (Error& e) {
    Error u(Errc::usage, std::string("--sensitivity: not a safetensors file of F32 scalars (") + e.what() + ")");
    u.at_file(path);
    throw u;
  }
  std::vector<std::pair<std::string, double>> v;
  for (const auto& t : h.tensors) {
    uint64_t n = 1;
    for (uint64_t d : t.shape) n *= d;
    if (t.dtype != DType::F32 || n != 1) {
      Error e(Errc::usage, "--sensitivity: each entry must be one F32 value");
      e.at_file(path).at_tensor(t.name);
      throw e;
    }
    float x;
    std::memcpy(&x, f.data() + h.data_start + t.begin, 4);
    if (!(x >= 0) || !std::isfinite(x)) {
      Error e(Errc::usage, "--sensitivity: a sensitivity must be a finite number >= 0");
      e.at_file(path).at_tensor(t.name);
      throw e;
    }
    v.emplace_back(t.name, double(x));
  }
  return v;
}

// The record of a qrow tensor with steps `s` (codes item decided later).
void make_record(TensorRecord& t, const qrow::Steps& s, uint32_t tile_rows, const std::vector<uint8_t>& block = {}) {
  t.repr = block.empty() ? kReprQrow : kReprQrowOutliers;
  t.codec = 0;
  t.chunk_size = tile_rows;
  t.params.assign(2, 0);
  store_u16(t.params.data(), uint16_t(int16_t(s.base_exp)));
  t.parts.assign(2, PartRecord{});
  PartRecord& sc = t.parts[0];
  sc.role = PartRole::scales;
  sc.item = DType::U8;
  sc.items = t.rows();
  // One tile: the steps ride in the manifest (no chunk of their own).
  if (t.tile_count() == 1 && sc.items <= kMaxInlinePart) {
    sc.layout = PartLayout::inline_items;
    sc.codec = 0;
    sc.data = s.e;
  } else {
    sc.layout = PartLayout::per_row;
    sc.codec = uint8_t(CodecId::float_ans);
  }
  PartRecord& cd = t.parts[1];
  cd.role = PartRole::codes;
  cd.layout = PartLayout::per_element;
  cd.item = DType::U8;
  cd.codec = uint8_t(CodecId::float_ans);
  cd.items = t.elements();
  if (!block.empty()) {
    PartRecord o;
    o.role = PartRole::outliers;
    o.layout = PartLayout::inline_items;
    o.item = DType::U8;
    o.codec = 0;
    o.items = block.size();
    o.data = block;
    t.parts.push_back(std::move(o));
  }
  t.levels.assign(1, LevelRecord{});
}

// The record of a vq tensor (spec/VQ.md) with steps `s` and codebook cb
// (codes item decided later).
void make_vq_record(TensorRecord& t, const qrow::Steps& s, uint32_t tile_rows, const vq::Codebook& cb) {
  make_record(t, s, tile_rows);
  t.repr = kReprVq;
  t.params.assign(cb.k2 ? 6 : 4, 0);
  store_u16(t.params.data(), uint16_t(int16_t(s.base_exp)));
  t.params[2] = uint8_t(cb.d);
  t.params[3] = uint8_t(cb.shift);
  if (cb.k2) store_u16(t.params.data() + 4, uint16_t(cb.k2));  // additive: the second codebook's size
  PartRecord& cd = t.parts[1];
  cd.layout = cb.d == 1 ? PartLayout::per_element : PartLayout::per_group;
  cd.group = cb.d == 1 ? 0 : uint8_t(cb.d);
  cd.items = t.rows() * (t.cols() / cb.d);
  PartRecord b;
  b.role = PartRole::codebook;
  b.item = DType::F32;
  b.items = cb.c.size();
  if (b.items * 4 <= kMaxInlinePart) {  // in the record
    b.layout = PartLayout::inline_items;
    b.codec = 0;
    b.data.resize(cb.c.size() * 4);
    std::memcpy(b.data.data(), cb.c.data(), b.data.size());
  } else {  // (2.11) a chunk of level 0 before the tiles' (encode_quantized_tile)
    b.layout = PartLayout::tensor_wide;
    b.codec = uint8_t(CodecId::float_ans);
  }
  t.parts.push_back(std::move(b));
}

// Whether t's codes go in its record (FORMAT.md §4.4, 2.3): one tile whose
// codes take at most an inline part's 2^16 bytes.
bool codes_inline(const TensorRecord& t) {
  return t.tile_count() == 1 && t.parts[1].items * t.parts[1].item_bytes() <= kMaxInlinePart;
}

// Codes of a tile as stored: one or two bytes each.
void pack_codes(const uint16_t* u, size_t n, DType item, std::vector<uint8_t>& out) {
  out.resize(n * (item == DType::U8 ? 1 : 2));
  if (item == DType::U8)
    for (size_t i = 0; i < n; ++i) out[i] = uint8_t(u[i]);
  else
    for (size_t i = 0; i < n; ++i) store_u16(out.data() + 2 * i, u[i]);
}

// Plan defaults for the data-free encoder (see QROW.md §4).
qrow::Plan lossy_defaults() {
  qrow::Plan p;
  p.alpha = 1.0;  // step proportional to the row's RMS (measured best on the corpus model)
  p.mu = 0.1;     // rate-distortion rounding (set by budget: rd_mu)
  return p;
}

}  // namespace

// The codes of tile `tile` of t, as stored (sc.bytes).
void quantize_tile(const TensorRecord& t, const LossyTensor& lt, const uint8_t* data, uint64_t tile, LossyScratch& sc,
                   uint64_t rows) {
  const uint64_t cols = t.cols(), r0 = tile * t.tile_rows();
  if (!rows || lt.vq) rows = t.rows_in_tile(tile);
  if (lt.vq) {  // one code per group of d
    const uint64_t n = rows * (cols / lt.vq->d);
    sc.codes.resize(n);
    vq::encode_rows_as_written(t.dtype, data, cols, r0, rows, lt.steps, *lt.vq, lt.imp ? lt.imp->data() : nullptr,
                               lt.vq_fb.get(), sc.codes.data());
    pack_codes(sc.codes.data(), n, t.parts[1].item, sc.bytes);
    return;
  }
  sc.codes.resize(rows * cols);
  qrow::quantize_rows(t.dtype, lt.source(data), cols, r0, rows, lt.steps, lt.plan, lt.rd, 2, sc.codes.data(),
                      lt.fb.get());
  pack_codes(sc.codes.data(), rows * cols, t.parts[1].item, sc.bytes);
}

namespace {

// Tile `tile` of t reconstructed in its dtype into `out` from its codes in
// sc.bytes (quantize_tile), as every decoder writes it; `rows` as
// quantize_tile's (plain qrow: no codebooks, no outliers).
void reconstruct_tile(const TensorRecord& t, const LossyTensor& lt, uint64_t tile, const LossyScratch& sc,
                      std::vector<uint8_t>& out, uint64_t rows = 0) {
  const uint64_t cols = t.cols(), r0 = tile * t.tile_rows();
  if (!rows || lt.vq || !lt.block.empty()) rows = t.rows_in_tile(tile);
  out.resize(rows * cols * (dtype_bits(t.dtype) / 8));
  if (lt.vq) {
    // the codebook's floats as the part stores them (F32, little-endian: make_vq_record)
    const vq::Books b{reinterpret_cast<const uint8_t*>(lt.vq->c.data()), lt.vq->k, lt.vq->d, lt.vq->shift, r0,
                      lt.vq->k2};
    if (!vq::decode_rows_fast(lt.steps.base_exp, lt.steps.e.data() + r0, sc.bytes.data(), t.parts[1].item_bytes(), b,
                              rows, cols, t.dtype, out.data()))
      fail(Errc::codec, "the vq codes written do not decode (an encoder bug)");
    return;
  }
  qrow::decode_rows_fast(lt.steps.base_exp, lt.steps.e.data() + r0, sc.bytes.data(), t.parts[1].item_bytes(), rows,
                         cols, t.dtype, out.data());
  // the outliers over the codes' values, as every decoder writes them
  if (!lt.block.empty() && !apply_outliers(t, uint32_t(tile), lt.block.data(), lt.block.size(), t.dtype, out.data()))
    fail(Errc::codec, "the outlier block written does not decode (an encoder bug)");
}

// Runs `work(slot, tile)` over t's tiles in parallel windows and
// `in_order(slot, tile)` after each window, tile by tile, on this thread.
template <class Work, class InOrder>
void for_tiles(const TensorRecord& t, ThreadPool& pool, size_t slots, Work&& work, InOrder&& in_order) {
  const uint64_t tiles = t.tile_count();
  for (uint64_t w = 0; w < tiles; w += slots) {
    const size_t n = size_t(std::min<uint64_t>(slots, tiles - w));
    pool.parallel_for(n, [&](size_t k) { work(k, w + k); });
    for (size_t k = 0; k < n; ++k) in_order(k, w + k);
  }
}

// A reconstruction's error against the originals: squared error, the
// originals' energy, the largest |error|. --exact's Inf and NaN originals
// are restored by the top layer and not counted.
struct ErrorSums {
  double err = 0, sig = 0, max = 0;
};
ErrorSums error_sums(const float* orig, const float* got, uint64_t n) {
  ErrorSums s;
  for (uint64_t i = 0; i < n; ++i) {
    if (!std::isfinite(orig[i])) continue;
    const double d = double(orig[i]) - double(got[i]);
    s.err += d * d, s.sig += double(orig[i]) * orig[i], s.max = std::max(s.max, std::fabs(d));
  }
  return s;
}

// Settles t's record on the whole tensor: the codes' item type, the
// reconstruction hash and error figures. Returns the bytes its chunks will
// take in the file (payloads encoded here; alignment padding estimated).
double settle_tensor(TensorRecord& t, const LossyTensor& lt, const uint8_t* data, ThreadPool& pool) {
  const size_t slots = size_t(pool.size()) * 2;
  std::vector<LossyScratch> sc(slots);
  std::vector<uint32_t> umax(slots, 0);
  const uint64_t cols = t.cols();
  // codes of one byte when every code fits; qrow's codes are kept for the
  // pass below (2 bytes a weight of this tensor, instead of quantizing twice)
  t.parts[1].item = DType::U16;
  std::vector<uint16_t> codes;
  if (lt.vq) {
    umax[0] = lt.vq->k - 1;
  } else {
    codes.resize(t.elements());
    for_tiles(
        t, pool, slots,
        [&](size_t k, uint64_t tile) {
          const uint64_t rows = t.rows_in_tile(tile), r0 = tile * t.tile_rows();
          umax[k] = std::max(umax[k], qrow::quantize_rows(t.dtype, lt.source(data), cols, r0, rows, lt.steps, lt.plan,
                                                          lt.rd, 2, codes.data() + r0 * cols, lt.fb.get()));
        },
        [](size_t, uint64_t) {});
  }
  t.parts[1].item = *std::max_element(umax.begin(), umax.end()) <= 255 ? DType::U8 : DType::U16;
  // A tensor of one tile keeps its codes in its record when they fit (2.3):
  // no chunk header, padding or index entry (72 bytes a chunk on average,
  // a few percent of a small tensor at 2 bits per weight).
  const bool inline_codes = codes_inline(t);
  PartRecord& cd = t.parts[1];
  cd.layout = inline_codes                ? PartLayout::inline_items
              : lt.vq && lt.vq->d > 1 ? PartLayout::per_group
                                      : PartLayout::per_element;
  cd.group = cd.layout == PartLayout::per_group ? uint8_t(lt.vq->d) : 0;
  cd.data.clear();
  std::vector<std::vector<uint8_t>> recon(slots);
  std::vector<std::vector<std::vector<uint8_t>>> chunks(slots);
  std::vector<double> err(slots, 0), sig(slots, 0), mx(slots, 0);
  HashState hs;
  XXH3_64bits_reset(hs.s);
  double payload = 0, nchunks = 0, e_all = 0, s_all = 0, m_all = 0;
  for_tiles(
      t, pool, slots,
      [&](size_t k, uint64_t tile) {
        if (lt.vq) quantize_tile(t, lt, data, tile, sc[k]);
        else pack_codes(codes.data() + tile * t.tile_rows() * cols, t.rows_in_tile(tile) * cols, cd.item, sc[k].bytes);
        reconstruct_tile(t, lt, tile, sc[k], recon[k]);
        encode_quantized_tile(t, lt, tile, chunks[k], sc[k]);
        if (inline_codes) {  // one tile: this is the only call
          EncodeOptions eo;
          encode_chunk(CodecId::float_ans, cd.item, sc[k].bytes.data(), sc[k].bytes.size(), cd.data, eo);
        }
        const uint64_t n = t.rows_in_tile(tile) * cols;
        std::vector<float> a(n), b(n);
        load_floats(t.dtype, data + tile * t.tile_rows() * cols * (dtype_bits(t.dtype) / 8), n, a.data());
        load_floats(t.dtype, recon[k].data(), n, b.data());
        const ErrorSums es = error_sums(a.data(), b.data(), n);
        err[k] = es.err, sig[k] = es.sig, mx[k] = es.max;
      },
      [&](size_t k, uint64_t) {
        XXH3_64bits_update(hs.s, recon[k].data(), recon[k].size());
        for (const auto& c : chunks[k]) payload += double(c.size()), ++nchunks;
        e_all += err[k], s_all += sig[k], m_all = std::max(m_all, mx[k]);
      });
  LevelRecord& top = t.levels.back();
  top.xxh3 = XXH3_64bits_digest(hs.s);
  top.rel_rmse = float(s_all > 0 ? std::sqrt(e_all / s_all) : 0.0);
  top.max_abs = float(m_all);
  return payload + nchunks * kLossyChunkOverhead;
}

// The step divisor of refinement level k of lt (REFINE.md §2; 1 for level
// 0 and for the exact top layer's level below when there is no refinement),
// and the context shift of level k (refinement or exact top): floor(log2)
// of the divisor of the level below.
uint32_t divisor_of(const LossyTensor& lt, unsigned k) {
  return k == 0 || k > lt.upper.size() || !lt.upper[k - 1].tables ? 1 : lt.upper[k - 1].tables->M;
}
unsigned context_shift(const LossyTensor& lt, unsigned k) { return exact::bit_length(divisor_of(lt, k - 1)) - 1; }
// The divisor of level k's bins: its step's, halved where its codes are odd
// (an even factor: a bin is two steps wide).
uint32_t bin_divisor(const LossyTensor& lt, unsigned k) {
  return divisor_of(lt, k) / (k >= 1 && k <= lt.upper.size() && lt.upper[k - 1].odd ? 2 : 1);
}
// Level k's step divisor and whether its codes are odd, for factor m over
// the bins of the level below: an odd m cuts each bin in m around the value
// below (nearest codes); an even m in m halves of steps, whose centres are
// the odd multiples of a step half as large.
std::pair<uint32_t, bool> factor_divisor(uint32_t below_bins, uint32_t m) {
  return m % 2 ? std::pair{below_bins * m, false} : std::pair{below_bins * 2 * m, true};
}

// Tile `tile`'s target values as binary32 (what refinement levels approach:
// --exact's Inf and NaN set to 0, as level 0 has them).
void tile_floats(const TensorRecord& t, const LossyTensor& lt, const uint8_t* data, uint64_t tile, std::vector<float>& x,
                 uint64_t rows = 0) {
  const uint64_t n = (rows ? rows : t.rows_in_tile(tile)) * t.cols();
  x.resize(n);
  load_floats(t.dtype, lt.source(data) + tile * t.tile_rows() * t.cols() * (dtype_bits(t.dtype) / 8), n, x.data());
}

// Refinement level k of a tile onto its bits below (`below`, the tile's
// level k - 1): the codes into sc.d (a block's signs into sc.signs), the
// level's bits into `above`; of the tile's first `rows` rows (0: all).
void refine_step(const TensorRecord& t, const LossyTensor& lt, uint64_t tile, unsigned k, LossyScratch& sc,
                 const uint8_t* below, uint8_t* above, uint64_t rows = 0) {
  const uint64_t cols = t.cols();
  if (!rows) rows = t.rows_in_tile(tile);
  if (const auto& f = lt.upper[k - 1].block) {  // a sign-magnitude block (BITSTACK.md): signs into sc.signs
    sc.signs.resize(rows * cols);
    if (!bitstack::encode_tile(*f, uint32_t(t.dtype), sc.x.data(), below, tile * t.tile_rows(), rows, cols,
                               sc.signs.data(), above)) {
      Error e(Errc::limit, "level " + std::to_string(k) + " of tile " + std::to_string(tile) +
                               ": a sign-magnitude block gives no finite value for an element");
      e.at_tensor(t.name);
      throw e;
    }
    return;
  }
  sc.d.resize(rows * cols);
  exact::refine_codes(uint32_t(t.dtype), sc.x.data(), below, lt.steps.base_exp, lt.steps.e.data() + tile * t.tile_rows(),
                      lt.upper[k - 1].tables->M, rows, cols, sc.d.data(), above, lt.upper[k - 1].odd);
}

// sc.recon: tile `tile` at level `level` rebuilt from level 0, sc.x its
// target values; of the tile's first `rows` rows (0: all).
void rebuild_tile(const TensorRecord& t, const LossyTensor& lt, const uint8_t* data, uint64_t tile, unsigned level,
                  LossyScratch& sc, uint64_t rows = 0) {
  quantize_tile(t, lt, data, tile, sc, rows);
  reconstruct_tile(t, lt, tile, sc, sc.recon, rows);
  tile_floats(t, lt, data, tile, sc.x, rows);
  for (unsigned k = 1; k <= level; ++k) refine_step(t, lt, tile, k, sc, sc.recon.data(), sc.recon.data(), rows);
}

bool has_exact_top(const LossyTensor& lt) { return !lt.upper.empty() && lt.upper.back().tables->M == 0; }

// Level k of t as a sign-magnitude block (BITSTACK.md §1): its two parts
// (factors a tensor-wide zstd chunk, signs per element, float-ans) and its
// level record from the tiles' hash and error sums. Returns the level's
// estimated bytes: the signs at a bit each (the signs of a residual are
// close to even), the factors, the chunks.
double add_block_parts(TensorRecord& t, const LossyTensor& lt, unsigned k, HashState& hs, double err, double sig,
                       double mx) {
  PartRecord f;
  f.role = PartRole::block;
  f.level = uint8_t(k);
  f.layout = PartLayout::tensor_wide;
  f.item = DType::U8;
  f.codec = uint8_t(CodecId::zstd);
  f.items = lt.upper[k - 1].bytes->size();
  PartRecord s = f;
  s.layout = PartLayout::per_element;
  s.codec = uint8_t(CodecId::float_ans);  // order-0 rANS over the bytes: a bit a sign (zstd -3 takes 1.5)
  s.items = t.elements();
  t.parts.push_back(std::move(f));
  t.parts.push_back(std::move(s));
  LevelRecord lr;
  lr.xxh3 = XXH3_64bits_digest(hs.s);
  lr.rel_rmse = float(sig > 0 ? std::sqrt(err / sig) : 0.0);
  lr.max_abs = float(mx);
  t.levels.push_back(lr);
  return double(t.elements()) / 8 + double(lt.upper[k - 1].bytes->size()) +
         double(t.tile_count() + 1) * kLossyChunkOverhead;
}

// --refine, --exact: t's levels above 0 (REFINE.md, EXACT_TOP.md), R
// refinement levels and then, with `top`, the exact top layer, whose tables
// are the symbol counts of the whole tensor. Each level's hash and error
// figures are those of the tensor reconstructed at it (the exact top's:
// the original bytes). Returns the estimated bytes of each level (1..).
std::vector<double> add_upper_levels(TensorRecord& t, LossyTensor& lt, const uint8_t* data, unsigned R, bool top,
                                     ThreadPool& pool) {
  const size_t slots = size_t(pool.size()) * 2;
  const unsigned L = R + (top ? 1 : 0);
  const uint32_t dt = uint32_t(t.dtype);
  const uint64_t cols = t.cols();
  const size_t eb = dtype_bits(t.dtype) / 8;
  // the levels' divisors first (chosen by choose_refinements; else a step
  // three times finer a level): refine_step reads them from lt.upper
  std::vector<uint32_t> M(R);
  std::vector<char> odd(R, 0);
  uint32_t bins = 1;  // the bins' divisor of the level below
  for (unsigned k = 1; k <= R; ++k) {
    bool o = false;
    if (k <= lt.upper.size() && lt.upper[k - 1].tables)
      M[k - 1] = divisor_of(lt, k), o = lt.upper[k - 1].odd;
    else
      std::tie(M[k - 1], o) = factor_divisor(bins, kRefineDefault);
    odd[k - 1] = o;
    bins = M[k - 1] / (o ? 2 : 1);
  }
  // (the blocks chosen by choose_refinements keep their factors)
  std::vector<LossyTensor::Upper> blocks(R);
  for (unsigned k = 1; k <= R && k <= lt.upper.size(); ++k)
    if (lt.upper[k - 1].block) blocks[k - 1] = lt.upper[k - 1];
  lt.upper.assign(L, LossyTensor::Upper{});
  for (unsigned k = 1; k <= R; ++k) {
    auto tb = std::make_shared<exact::Tables>();
    tb->M = M[k - 1];
    lt.upper[k - 1] = blocks[k - 1];
    lt.upper[k - 1].tables = std::move(tb);
    lt.upper[k - 1].odd = odd[k - 1];
  }
  auto is_block = [&](unsigned k) { return k <= R && lt.upper[k - 1].block != nullptr; };
  // low mantissa bits zero in every original (an F32 tensor of F16 values) are not coded
  const unsigned z = top ? exact::trim_bits(dt, data, t.elements()) : 0;
  struct Slot {
    LossyScratch sc;
    std::vector<exact::Counts> counts;
    std::vector<std::vector<uint8_t>> level;  // the tile at levels 1..R
    std::vector<double> err, sig, mx;
    std::vector<float> orig, got;
  };
  std::vector<Slot> sl(slots);
  for (auto& x : sl)
    x.counts.resize(L), x.level.resize(R), x.err.assign(R, 0), x.sig.assign(R, 0), x.mx.assign(R, 0);
  std::vector<HashState> hs(R);
  for (auto& h : hs) XXH3_64bits_reset(h.s);
  std::vector<double> e_all(R, 0), s_all(R, 0), m_all(R, 0);
  for_tiles(
      t, pool, slots,
      [&](size_t k, uint64_t tile) {
        Slot& x = sl[k];
        rebuild_tile(t, lt, data, tile, 0, x.sc);
        const uint64_t rows = t.rows_in_tile(tile), r0 = tile * t.tile_rows(), n = rows * cols;
        const uint8_t* e = lt.steps.e.data() + r0;
        x.orig.resize(n), x.got.resize(n);
        load_floats(t.dtype, data + r0 * cols * eb, n, x.orig.data());
        const uint8_t* below = x.sc.recon.data();
        for (unsigned j = 1; j <= R; ++j) {
          x.level[j - 1].resize(n * eb);
          refine_step(t, lt, tile, j, x.sc, below, x.level[j - 1].data());
          if (!is_block(j))
            exact::count_codes(x.counts[j - 1], dt, context_shift(lt, j), below, lt.steps.base_exp, e, rows, cols,
                               x.sc.d.data());
          below = x.level[j - 1].data();
          load_floats(t.dtype, below, n, x.got.data());
          const ErrorSums es = error_sums(x.orig.data(), x.got.data(), n);
          x.err[j - 1] = es.err, x.sig[j - 1] = es.sig, x.mx[j - 1] = es.max;
        }
        if (top)
          exact::count_tile(x.counts[R], dt, z, context_shift(lt, R + 1), data + r0 * cols * eb, below, lt.steps.base_exp,
                            e, rows, cols);
      },
      [&](size_t k, uint64_t tile) {
        for (unsigned j = 0; j < R; ++j) {
          if (lt.levels) lt.levels->put(data, tile, j + 1, sl[k].level[j]);
          XXH3_64bits_update(hs[j].s, sl[k].level[j].data(), sl[k].level[j].size());
          e_all[j] += sl[k].err[j], s_all[j] += sl[k].sig[j], m_all[j] = std::max(m_all[j], sl[k].mx[j]);
        }
      });
  for (size_t k = 1; k < slots; ++k)
    for (unsigned j = 0; j < L; ++j) sl[0].counts[j].add(sl[k].counts[j]);
  std::vector<double> bytes(L, 0);
  for (unsigned k = 1; k <= L; ++k) {
    if (is_block(k)) {
      bytes[k - 1] = add_block_parts(t, lt, k, hs[k - 1], e_all[k - 1], s_all[k - 1], m_all[k - 1]);
      continue;
    }
    const bool exact_top = top && k == L;
    auto tb = std::make_shared<exact::Tables>();
    double bits = 0;
    auto tables = std::make_shared<std::vector<uint8_t>>(
        exact_top ? exact::build_tables(sl[0].counts[k - 1], dt, z, context_shift(lt, k), *tb, &bits)
                  : exact::build_refine_tables(sl[0].counts[k - 1], context_shift(lt, k), M[k - 1], *tb, &bits));
    const PartRole role = exact_top ? PartRole::exact_top : PartRole::residual;
    PartRecord tp;
    tp.role = role;
    tp.level = uint8_t(k);
    // a chunk of level k, not the manifest: a reader of the levels below does not fetch them
    tp.layout = PartLayout::tensor_wide;
    tp.item = DType::U8;
    tp.codec = uint8_t(CodecId::zstd);
    tp.items = tables->size();
    if (tp.items > kMaxInlinePart) fail(Errc::limit, "level " + std::to_string(k) + ": the tables exceed 65536 bytes");
    PartRecord res;
    res.role = role;
    res.level = uint8_t(k);
    res.layout = PartLayout::per_element;
    res.item = exact_top && t.dtype == DType::F32 ? DType::U32 : DType::U16;
    res.codec = exact::kCodecExactResidual;
    res.items = t.elements();
    t.parts.push_back(std::move(tp));
    t.parts.push_back(std::move(res));
    LevelRecord lr;
    if (exact_top) {
      lr.xxh3 = XXH3_64bits(data, t.byte_size);
    } else {
      lr.xxh3 = XXH3_64bits_digest(hs[k - 1].s);
      lr.rel_rmse = float(s_all[k - 1] > 0 ? std::sqrt(e_all[k - 1] / s_all[k - 1]) : 0.0);
      lr.max_abs = float(m_all[k - 1]);
    }
    t.levels.push_back(lr);
    lt.upper[k - 1] = {std::move(tb), std::move(tables), nullptr, k <= R && odd[k - 1]};
    bytes[k - 1] = bits / 8 + double(t.tile_count() + 1) * kLossyChunkOverhead + double(t.rows());
  }
  // A tensor of one tile: each level's tables ride in its tile's payload,
  // and the payload leaves the rows' step bytes to the record (2.8) — a
  // chunk (72 bytes on average), a zstd frame and a byte a row less a level,
  // a few percent of a small tensor's level — unless the tile codes no
  // better than as it is (mode 0, which needs the tables elsewhere).
  if (t.tile_count() == 1) {
    LossyScratch sc1;
    std::vector<std::vector<uint8_t>> in_payload, apart;
    for (unsigned k = 1; k <= L; ++k) {
      if (is_block(k)) continue;  // (its factors stay a tensor-wide chunk)
      PartRecord& tp = t.parts[2 * k];
      auto carry = [&] { tp.layout = PartLayout::inline_items, tp.codec = 0, tp.items = 0; };
      encode_lossy_tile(t, lt, data, 0, apart, sc1, k);  // the tables apart: their chunk, then the tile's
      double sep = double(kLossyChunkOverhead);
      for (const auto& c : apart) sep += double(c.size());
      // carried, the same mode-1 payload with the tables' length and bytes
      // after its header; a tile apart in mode 0 is coded again to see
      double in = double(apart.back().size() + 2 + lt.upper[k - 1].bytes->size());
      if (apart.back()[0] != 1) {
        carry();
        encode_lossy_tile(t, lt, data, 0, in_payload, sc1, k);
        in = double(in_payload.back().size());
        tp.layout = PartLayout::tensor_wide, tp.codec = uint8_t(CodecId::zstd), tp.items = lt.upper[k - 1].bytes->size();
      }
      if (in <= sep) carry();
    }
  }
  return bytes;
}

// For each factor of kRefineFactors, refinement level k of t (its levels
// below already chosen in lt.upper): the estimated bits of its codes (order
// 0 in each context and the tables, scaled from the sampled tiles to the
// tensor) and the relative squared error it leaves.
struct RefinePoint {
  double bits = 0, err2 = 0;
};
std::vector<RefinePoint> refine_curve(const TensorRecord& t, const LossyTensor& lt, const uint8_t* data, unsigned k,
                                      ThreadPool& pool) {
  constexpr size_t F = std::size(kRefineFactors);
  const uint64_t tiles = t.tile_count(), stride = std::max<uint64_t>(1, tiles / kRefineSampleTiles);
  std::vector<uint64_t> sample;
  for (uint64_t i = 0; i < tiles && sample.size() < kRefineSampleTiles; i += stride) sample.push_back(i);
  struct Slot {
    LossyScratch sc;
    exact::Counts counts[F];
    double err[F] = {}, sig = 0;
    uint64_t n = 0;
  };
  std::vector<Slot> sl(sample.size());
  const uint32_t below = bin_divisor(lt, k - 1);
  const unsigned shift = context_shift(lt, k);
  pool.parallel_for(sample.size(), [&](size_t i) {
    Slot& x = sl[i];
    const uint64_t tile = sample[i], cols = t.cols();
    const uint64_t per_tile = (kRefineSampleElements + sample.size() * cols - 1) / (sample.size() * cols);
    const uint64_t rows = std::min(t.rows_in_tile(tile), std::max<uint64_t>(per_tile, 1)), n = rows * cols;
    // (the rows quantize and refine independently: the levels below on these rows only)
    rebuild_tile(t, lt, data, tile, k - 1, x.sc, rows);
    const uint8_t* e = lt.steps.e.data() + tile * t.tile_rows();
    std::vector<float> got(n);
    x.sc.above.resize(x.sc.recon.size());
    for (size_t f = 0; f < F; ++f) {
      x.sc.d.resize(n);
      const auto [M, odd] = factor_divisor(below, kRefineFactors[f]);
      exact::refine_codes(uint32_t(t.dtype), x.sc.x.data(), x.sc.recon.data(), lt.steps.base_exp, e, M, rows, cols,
                          x.sc.d.data(), x.sc.above.data(), odd);
      exact::count_codes(x.counts[f], uint32_t(t.dtype), shift, x.sc.recon.data(), lt.steps.base_exp, e, rows, cols,
                         x.sc.d.data());
      load_floats(t.dtype, x.sc.above.data(), n, got.data());
      const ErrorSums es = error_sums(x.sc.x.data(), got.data(), n);
      x.err[f] = es.err, x.sig = es.sig;
    }
    x.n = n;
  });
  std::vector<RefinePoint> out(F);
  double sig = 0, n = 0;
  for (const auto& x : sl) sig += x.sig, n += double(x.n);
  for (size_t f = 0; f < F; ++f) {
    exact::Counts c;
    double err = 0;
    for (auto& x : sl) c.add(x.counts[f]), err += x.err[f];
    exact::Tables tb;
    double bits = 0;
    exact::build_refine_tables(c, shift, factor_divisor(below, kRefineFactors[f]).first, tb, &bits);
    out[f].bits = bits * double(t.elements()) / std::max(n, 1.0);
    out[f].err2 = sig > 0 ? err / sig : 0;
  }
  return out;
}

// A sign-magnitude block as level k of t (BITSTACK.md; its levels below
// already chosen in lt.upper): the factors of rank r fitted on the whole
// tensor's residual magnitudes, its bits (a bit a sign, the factors) and the
// relative squared error it leaves.
struct BlockPoint {
  RefinePoint pt;
  std::shared_ptr<const bitstack::Factors> f;
};
BlockPoint block_curve(const TensorRecord& t, const LossyTensor& lt, const uint8_t* data, unsigned k, unsigned r,
                       ThreadPool& pool) {
  const uint64_t cols = t.cols(), n = t.elements();
  const size_t eb = dtype_bits(t.dtype) / 8, slots = size_t(pool.size()) * 2;
  std::vector<float> x(n), A(n);
  std::vector<uint8_t> below(n * eb);
  std::vector<LossyScratch> sc(slots);
  std::vector<std::vector<float>> got(slots);
  auto none = [](size_t, uint64_t) {};
  for_tiles(
      t, pool, slots,
      [&](size_t s, uint64_t tile) {
        LossyScratch& c = sc[s];
        rebuild_tile(t, lt, data, tile, k - 1, c);
        const uint64_t off = tile * t.tile_rows() * cols, m = c.x.size();
        got[s].resize(m);
        load_floats(t.dtype, c.recon.data(), m, got[s].data());
        std::copy(c.x.begin(), c.x.end(), x.begin() + off);
        std::memcpy(below.data() + off * eb, c.recon.data(), m * eb);
        for (uint64_t i = 0; i < m; ++i) A[off + i] = float(std::fabs(double(c.x[i]) - double(got[s][i])));
      },
      none);
  BlockPoint b;
  b.f = std::make_shared<const bitstack::Factors>(bitstack::fit(
      A.data(), t.rows(), cols, r, [&](size_t m, const std::function<void(size_t)>& fn) { pool.parallel_for(m, fn); }));
  std::vector<ErrorSums> es(slots);
  double err = 0, sig = 0;
  bool ok = true;
  for_tiles(
      t, pool, slots,
      [&](size_t s, uint64_t tile) {
        LossyScratch& c = sc[s];
        const uint64_t rows = t.rows_in_tile(tile), off = tile * t.tile_rows() * cols, m = rows * cols;
        c.signs.resize(m), c.above.resize(m * eb), got[s].resize(m);
        if (!bitstack::encode_tile(*b.f, uint32_t(t.dtype), x.data() + off, below.data() + off * eb,
                                   tile * t.tile_rows(), rows, cols, c.signs.data(), c.above.data()))
          ok = false;  // (only this slot's thread writes false)
        load_floats(t.dtype, c.above.data(), m, got[s].data());
        es[s] = error_sums(x.data() + off, got[s].data(), m);
      },
      [&](size_t s, uint64_t) { err += es[s].err, sig += es[s].sig; });
  b.pt.bits = double(n) + 8.0 * double(bitstack::factor_bytes(r, t.rows(), cols));
  b.pt.err2 = !ok ? INFINITY : sig > 0 ? err / sig : 0;
  return b;
}

// --refine: each lossy tensor's factor at each level (into its lt.upper's
// tables' M): level by level, the factors that minimise the model's
// sensitivity-weighted error for the bits --refine-factor everywhere would
// take (one Lagrange multiplier, bisected), so that a level refines the
// tensors where a bit removes the most error.
void choose_refinements(const std::vector<size_t>& tensors, const std::vector<double>& sensitivity, Manifest& m,
                        LossyPlan& plan, const std::vector<const uint8_t*>& data, unsigned R, const PackOptions& opt,
                        ThreadPool& pool) {
  constexpr size_t F = std::size(kRefineFactors);
  // --block auto: a block is one more choice (index F); bitstack: the only one
  const bool blocks = opt.block != "refine", only_blocks = opt.block == "bitstack";
  std::vector<std::shared_ptr<const bitstack::Factors>> fits(tensors.size());
  const size_t def = size_t(std::find(std::begin(kRefineFactors), std::end(kRefineFactors), opt.refine_factor) -
                            std::begin(kRefineFactors));
  for (size_t i : tensors) plan.tensors[i].upper.assign(R, LossyTensor::Upper{});
  for (unsigned k = 1; k <= R; ++k) {
    std::vector<std::vector<RefinePoint>> curve(tensors.size());
    double budget = 0;
    for (size_t j = 0; j < tensors.size(); ++j) {
      curve[j] = refine_curve(m.tensors[tensors[j]], plan.tensors[tensors[j]], data[tensors[j]], k, pool);
      budget += curve[j][def].bits;
      if (blocks) {
        BlockPoint b = block_curve(m.tensors[tensors[j]], plan.tensors[tensors[j]], data[tensors[j]], k,
                                   opt.block_rank, pool);
        curve[j].push_back(b.pt);
        fits[j] = std::move(b.f);
      }
    }
    std::vector<size_t> pick(tensors.size(), only_blocks ? F : def);
    auto choose = [&](double lambda) {
      double bits = 0;
      for (size_t j = 0; j < tensors.size(); ++j) {
        double best = INFINITY;
        for (size_t f = only_blocks ? F : 0; f < curve[j].size(); ++f) {
          const double c = sensitivity[j] * curve[j][f].err2 + lambda * curve[j][f].bits;
          if (c < best) best = c, pick[j] = f;
        }
        bits += curve[j][pick[j]].bits;
      }
      return bits;
    };
    // the smallest multiplier whose choice fits the budget (a larger one spends fewer bits)
    double lo = 1e-30, hi = 1e10;
    for (int it = 0; it < 100 && hi / lo > 1.0001; ++it) {
      const double mid = std::sqrt(lo * hi);
      (choose(mid) <= budget ? hi : lo) = mid;
    }
    choose(hi);  // pick: hi's choice, which fits (the bisection's bound, or every tensor at the default's bits)
    for (size_t j = 0; j < tensors.size(); ++j) {
      LossyTensor& lt = plan.tensors[tensors[j]];
      auto tb = std::make_shared<exact::Tables>();
      // a block places the levels above it as a factor of 2 would (BITSTACK.md §5)
      const auto [M, odd] = pick[j] == F ? std::pair{bin_divisor(lt, k - 1) * 2, false}
                                         : factor_divisor(bin_divisor(lt, k - 1), kRefineFactors[pick[j]]);
      tb->M = M;
      lt.upper[k - 1].tables = std::move(tb);
      lt.upper[k - 1].odd = odd;
      if (pick[j] == F) {
        lt.upper[k - 1].bytes = std::make_shared<const std::vector<uint8_t>>(fits[j]->bytes());
        lt.upper[k - 1].block = fits[j];
      }
    }
  }
}

// --refine: every tensor's levels above 0 in one model-wide order (chunk
// order 1, FORMAT.md §4.3), by the model error each removes per byte —
// sensitivity × (relative squared error before − after) / its estimated
// bytes — a tensor's levels in their own order (the best next level of any
// tensor first), so that every prefix of the file at a step is about the
// best model of its size. A step per level when they fit the 255 model
// levels a file may have; else runs of levels of about equal bytes.
void order_levels(Manifest& m, const std::vector<size_t>& tensors, const std::vector<double>& sensitivity,
                  const std::vector<std::vector<double>>& level_bytes) {
  for (auto& t : m.tensors) t.level_step.assign(1, 0);
  struct Next {
    double gain;
    size_t j;
    unsigned level;
    bool operator<(const Next& o) const { return gain < o.gain || (gain == o.gain && j > o.j); }
  };
  auto next_of = [&](size_t j, unsigned L) {
    const TensorRecord& t = m.tensors[tensors[j]];
    const double before = double(t.levels[L - 1].rel_rmse), after = double(t.levels[L].rel_rmse);
    const double gain = sensitivity[j] * (before * before - after * after) / std::max(level_bytes[j][L - 1], 1.0);
    return Next{gain, j, L};
  };
  std::priority_queue<Next> q;
  size_t blocks = 0;
  double total = 0;
  for (size_t j = 0; j < tensors.size(); ++j) {
    const TensorRecord& t = m.tensors[tensors[j]];
    if (t.levels.size() < 2 || level_bytes[j].size() + 1 != t.levels.size()) continue;
    q.push(next_of(j, 1));
    blocks += t.levels.size() - 1;
    for (double b : level_bytes[j]) total += b;
  }
  if (!blocks) return;
  const double per_step = blocks <= 254 ? 0.0 : total / 254.0;
  unsigned step = 1;
  double in_step = 0;
  std::vector<unsigned> last(tensors.size(), 0);  // the step of each tensor's latest level
  bool any = false;
  while (!q.empty()) {
    const Next n = q.top();
    q.pop();
    // a new step after each level (or once a run holds its share of bytes),
    // and always before a tensor's second level in one step
    if (any && (per_step == 0 || in_step >= per_step || last[n.j] == step)) ++step, in_step = 0;
    TensorRecord& t = m.tensors[tensors[n.j]];
    t.level_step.push_back(uint8_t(step));
    last[n.j] = step, in_step += level_bytes[n.j][n.level - 1], any = true;
    if (n.level + 1 < t.levels.size()) q.push(next_of(n.j, n.level + 1));
  }
  if (step > 254) {  // (runs cut short by a tensor's next level: more steps than a file has) level-major
    for (auto& t : m.tensors) t.level_step.clear();
    return;
  }
  m.chunk_order = 1;
}

// What the lossless codec makes of tensor t (an exact record): its chunks
// coded as pack codes them, in parallel.
uint64_t lossless_bytes(const TensorRecord& t, const uint8_t* data, ThreadPool& pool) {
  const EncodeOptions eo;
  const uint64_t cols = t.shape.size() >= 2 ? t.shape.back() : 0;
  const CodecPlan p = plan_codec(t.dtype, data, t.byte_size, t.chunk_size, eo, cols);
  std::vector<uint64_t> size(t.chunk_count, 0);
  pool.parallel_for(t.chunk_count, [&](size_t j) {
    std::vector<uint8_t> out;
    const uint8_t* src = data + uint64_t(j) * t.chunk_size;
    encode_chunk(p.codec, t.dtype, src, t.chunk_raw_size(uint32_t(j)), out,
                 chunk_options(eo, p, t.dtype, t.chunk_size, uint32_t(j), src, t.chunk_raw_size(uint32_t(j))));
    size[j] = out.size();
  });
  uint64_t n = 0;
  for (uint64_t s : size) n += s + uint64_t(kLossyChunkOverhead);
  return n;
}

// The files holding lossy tensors, as they will unpack: prefix, then each
// tensor's bytes (lossy ones reconstructed), hashed in order.
void hash_files(Manifest& m, const std::vector<const uint8_t*>& data, const LossyPlan& plan, ThreadPool& pool) {
  const size_t slots = size_t(pool.size()) * 2;
  std::vector<LossyScratch> sc(slots);
  std::vector<std::vector<uint8_t>> recon(slots);
  HashState hs;
  for (auto& f : m.files) {
    bool any = false;
    for (uint32_t i = f.first_tensor; i < f.first_tensor + f.tensor_count; ++i) any |= m.tensors[i].lossy();
    if (!any) continue;
    XXH3_64bits_reset(hs.s);
    XXH3_64bits_update(hs.s, f.prefix.data(), f.prefix.size());
    for (uint32_t i = f.first_tensor; i < f.first_tensor + f.tensor_count; ++i) {
      const TensorRecord& t = m.tensors[i];
      const LossyTensor& lt = plan.tensors[i];
      if (!t.lossy() || has_exact_top(lt)) {  // exact, or restored exactly at its top level
        XXH3_64bits_update(hs.s, data[i], t.byte_size);
        continue;
      }
      for_tiles(
          t, pool, slots,
          [&](size_t k, uint64_t tile) {  // at its top level: kept from planning where it fit
            const unsigned top = unsigned(lt.upper.size());
            if (!top) {  // (no target values needed)
              quantize_tile(t, lt, data[i], tile, sc[k]);
              reconstruct_tile(t, lt, tile, sc[k], sc[k].recon);
            } else if (!(lt.levels && lt.levels->take(data[i], tile, top, sc[k].recon))) {
              rebuild_tile(t, lt, data[i], tile, top, sc[k]);
            }
            recon[k].swap(sc[k].recon);
          },
          [&](size_t k, uint64_t) { XXH3_64bits_update(hs.s, recon[k].data(), recon[k].size()); });
    }
    f.xxh3 = XXH3_64bits_digest(hs.s);
  }
}

// What zstd makes of an outlier block in the manifest (values of full
// precision; the index compresses a little) before the real size is measured.
constexpr double kBlockRatioGuess = 0.9;

// The tensor of c with its outliers zeroed, every row: what codes it (a
// choice settled, the final encode).
std::shared_ptr<const std::vector<uint8_t>> zeroed_all(const Candidate& c, DType t, const uint8_t* data) {
  return std::make_shared<const std::vector<uint8_t>>(qrow::zero_outliers(t, data, c.rows * c.cols, c.zero_pos));
}

// The same, only its sampled rows (c.sample) written: what measures its curve
// reads (evaluate_plans, train_rd and sample_energy read only the rows they
// are given). The buffer has the tensor's size, so that rows stay where they
// are, but the rows not written are never read, and their pages, never
// touched, take no memory (new[] of bytes leaves them uninitialised).
std::unique_ptr<uint8_t[]> zeroed_rows(const Candidate& c, DType t, const uint8_t* data) {
  std::unique_ptr<uint8_t[]> z(new uint8_t[size_t(c.rows * c.cols) * (dtype_bits(t) / 8)]);
  qrow::zero_outliers_rows(t, data, c.cols, c.zero_pos, c.sample, z.get());
  return z;
}

// Sum of squares of the sampled rows.
double sample_energy(DType t, const uint8_t* data, uint64_t cols, const std::vector<uint64_t>& rows) {
  std::vector<float> w(cols);
  const size_t eb = dtype_bits(t) / 8;
  double e = 0;
  for (uint64_t r : rows) {
    load_floats(t, data + r * cols * eb, cols, w.data());
    for (float x : w) e += double(x) * x;
  }
  return e;
}

// The outliers c offers (OUTLIERS.md §4): the elements more than 6 row root
// mean squares from zero (importance-weighted), at most 1% of the tensor;
// `forced` (--scheme outliers): at least 0.1% of it, from those more than 2.
// The block must fit an inline part: fewer outliers until it does. Sets
// c.block, c.zero_pos, c.rms_z, c.outliers; leaves them empty when none.
void pick_outliers_for(Candidate& c, const TensorRecord& t, const uint8_t* data, const float* imp, uint32_t tile_rows,
                       bool forced) {
  const uint64_t n = c.rows * c.cols;
  const qrow::OutlierScores sc = qrow::score_outliers(t.dtype, data, c.rows, c.cols, c.rms, imp, forced ? 4.0 : qrow::kOutlierScore);
  uint64_t count = 0;
  for (const auto& e : sc.cand) count += e.first > qrow::kOutlierScore;
  if (forced) count = std::max<uint64_t>(count, (n + 999) / 1000);
  count = std::min<uint64_t>({count, uint64_t(double(n) * qrow::kMaxOutlierFraction), sc.cand.size()});
  while (count > 0) {
    const auto pos = qrow::pick_outliers(sc, count);
    auto block = qrow::outlier_block(t.dtype, data, c.rows, c.cols, tile_rows, pos);
    if (block.size() <= kMaxInlinePart) {
      c.block = std::move(block);
      c.outliers = count;
      c.rms_z = qrow::row_rms(t.dtype, qrow::zero_outliers(t.dtype, data, n, pos).data(), c.rows, c.cols, &c.rms_all_z);
      c.zero_pos = pos;  // (pick_outliers': ascending)
      return;
    }
    count = uint64_t(double(count) * 0.95 * double(kMaxInlinePart) / double(block.size()));
  }
}

// vq's candidates (spec/VQ.md §3), one curve point each, measured on the
// sampled rows:
// - one codebook per tensor, (d, K) where d divides the columns and the
//   tensor has at least 4 vectors an entry: scalar palettes (d = 1) and
//   vector codebooks; `always` (--scheme codebook) keeps the smallest even
//   where K exceeds that;
// - large codebooks (K >= 1024, a tensor-wide part, 2.11) only where the
//   codebook costs at most kVqBookShare bits per weight;
// - one codebook per group of 2^s rows (2.11), s the smallest that keeps the
//   books under kVqBooksShare bits per weight, where there are 2 groups or more.
constexpr double kVqBookShare = 0.25, kVqBooksShare = 1.0 / 16;
// training vectors an entry for the large codebooks (the sample's 2^16
// elements hold too few), and per book
constexpr uint64_t kVqTrainPerEntry = 8, kVqTrainPerBook = 1u << 13;

void add_vq_curve(Candidate& c, const TensorRecord& t, const uint8_t* data, const Calibration& calib, const float* H,
                  bool always, bool act_order) {
  struct DK {
    uint32_t d, k;
    bool books;
    uint32_t k2 = 0;  // additive: k = k1 x k2 codes from k1 + k2 entries
  };
  constexpr DK kDk[] = {{1, 4, false},   {1, 8, false},     {1, 16, false},   {2, 16, false},    {2, 64, false},
                        {2, 256, false}, {4, 16, false},    {4, 256, false},  {8, 256, false},   {4, 1024, false},
                        {8, 1024, false}, {8, 4096, false}, {1, 4, true},     {1, 8, true},      {1, 16, true},
                        {2, 16, true},   {8, 4096, false, 64}, {8, 65536, false, 256}, {4, 1024, false, 32}};
  std::vector<float> imp;
  if (auto v = calib.importance.find(t.name); v != calib.importance.end()) imp = v->second;
  else if (H)
    for (uint64_t j = 0; j < c.cols; ++j) imp.push_back(H[j * c.cols + j]);
  if (!imp.empty()) c.imp = std::make_shared<const std::vector<float>>(std::move(imp));
  const float* ip = c.imp ? c.imp->data() : nullptr;
  c.vq_steps = vq::row_steps(c.rms, c.rms_all);
  c.n_vq0 = c.curve.size();
  // GPTQ feedback for the codes: qrow's when its columns are in order, else
  // its own (act order would split a group's columns)
  if (H) c.vq_fb = act_order || !c.fb ? std::make_shared<const qrow::Feedback>(
                                            qrow::make_feedback(H, c.cols, qrow::kGptqDamp, false))
                                      : c.fb;
  const double elements = double(c.rows) * double(c.cols);
  for (const DK& x : kDk) {
    if (c.cols % x.d != 0) continue;
    const uint64_t vectors = c.rows * (c.cols / x.d);
    std::shared_ptr<const vq::Codebook> cb;
    if (x.books) {
      uint32_t shift = 1;
      while (shift < 31 && double(uint64_t(1) << shift) * double(c.cols) * kVqBooksShare < 32.0 * x.k * x.d) ++shift;
      if ((uint64_t(1) << shift) >= c.rows) continue;  // one group: the tensor's own codebook
      cb = std::make_shared<const vq::Codebook>(vq::train_books(t.dtype, data, c.rows, c.cols, c.vq_steps, x.d, x.k,
                                                                shift, kVqTrainPerBook, ip));
    } else if (x.k2) {  // additive (2.11): k1 + k2 entries of d values
      const uint32_t k1 = x.k / x.k2;
      if (32.0 * (k1 + x.k2) * x.d > kVqBookShare * elements || uint64_t(k1 + x.k2) * 16 > vectors) continue;
      const auto rows = vq::spaced_rows(0, c.rows, c.cols, x.d, std::max<uint64_t>(uint64_t(k1 + x.k2) * 64, 1u << 15));
      cb = std::make_shared<const vq::Codebook>(
          vq::train_additive(t.dtype, data, c.cols, c.vq_steps, rows, x.d, k1, x.k2, ip));
    } else if (x.k >= 1024) {
      if (32.0 * x.k * x.d > kVqBookShare * elements || uint64_t(x.k) * 4 > vectors) continue;
      const auto rows = vq::spaced_rows(0, c.rows, c.cols, x.d, uint64_t(x.k) * kVqTrainPerEntry);
      cb = std::make_shared<const vq::Codebook>(vq::train(t.dtype, data, c.cols, c.vq_steps, rows, x.d, x.k, ip));
    } else {
      if (uint64_t(x.k) * x.d * 4 > kMaxInlinePart) continue;
      if (uint64_t(x.k) * 4 > vectors && !(always && c.vq.empty() && x.k == 4)) continue;
      cb = std::make_shared<const vq::Codebook>(vq::train(t.dtype, data, c.cols, c.vq_steps, c.sample, x.d, x.k, ip));
    }
    const qrow::Point pt = vq::evaluate(t.dtype, data, c.rows, c.cols, c.vq_steps, *cb, c.sample, ip, H, c.vq_fb.get());
    c.vq.push_back(cb);
    c.grid.push_back(qrow::Plan{});
    c.curve.push_back({pt.bits, pt.relerr2});
  }
  if (c.vq.empty()) c.n_vq0 = SIZE_MAX;
}

}  // namespace

void level_cache_budget(uint64_t bytes) noexcept { level_cache_bytes = bytes; }

void encode_lossy_tile(const TensorRecord& t, const LossyTensor& lt, const uint8_t* data, uint64_t tile,
                       std::vector<std::vector<uint8_t>>& out, LossyScratch& sc, unsigned level) {
  if (level == 0) {
    quantize_tile(t, lt, data, tile, sc);
    encode_quantized_tile(t, lt, tile, out, sc);
    return;
  }
  // a level above 0 (REFINE.md, EXACT_TOP.md): the codes or residuals from
  // the level below, kept from planning or rebuilt from level 0
  out.clear();
  if (level > lt.upper.size()) return;
  const LossyTensor::Upper& u = lt.upper[level - 1];
  if (level >= 2 && lt.levels && lt.levels->take(data, tile, level - 1, sc.recon))
    tile_floats(t, lt, data, tile, sc.x);
  else
    rebuild_tile(t, lt, data, tile, level - 1, sc);
  const uint64_t rows = t.rows_in_tile(tile), cols = t.cols(), r0 = tile * t.tile_rows();
  const PartRecord& tp = t.parts[2 * level];
  exact::PayloadLayout lay;  // (2.8) what the payload leaves to the record, or carries
  lay.omit_steps = t.parts[0].layout == PartLayout::inline_items && t.parts[0].codec == 0;
  lay.tables = tp.items == 0 ? u.bytes.get() : nullptr;
  if (tile == 0 && tp.layout == PartLayout::tensor_wide) {  // the level's tensor-wide chunk comes first
    out.emplace_back();
    EncodeOptions eo;
    eo.zstd_level = 19;
    encode_chunk(static_cast<CodecId>(tp.codec), DType::U8, u.bytes->data(), u.bytes->size(), out.back(), eo);
  }
  out.emplace_back();
  const uint8_t* e = lt.steps.e.data() + r0;
  if (u.block) {  // a sign-magnitude block: the signs, a byte each
    sc.above.resize(sc.recon.size());
    refine_step(t, lt, tile, level, sc, sc.recon.data(), sc.above.data());
    encode_chunk(static_cast<CodecId>(t.parts[2 * level + 1].codec), DType::U8, sc.signs.data(), sc.signs.size(),
                 out.back(), EncodeOptions{});
  } else if (u.tables->M) {
    sc.above.resize(sc.recon.size());
    refine_step(t, lt, tile, level, sc, sc.recon.data(), sc.above.data());
    exact::encode_codes(*u.tables, uint32_t(t.dtype), sc.recon.data(), lt.steps.base_exp, e, rows, cols, sc.d.data(),
                        out.back(), lay);
  } else {
    exact::encode_tile(*u.tables, uint32_t(t.dtype), data + r0 * cols * (dtype_bits(t.dtype) / 8), sc.recon.data(),
                       lt.steps.base_exp, e, rows, cols, out.back(), lay);
  }
  if (out.back().size() > max_stored_size(t.part_bytes(2 * level + 1, tile)))
    fail(Errc::limit, "level " + std::to_string(level) + " of tile " + std::to_string(tile) +
                          ": the coded residuals exceed the stored-size bound (a tensor of very few columns)");
}

void encode_quantized_tile(const TensorRecord& t, const LossyTensor& lt, uint64_t tile,
                           std::vector<std::vector<uint8_t>>& out, const LossyScratch& sc) {
  const uint64_t rows = t.rows_in_tile(tile), r0 = tile * t.tile_rows();
  const PartRecord& cd = t.parts[1];
  out.clear();
  EncodeOptions eo;
  if (tile == 0 && lt.vq && t.parts[2].layout == PartLayout::tensor_wide) {  // the codebook's chunk comes first
    out.emplace_back();
    encode_chunk(static_cast<CodecId>(t.parts[2].codec), DType::F32,
                 reinterpret_cast<const uint8_t*>(lt.vq->c.data()), lt.vq->c.size() * 4, out.back(), eo);
  }
  if (t.parts[0].layout == PartLayout::per_row) {
    out.emplace_back();
    encode_chunk(CodecId::float_ans, DType::U8, lt.steps.e.data() + r0, rows, out.back(), eo);
  }
  if (cd.layout == PartLayout::inline_items) return;  // in the record (settle_tensor)
  out.emplace_back();
  encode_chunk(CodecId::float_ans, cd.item, sc.bytes.data(), sc.bytes.size(), out.back(), eo);
}

LossyPlan plan_lossy(Manifest& m, const std::vector<const uint8_t*>& data, const PackOptions& opt, ThreadPool& pool) {
  LossyPlan plan;
  plan.tensors.resize(m.tensors.size());
  if (opt.bits == 0) {  // lossless: the lossy options mean nothing, and a typo must not pass silently
    if (!opt.keep.empty() || !opt.sensitivity.empty() || !opt.calib.empty() || opt.scheme != "auto" || opt.exact ||
        opt.refine || opt.block != "refine")
      fail(Errc::usage, "--keep, --sensitivity, --calib, --scheme, --refine, --block and --exact apply to lossy "
                        "packing: give --bits too");
    return plan;
  }
  if (!(opt.bits >= kMinBits) || !(opt.bits <= kMaxBits)) {
    char b[64];
    std::snprintf(b, sizeof b, "%g", opt.bits);
    fail(Errc::usage, std::string("--bits must be 0 (lossless) or between 0.5 and 12 bits per weight (got ") + b + ")");
  }
  const bool plain_ok = opt.scheme == "auto" || opt.scheme == "quant" || opt.scheme == "qrow";
  // --exact and --refine build on plain qrow only (EXACT_TOP.md, REFINE.md)
  const bool levels = opt.exact || opt.refine > 0;
  const bool outliers_ok = !levels && (opt.scheme == "auto" || opt.scheme == "outliers");
  if (levels && !plain_ok) fail(Errc::usage, "--exact and --refine work with --scheme auto or quant (qrow) only");
  if (opt.block != "refine" && opt.block != "bitstack" && opt.block != "auto")
    fail(Errc::usage, "--block must be refine, bitstack or auto (got " + opt.block + ")");
  if (opt.block != "refine" && opt.refine == 0)
    fail(Errc::usage, "--block " + opt.block + " chooses the kind of --refine's levels: give --refine too");
  if (opt.refine_factor < 2 || opt.refine_factor > 6)
    fail(Errc::usage, "--refine-factor takes 2 to 6 (got " + std::to_string(opt.refine_factor) + ")");
  if (opt.refine_factor != kRefineDefault && opt.refine == 0)
    fail(Errc::usage, "--refine-factor sets the factor of --refine's levels: give --refine too");
  if (opt.block_rank < 1 || opt.block_rank > bitstack::kMaxRank)
    fail(Errc::usage, "--block-rank takes 1 to 16 (got " + std::to_string(opt.block_rank) + ")");
  if (opt.refine > kMaxRefine)
    fail(Errc::usage, "--refine takes 0 to " + std::to_string(kMaxRefine) + " levels (got " +
                          std::to_string(opt.refine) + ")");
  // Codebooks only when asked: the allocation's error favours codebooks the
  // model's output does not. Measured on the corpus model (KLD, auto with
  // every codebook candidate against auto without; only the tied embedding,
  // where a codebook halves the weight error, took one even when a codebook
  // had to beat qrow's error by 25%): calibrated 0.0475 / 0.259 / 1.44 /
  // 3.83 against 0.0446 / 0.213 / 1.58 / 3.52 at 4.25 / 3.25 / 2.25 / 1.6
  // bits, data-free 0.078 / 0.384 / 1.89 against 0.070 / 0.341 / 2.01 at
  // 4.25 / 3.25 / 2.25 (spec/VQ.md §3).
  const bool vq_ok = opt.scheme == "codebook";
  if (!plain_ok && !outliers_ok && !vq_ok)
    fail(Errc::usage, "unknown lossy scheme '" + opt.scheme + "' (known: auto, quant (qrow), outliers, codebook)");
  std::optional<std::regex> keep;
  if (!opt.keep.empty()) {
    try {
      keep.emplace(opt.keep, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      fail(Errc::usage, "--keep: not a valid regular expression: " + std::string(e.what()));
    }
  }
  // Candidates: weight matrices of float dtypes in safetensors files.
  std::vector<Candidate> cs;
  unsigned layers = 1;
  for (const auto& f : m.files) {
    if (f.kind != FileKind::safetensors) continue;
    for (uint32_t i = f.first_tensor; i < f.first_tensor + f.tensor_count; ++i) {
      const TensorRecord& t = m.tensors[i];
      const unsigned li = layer_index(t.name);
      if (li != -1u) layers = std::max(layers, li + 1);
      if (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32) continue;
      if (t.shape.size() < 2 || t.elements() < opt.min_elements) continue;
      bool empty_dim = false;
      for (uint64_t d : t.shape) empty_dim |= d == 0;
      if (empty_dim || (keep && std::regex_search(t.name, *keep))) continue;
      if (t.cols() > kMaxChunkSize / 2) continue;  // a row of U16 codes must fit one chunk (2^28 bytes)
      Candidate c;
      c.tensor = i;
      c.rows = t.rows(), c.cols = t.cols();
      cs.push_back(std::move(c));
    }
  }
  // Measured sensitivities replace the estimates for the tensors they name.
  std::vector<double> given(m.tensors.size(), -1);
  if (!opt.sensitivity.empty()) {
    for (const auto& [name, s] : read_sensitivities(opt.sensitivity)) {
      bool found = false;
      for (size_t i = 0; i < m.tensors.size(); ++i)
        if (m.tensors[i].name == name) given[i] = s, found = true;
      if (!found) {
        Error e(Errc::usage, "--sensitivity names a tensor the model does not have");
        e.at_file(opt.sensitivity).at_tensor(name);
        throw e;
      }
    }
  }
  // --calib: every name must be the model's, every size its tensor's; its
  // sensitivities count where --sensitivity gives none.
  Calibration calib;
  if (!opt.calib.empty()) {
    calib = read_calibration(opt.calib);
    // what: 0 the name only, 1 an importance of n values, 2 a hessian of n
    auto check = [&](const std::string& name, uint64_t n, int what) {
      const bool square = what == 2;
      for (const auto& t : m.tensors)
        if (t.name == name) {
          const uint64_t in = t.shape.size() >= 2 ? t.cols() : 0;
          if (what && n != (square ? in * in : in)) {
            Error e(Errc::usage, std::string("--calib: the ") + (square ? "hessian" : "importance") +
                                     " does not match the tensor's input size (its last dimension, " +
                                     std::to_string(in) + ")");
            e.at_file(opt.calib).at_tensor(name);
            throw e;
          }
          return;
        }
      Error e(Errc::usage, "--calib names a tensor the model does not have");
      e.at_file(opt.calib).at_tensor(name);
      throw e;
    };
    for (const auto& [name, h] : calib.hessian) check(name, h.size(), 2);
    for (const auto& [name, v] : calib.importance) check(name, v.size(), 1);
    for (const auto& [name, v] : calib.sensitivity) {
      check(name, 0, 0);
      for (size_t i = 0; i < m.tensors.size(); ++i)
        if (m.tensors[i].name == name && given[i] < 0) given[i] = v;
    }
  }
  // Rate-distortion curve of every candidate, in phases so that a model of
  // one huge tensor uses every thread as well as one of many small ones:
  // per tensor (rms, sample, outliers), then each GPTQ factorization on all
  // threads, then every (tensor, grid point) evaluation as its own job.
  auto hessian_of = [&](const Candidate& c) -> const float* {
    const auto h = calib.hessian.find(m.tensors[c.tensor].name);
    return h == calib.hessian.end() ? nullptr : h->second.data();
  };
  pool.parallel_for(cs.size(), [&](size_t k) {
    Candidate& c = cs[k];
    const TensorRecord& t = m.tensors[c.tensor];
    c.rms = qrow::row_rms(t.dtype, data[c.tensor], c.rows, c.cols, &c.rms_all);
    if (!std::isfinite(c.rms_all) && opt.exact) {  // the top layer restores the Inf and NaN values
      c.finite = finite_copy(t.dtype, data[c.tensor], c.rows * c.cols);
      c.rms = qrow::row_rms(t.dtype, c.finite->data(), c.rows, c.cols, &c.rms_all);
    }
    if (!std::isfinite(c.rms_all)) return;  // inf or NaN: stays exact
    c.sensitivity = given[c.tensor] >= 0 ? given[c.tensor] : role_sensitivity(tensor_role(t.name), layers);
    if (auto v = calib.importance.find(t.name); v != calib.importance.end() && !hessian_of(c))
      c.fb = std::make_shared<const qrow::Feedback>(qrow::make_feedback_diag(v->second.data(), c.cols, qrow::kGptqDamp));
    const uint64_t want = std::max<uint64_t>(1, kSampleElements / c.cols);
    if (want >= c.rows) {
      for (uint64_t r = 0; r < c.rows; ++r) c.sample.push_back(r);
    } else {
      for (uint64_t j = 0; j < want; ++j) c.sample.push_back(j * c.rows / want);
    }
  });
  const qrow::ParallelFor par = [&](size_t n, const std::function<void(size_t)>& fn) { pool.parallel_for(n, fn); };
  for (Candidate& c : cs)  // one at a time, the factorization's trailing updates on every thread
    if (const float* H = hessian_of(c); H && std::isfinite(c.rms_all))
      c.fb = std::make_shared<const qrow::Feedback>(qrow::make_feedback(H, c.cols, qrow::kGptqDamp, opt.act_order, par));
  if (outliers_ok)
    pool.parallel_for(cs.size(), [&](size_t k) {
      Candidate& c = cs[k];
      const TensorRecord& t = m.tensors[c.tensor];
      if (!std::isfinite(c.rms_all)) return;
      std::vector<float> imp;  // the input channels' importance: calibration's, or diag H
      if (auto v = calib.importance.find(t.name); v != calib.importance.end()) imp = v->second;
      else if (const float* H = hessian_of(c))
        for (uint64_t j = 0; j < c.cols; ++j) imp.push_back(H[j * c.cols + j]);
      pick_outliers_for(c, t, data[c.tensor], imp.empty() ? nullptr : imp.data(), tile_rows_for(c.rows, c.cols),
                        !plain_ok);
    });
  // One curve point per grid step of the data (qrow) and of the data with
  // its outliers zeroed (qrow-outliers: the error against the original's
  // energy, the outliers' own being 0, plus the block's bits); points in
  // that order per tensor, each variant's by step. A job evaluates up to
  // kEvalBatch steps of one variant, reading the tensor's H once for all of
  // them. First the coarse grid (kCoarse), later the steps near the choice.
  constexpr int kEvalBatch = 16;
  struct Batch {
    size_t cand;
    bool zeroed;
    std::vector<int> g;  // the steps
    size_t slot = 0;     // the first point's slot in `points`
  };
  struct Measured {
    size_t cand;
    bool zeroed;
    int g;
    qrow::Plan plan;
    RatePoint pt;
  };
  if (outliers_ok)
    pool.parallel_for(cs.size(), [&](size_t k) {
      Candidate& c = cs[k];
      if (!std::isfinite(c.rms_all) || c.block.empty()) return;
      const DType t = m.tensors[c.tensor].dtype;
      c.e_scale = sample_energy(t, zeroed_rows(c, t, data[c.tensor]).get(), c.cols, c.sample) /
                  std::max(sample_energy(t, data[c.tensor], c.cols, c.sample), 1e-300);
    });
  auto plan_at = [&](const Candidate& c, int g) {  // grid step g of c
    qrow::Plan p = lossy_defaults();
    p.c = std::exp2(double(g) / kGridDiv);
    // --refine: level 0 rounds to nearest, so that the bins of each level
    // subdivide those below (REFINE.md §5): on the corpus model at 2.25 bits,
    // level 0's relative RMSE 4.6% above rate-distortion rounding's (0.299
    // against 0.286), each level above it then 0.27 to 0.49 bits a weight
    // cheaper for the same error
    p.mu = opt.refine ? 0.0 : rd_mu(opt.bits, c.fb && !c.fb->u.empty());
    return p;
  };
  // Measures the steps wanted[k][z] of each candidate k's variant z (plain,
  // zeroed) and merges them into its curve: plain points by step, zeroed
  // points by step, then its codebooks' (vq) as they were.
  auto measure_steps = [&](const std::vector<std::array<std::vector<int>, 2>>& wanted) {
    std::vector<Batch> batches;
    size_t slots = 0;
    for (size_t k = 0; k < cs.size(); ++k)
      for (int z = 0; z < 2; ++z)
        for (size_t a = 0; a < wanted[k][z].size(); a += kEvalBatch) {
          Batch b{k, z == 1, {}, slots};
          for (size_t j = a; j < std::min(wanted[k][z].size(), a + kEvalBatch); ++j) b.g.push_back(wanted[k][z][j]);
          slots += b.g.size();
          batches.push_back(std::move(b));
        }
    std::vector<Measured> points(slots);
    pool.parallel_for(batches.size(), [&](size_t i) {
      const Batch& b = batches[i];
      const Candidate& c = cs[b.cand];
      const TensorRecord& t = m.tensors[c.tensor];
      std::vector<qrow::Plan> plans;
      for (int g : b.g) plans.push_back(plan_at(c, g));
      const std::vector<qrow::Point> r =
          b.zeroed ? qrow::evaluate_plans(t.dtype, zeroed_rows(c, t.dtype, data[c.tensor]).get(), c.rows, c.cols,
                                          c.rms_z, c.rms_all_z, plans, c.sample, c.fb.get(), hessian_of(c))
                   : qrow::evaluate_plans(t.dtype, c.plain(data[c.tensor]), c.rows, c.cols, c.rms, c.rms_all, plans,
                                          c.sample, c.fb.get(), hessian_of(c));
      for (size_t j = 0; j < b.g.size(); ++j)
        points[b.slot + j] = {b.cand, b.zeroed, b.g[j], plans[j],
                              b.zeroed ? RatePoint{r[j].bits + 8.0 * double(c.block.size()) * kBlockRatioGuess,
                                                   r[j].relerr2 * c.e_scale}
                                       : RatePoint{r[j].bits, r[j].relerr2}};
    });
    std::vector<std::vector<Measured>> per(cs.size());
    for (Measured& p : points) per[p.cand].push_back(std::move(p));
    for (size_t k = 0; k < cs.size(); ++k) {
      if (per[k].empty()) continue;
      Candidate& c = cs[k];
      const size_t nq = std::min(c.n_vq0, c.curve.size());  // qrow's points: [0, nq)
      for (size_t i = 0; i < nq; ++i) per[k].push_back({k, i >= c.n_plain, c.steps_g[i], c.grid[i], c.curve[i]});
      std::sort(per[k].begin(), per[k].end(), [](const Measured& a, const Measured& b) {
        return a.zeroed != b.zeroed ? !a.zeroed : a.g < b.g;
      });
      std::vector<qrow::Plan> grid;
      std::vector<RatePoint> curve;
      std::vector<int> gs;
      size_t n_plain = 0;
      for (const Measured& p : per[k]) grid.push_back(p.plan), curve.push_back(p.pt), gs.push_back(p.g), n_plain += !p.zeroed;
      const size_t nvq = c.curve.size() - nq;
      grid.insert(grid.end(), c.grid.begin() + ptrdiff_t(nq), c.grid.end());
      curve.insert(curve.end(), c.curve.begin() + ptrdiff_t(nq), c.curve.end());
      c.grid = std::move(grid), c.curve = std::move(curve), c.steps_g = std::move(gs);
      c.n_plain = n_plain;
      if (c.n_vq0 != SIZE_MAX) c.n_vq0 = c.curve.size() - nvq;
    }
  };
  {
    std::vector<std::array<std::vector<int>, 2>> coarse(cs.size());
    for (size_t k = 0; k < cs.size(); ++k) {
      if (!std::isfinite(cs[k].rms_all)) continue;
      const bool plain = plain_ok, zeroed = outliers_ok && !cs[k].block.empty();
      for (int g = kGridLo; g <= kGridHi; g += kCoarse) {
        if (plain) coarse[k][0].push_back(g);
        if (zeroed) coarse[k][1].push_back(g);
      }
    }
    measure_steps(coarse);
  }
  pool.parallel_for(cs.size(), [&](size_t k) {
    Candidate& c = cs[k];
    const TensorRecord& t = m.tensors[c.tensor];
    if (!std::isfinite(c.rms_all)) return;
    if (vq_ok)
      add_vq_curve(c, t, data[c.tensor], calib, hessian_of(c), opt.scheme == "codebook" && c.curve.empty(),
                   opt.act_order);
    if (c.curve.empty() && opt.scheme == "codebook") {  // no d divides the columns: plain qrow
      for (int g = kGridLo; g <= kGridHi; ++g) c.grid.push_back(plan_at(c, g)), c.steps_g.push_back(g);
      for (const qrow::Point& r : qrow::evaluate_plans(t.dtype, c.plain(data[c.tensor]), c.rows, c.cols, c.rms, c.rms_all,
                                                       c.grid, c.sample, c.fb.get(), hessian_of(c)))
        c.curve.push_back({r.bits, r.relerr2});
      c.n_plain = c.curve.size();
    }
    if (c.curve.empty()) return;
    // what the tensor costs whatever its steps: record and chunk overheads
    TensorRecord probe = t;
    make_record(probe, qrow::choose_steps(c.rms, c.rms_all, c.grid[0]), tile_rows_for(c.rows, c.cols));
    const uint64_t tiles = probe.tile_count();
    const unsigned per_tile = (probe.parts[0].layout == PartLayout::per_row ? 1 : 0) + (codes_inline(probe) ? 0 : 1);
    c.chunks = tiles * per_tile;
    c.fixed_bits = 8.0 * (double(tensor_record_size(probe) - probe.name.size()) * kManifestRatioGuess +
                          double(tiles * per_tile) * kLossyChunkOverhead);
  });
  cs.erase(std::remove_if(cs.begin(), cs.end(), [](const Candidate& c) { return c.curve.empty(); }), cs.end());
  if (cs.empty()) return plan;

  double weights = 0;
  for (const auto& c : cs) weights += double(c.rows * c.cols);
  // Alignment padding is estimated per chunk (32 bytes on average, 0 to 63):
  // keep three standard deviations of the total in hand so the written
  // file stays within the budget.
  double chunks_est = 0;
  for (const auto& c : cs) chunks_est += double(c.chunks);
  const double budget = opt.bits * weights - 8.0 * 3 * 18.5 * std::sqrt(chunks_est);
  double target = budget;
  std::vector<AllocTensor> at(cs.size());
  for (size_t k = 0; k < cs.size(); ++k) at[k] = {cs[k].sensitivity, cs[k].fixed_bits, cs[k].curve};
  {  // the fine steps around each tensor's choice on the coarse grid, in both variants
    const Allocation a = allocate_bits(at, target);
    std::vector<std::array<std::vector<int>, 2>> fine(cs.size());
    for (size_t k = 0; k < cs.size(); ++k) {
      const Candidate& c = cs[k];
      const size_t nq = std::min(c.n_vq0, c.curve.size());
      if (a.choice.empty() || nq == 0) continue;
      // the bits the choice spends; in each variant, the step nearest them
      const double bits = c.curve[a.choice[k]].bits;
      for (int z = 0; z < 2; ++z) {
        const size_t lo = z ? c.n_plain : 0, hi = z ? nq : c.n_plain;
        if (lo >= hi) continue;
        size_t at_i = lo;
        if (a.choice[k] >= lo && a.choice[k] < hi) {
          at_i = a.choice[k];
        } else {
          for (size_t i = lo; i < hi; ++i)
            if (std::fabs(c.curve[i].bits - bits) < std::fabs(c.curve[at_i].bits - bits)) at_i = i;
        }
        const int g0 = c.steps_g[at_i];
        for (int g = std::max(kGridLo, g0 - kFine); g <= std::min(kGridHi, g0 + kFine); ++g)
          if (!std::binary_search(c.steps_g.begin() + ptrdiff_t(lo), c.steps_g.begin() + ptrdiff_t(hi), g))
            fine[k][size_t(z)].push_back(g);
      }
    }
    measure_steps(fine);
    for (size_t k = 0; k < cs.size(); ++k) at[k].curve = cs[k].curve;
  }

  // Allocate, settle every record on the real data (codes, hashes, sizes),
  // and correct the target by the ratio of real to estimated size: the
  // largest allocation whose real size fits the budget is kept.
  // Each tensor settled at a grid point is kept: later rounds change few
  // tensors' choices.
  struct Settled {
    TensorRecord rec;
    LossyTensor lt;
    double chunk_bits = 0, record_bits = 0;
  };
  std::vector<std::map<size_t, Settled>> cache(cs.size());
  std::vector<TensorRecord> exact(cs.size());
  for (size_t k = 0; k < cs.size(); ++k) exact[k] = m.tensors[cs[k].tensor];
  auto settle = [&](size_t k, size_t choice) -> const Settled& {
    auto it = cache[k].find(choice);
    if (it != cache[k].end()) return it->second;
    const Candidate& c = cs[k];
    Settled st;
    st.rec = exact[k];
    if (choice >= c.n_vq0) {  // a codebook
      st.lt.vq = c.vq[choice - c.n_vq0];
      st.lt.imp = c.imp;
      st.lt.vq_fb = c.vq_fb;
      st.lt.steps = c.vq_steps;
      make_vq_record(st.rec, st.lt.steps, tile_rows_for(c.rows, c.cols), *st.lt.vq);
      st.chunk_bits = 8.0 * settle_tensor(st.rec, st.lt, data[c.tensor], pool);
      st.record_bits = 8.0 * double(tensor_record_size(st.rec) - st.rec.name.size());
      return cache[k].emplace(choice, std::move(st)).first->second;
    }
    const bool with_outliers = choice >= c.n_plain;
    st.lt.plan = c.grid[choice];
    st.lt.steps = with_outliers ? qrow::choose_steps(c.rms_z, c.rms_all_z, st.lt.plan)
                                : qrow::choose_steps(c.rms, c.rms_all, st.lt.plan);
    if (with_outliers) st.lt.zeroed = zeroed_all(c, st.rec.dtype, data[c.tensor]), st.lt.block = c.block;
    else st.lt.zeroed = c.finite;  // (null but for --exact's tensors with Inf or NaN)
    st.lt.rd = qrow::train_rd(st.rec.dtype, st.lt.source(data[c.tensor]), c.cols, st.lt.steps, st.lt.plan, c.sample, 3);
    st.lt.fb = c.fb;
    make_record(st.rec, st.lt.steps, tile_rows_for(c.rows, c.cols), st.lt.block);
    st.chunk_bits = 8.0 * settle_tensor(st.rec, st.lt, data[c.tensor], pool);
    if (with_outliers) st.lt.zeroed.reset();  // made again for the choice the plan keeps
    st.record_bits = 8.0 * double(tensor_record_size(st.rec) - st.rec.name.size());
    return cache[k].emplace(choice, std::move(st)).first->second;
  };
  // The real size of an allocation: its tensors' chunks, and their records'
  // share of the manifest as the writer will compress it.
  auto measure = [&](const std::vector<size_t>& choice) {
    double chunks = 0, records = 0, coded = 0;
    for (size_t k = 0; k < cs.size(); ++k) {
      const Settled& st = settle(k, choice[k]);
      const double c = 8.0 * double(coded_inline_bytes(st.rec));
      chunks += st.chunk_bits, records += st.record_bits - c, coded += c;
      m.tensors[cs[k].tensor] = st.rec;
    }
    m.derive_chunks();
    const auto raw = encode_manifest(m);
    const ManifestShares sh =
        manifest_shares(m, raw.size(), zframe_compress(raw, meta_zstd_level(raw.size(), m.original_bytes())).size());
    return chunks + coded * sh.payload_scale + records * sh.ratio;
  };
  std::vector<size_t> best;
  double best_bits = -1;
  double fit_target = 0, over_target = 0;  // the largest target that fitted, the smallest that did not
  for (int round = 0; round < 12; ++round) {
    const Allocation a = allocate_bits(at, target);
    if (!a.fits && round == 0) {
      double least = 0;
      for (const auto& t : at) {
        double mn = INFINITY;
        for (const auto& p : t.curve) mn = std::min(mn, p.bits);
        least += t.fixed_bits + mn;
      }
      fail(Errc::usage, "--bits " + std::to_string(opt.bits) + " is below the least these tensors can take (" +
                            std::to_string(least / weights) + " bits per weight)");
    }
    const double actual = measure(a.choice);
    if (actual <= budget && actual > best_bits) best_bits = actual, best = a.choice;
    if (actual <= budget && actual > budget * 0.998) break;  // close enough
    if (actual <= budget) fit_target = std::max(fit_target, target);
    else over_target = over_target > 0 ? std::min(over_target, std::min(target, a.bits)) : std::min(target, a.bits);
    // the estimates' ratio to the real size (applied to what this allocation
    // was estimated at, so the next one differs), then bisection once bracketed
    double next = a.bits * budget / actual;
    if (fit_target > 0 && over_target > 0) next = 0.5 * (fit_target + over_target);
    if (over_target > 0 && next >= over_target) next = 0.5 * (std::max(fit_target, target * 0.9) + over_target);
    if (fit_target > 0 && over_target > 0 && over_target / fit_target < 1.0005) break;
    target = next;
  }
  if (best_bits < 0) fail(Errc::usage, "--bits " + std::to_string(opt.bits) + " cannot be met by these tensors");
  for (size_t k = 0; k < cs.size(); ++k) {
    const Settled& st = settle(k, best[k]);
    m.tensors[cs[k].tensor] = st.rec;
    plan.tensors[cs[k].tensor] = st.lt;
    if (!st.lt.block.empty())  // qrow-outliers
      plan.tensors[cs[k].tensor].zeroed = zeroed_all(cs[k], st.rec.dtype, data[cs[k].tensor]);
  }
  plan.lossy_tensors = cs.size();
  plan.lossy_weights = uint64_t(weights);
  // --refine: the lossy tensors and their sensitivities, for each level's
  // factor and then the model-wide order of the levels
  std::vector<size_t> ts(cs.size());
  std::vector<double> sens(cs.size());
  for (size_t k = 0; k < cs.size(); ++k) ts[k] = cs[k].tensor, sens[k] = cs[k].sensitivity;
  if (opt.refine) choose_refinements(ts, sens, m, plan, data, opt.refine, opt, pool);
  std::vector<std::vector<double>> level_bytes(cs.size());
  const auto kept = levels ? std::make_shared<LevelCache>(level_cache_bytes.load()) : nullptr;
  if (levels)
    for (size_t k = 0; k < cs.size(); ++k) {
      plan.tensors[cs[k].tensor].levels = kept;
      const Settled& st = settle(k, best[k]);
      const double base = (st.chunk_bits + st.record_bits) / 8;
      level_bytes[k] = add_upper_levels(m.tensors[cs[k].tensor], plan.tensors[cs[k].tensor], data[cs[k].tensor],
                                        opt.refine, opt.exact, pool);
      double top = 0;
      for (double b : level_bytes[k]) top += b;
      // With --exact, a tensor the lossless codec stores in less than its
      // levels, and in not much more than its level 0 (a sinusoidal position
      // table: 5.8 bits a weight lossless, 4.6 + 4.9 in two levels), stays
      // exact: smaller whole, and level 0 a little larger but exact.
      if (!opt.exact) continue;
      const double lossless = double(lossless_bytes(exact[k], data[cs[k].tensor], pool));
      if (lossless <= base + top && lossless <= 1.5 * base) {
        m.tensors[cs[k].tensor] = exact[k];
        kept->drop(data[cs[k].tensor]);
        plan.tensors[cs[k].tensor] = LossyTensor{};
        --plan.lossy_tensors;
        plan.lossy_weights -= m.tensors[cs[k].tensor].elements();
        level_bytes[k].clear();
      }
    }
  if (opt.refine) order_levels(m, ts, sens, level_bytes);
  m.derive_chunks();
  hash_files(m, data, plan, pool);
  return plan;
}

}  // namespace wc
