// pack --bits: which tensors become lossy, how many bits each gets, and
// their encoded parts. The container's manifest precedes its chunks, so
// every lossy record (parameters, part item types, reconstruction hash and
// error figures) is settled by a pass over the data before anything is
// written; the writing pass quantizes each tile again (deterministically)
// and encodes its parts.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "format/container.h"
#include "lib/api.h"
#include "lib/level_cache.h"
#include "lib/thread_pool.h"
#include "quant/bitstack.h"
#include "quant/exact_top.h"
#include "quant/qrow.h"
#include "quant/vq.h"

namespace wc {

// How one lossy tensor is quantized: its plan and its rows' steps.
struct LossyTensor {
  qrow::Plan plan;
  qrow::Steps steps;
  qrow::RdTable rd;
  // --calib: GPTQ feedback (hessian) or importance-weighted rounding; null
  // without calibration for this tensor
  std::shared_ptr<const qrow::Feedback> fb;
  // qrow-outliers (spec/OUTLIERS.md): the tensor with its outliers set to
  // zero, which the codes quantize, and the outlier block; null / empty for
  // plain qrow
  std::shared_ptr<const std::vector<uint8_t>> zeroed;
  std::vector<uint8_t> block;
  // vq (spec/VQ.md): the codebook (steps: each row's RMS); null for qrow;
  // imp: the input channels' importances its distances weigh (may be empty)
  std::shared_ptr<const vq::Codebook> vq;
  // vq with --calib's hessian: GPTQ feedback in the identity order (a
  // group's d columns stay together; vq::encode_rows_as_written); null:
  // nearest entries
  std::shared_ptr<const qrow::Feedback> vq_fb;
  std::shared_ptr<const std::vector<float>> imp;
  // Levels above 0, in order: --refine's refinement levels (REFINE.md),
  // then --exact's top layer (EXACT_TOP.md; its tables' M is 0). Each has
  // its tables and their bytes (a tensor-wide chunk before tile 0's codes).
  // A sign-magnitude block (BITSTACK.md, --block) has its factors, their
  // bytes as `bytes`, and tables whose M only places the levels above it
  // (twice the divisor below: REFINE.md's steps and context shifts).
  struct Upper {
    std::shared_ptr<const exact::Tables> tables;
    std::shared_ptr<const std::vector<uint8_t>> bytes;
    std::shared_ptr<const bitstack::Factors> block;
    // (writer) an even factor's level: odd codes, its bins two steps wide
    // (REFINE.md §5), so that they nest in the bins below
    bool odd = false;
  };
  std::vector<Upper> upper;
  // (writer) the tiles' levels above 0 kept from planning for the chunks
  // that build on them (keyed by the tensor's source bytes); shared by
  // every tensor of a pack, null without levels
  std::shared_ptr<LevelCache> levels;
  const uint8_t* source(const uint8_t* data) const { return zeroed ? zeroed->data() : data; }
};

struct LossyPlan {
  std::vector<LossyTensor> tensors;  // by tensor index; used for lossy ones
  uint64_t lossy_tensors = 0, lossy_weights = 0;
};

// Turns the chosen tensors of `m` into qrow records and derives its chunks.
// data[i]: tensor i's original bytes. The records carry their
// reconstruction hashes and error figures, and file records' hashes become
// those of the files as they will unpack. Throws Errc::usage for bad options
// (a budget out of range or below what the tensors can take, a sensitivity
// file naming no tensor of the model, an unknown scheme).
LossyPlan plan_lossy(Manifest& m, const std::vector<const uint8_t*>& data, const PackOptions& opt, ThreadPool& pool);

// The stored chunks of tile `tile` of lossy tensor t at level `level`, in
// container order (its chunked parts of that level: the container is
// level-major). `scratch` is per-slot working memory.
struct LossyScratch {
  std::vector<uint16_t> codes, d;
  std::vector<uint8_t> bytes, recon, above, signs;
  std::vector<float> x;
};
void encode_lossy_tile(const TensorRecord& t, const LossyTensor& lt, const uint8_t* data, uint64_t tile,
                       std::vector<std::vector<uint8_t>>& out, LossyScratch& scratch, unsigned level = 0);
// The two halves of encode_lossy_tile: the tile's codes as stored (into
// scratch.bytes), and its chunks from them. `rows`: the tile's first rows
// only (0: all; plain qrow, whose rows quantize independently).
void quantize_tile(const TensorRecord& t, const LossyTensor& lt, const uint8_t* data, uint64_t tile,
                   LossyScratch& scratch, uint64_t rows = 0);
// Test hook: the bytes of tiles' levels a pack keeps from planning for the
// chunks built on them (LevelCache; default 1 GiB, beyond it they are
// rebuilt from level 0). The file is the same whatever the budget.
void level_cache_budget(uint64_t bytes) noexcept;
void encode_quantized_tile(const TensorRecord& t, const LossyTensor& lt, uint64_t tile,
                           std::vector<std::vector<uint8_t>>& out, const LossyScratch& scratch);

}  // namespace wc
