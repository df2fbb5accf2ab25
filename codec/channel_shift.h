// Per-channel shift (float-ans mode 3, codec 4; spec/FLOAT_ANS.md §2.1): the
// field of exponent and top g mantissa bits of every element is offset by a
// per-column or per-row amount before float-ans codes the chunk, so channels
// of different scale share one table. The list travels in the chunk, so a
// chunk still decodes alone.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec/ans_layout.h"
#include "format/dtype.h"

namespace wc::shift {

inline constexpr uint8_t kMode = 3;
inline constexpr size_t kHeaderBytes = 16;
inline constexpr uint32_t kMaxEntries = 1u << 16;  // list entries a decoder holds (int16 each)
inline constexpr uint32_t kMaxEgk = 3;

// The per-element arithmetic, shared by every decoder (host and device):
// field F = (v >> s) & fmask, F += d modulo fmask + 1, the rest of v kept.
// The same as adding d << s to v and keeping only the field's bits of the
// sum (no carry reaches the field from below; one leaving it is dropped),
// which a vector unit does in the element's own width: ds = d << s (mod
// 2^W), fm = fmask << s.
WC_HD uint32_t apply_one(uint32_t v, uint32_t ds, uint32_t fm) { return (v & ~fm) | ((v + ds) & fm); }

// One chunk's shift: element e takes d[((o + e) / L) % P].
struct Chunk {
  uint32_t g = 2;  // mantissa bits in the field
  uint32_t L = 1, P = 0, o = 0;
  const int16_t* d = nullptr;
};

// Parses a mode-3 payload's header and list for `n` elements of `t` into
// `out` (its list in `d`, room for kMaxEntries) and the offset of the inner
// mode-1 payload. False when any rule of §2.1 before the inner payload is
// broken (the inner payload is the float-ans decoder's to check).
bool parse(DType t, const uint8_t* src, size_t src_n, uint64_t n, int16_t* d, Chunk* out, size_t* inner) noexcept;

// Decoding: adds the shift to `n` decoded elements in place.
void apply(DType t, const Chunk& c, uint8_t* data, uint64_t n) noexcept;
// The same, where the caller owns c's list (`list`, as parse filled it): the
// list is rewritten into the form the loops add directly (faster; the list
// is spent afterwards).
void apply_owned(DType t, Chunk& c, int16_t* list, uint8_t* data, uint64_t n) noexcept;

// ---- encoder ----------------------------------------------------------------

// A tensor's shift, per column (rows = false: d has cols entries) or per row
// (rows = true: one entry per row), in units of the g-bit field.
struct Plan {
  bool rows = false;
  uint64_t cols = 0;
  uint32_t g = 2;
  std::vector<int16_t> d;
  double gain = 0;  // the bits per weight the pricing expects it to save
};

// Measures a [rows, cols] float tensor (cols: its last dimension) and returns
// the shift expected to save the most bits (column or row, each channel's
// mean field against the tensor's), or an empty `d` when neither pays.
Plan plan(DType t, const uint8_t* data, uint64_t n, uint64_t cols);

// The chunk of `n` elements starting at element `first` of the tensor under
// `p`: false when the chunk cannot carry it (a list longer than kMaxEntries).
bool chunk_of(const Plan& p, uint64_t first, uint64_t n, std::vector<int16_t>& list, Chunk* out);

// Encoding: `out` = src with every field moved back by its shift.
void unapply(DType t, const Chunk& c, const uint8_t* src, uint8_t* out, uint64_t n);

// Appends the 16-byte header and the list bit-stream (egk chosen for the
// fewest bits).
void write_header(const Chunk& c, std::vector<uint8_t>& out);
// The bytes write_header appends for c, without writing them.
uint64_t header_size(const Chunk& c);

}  // namespace wc::shift
