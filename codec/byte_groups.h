// Byte groups (float-ans mode 5, codec 7 float-ans-groups; spec/FLOAT_ANS.md
// §2.3): a chunk's elements in blocks of kBlockElems, and each block's byte
// planes (byte 0 of every element, then byte 1, ...) as one zstd frame
// each. For chunks whose redundancy lies between elements rather than
// within one: near-duplicate rows (the untrained rows of a token embedding
// differ in a few low mantissa bits), values from a small set. zstd finds
// the repeats in the high bytes' plane that the low bytes' noise breaks up
// in element order, and each plane gets its own literal statistics (blosc's
// shuffle does the first; float-ans codes each element alone and can do
// neither). The framing (zstd calls) is in codec.cpp; this is the layout.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/dtype.h"

namespace wc::groups {

inline constexpr uint8_t kMode = 5;
// Elements per block. A block's planes decode into a scratch of
// kBlockElems x 4 bytes, so the decoder needs no buffer of the chunk's size;
// 16384 codes the corpus's token embedding 0.6% smaller than whole-chunk
// planes and 4% smaller than blocks of 4096 (zstd -3).
inline constexpr size_t kBlockElems = 16384;
inline constexpr size_t kScratchBytes = kBlockElems * 4;

// Whether mode 5 is defined for t: the 16- and 32-bit floats (an 8-bit
// element has one plane: mode 2 is the same bytes).
bool supports(DType t) noexcept;

// Plane k of m elements of eb bytes at src: out[i] = src[i * eb + k].
void plane(const uint8_t* src, size_t m, unsigned eb, unsigned k, uint8_t* out) noexcept;
// The inverse for a whole block: planes (eb planes of m bytes, plane k at
// planes + k * m) to dst (m elements of eb bytes).
void interleave(const uint8_t* planes, size_t m, unsigned eb, uint8_t* dst) noexcept;

}  // namespace wc::groups
