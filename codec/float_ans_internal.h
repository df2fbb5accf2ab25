// Internal interface between the float_ans front end and its fast CPU decoder.
#pragma once
#include <cstddef>
#include <cstdint>

#include "codec/ans_layout.h"

namespace wc::fans::detail {

// Decodes a parsed rANS chunk (tables built) into dst. Bounds-safe for any
// input that passed parse_chunk/check_counts. Returns false on a stream error.
bool decode_fast(const uint8_t* src, size_t src_n, uint8_t* dst, const layout::ChunkLayout& L,
                 const uint32_t* slot, const uint16_t* vals) noexcept;

// Which kernel decode_fast uses: 0 portable scalar, 1 scalar + BMI2 pdep,
// 2 AVX2 + pdep, 3 AVX2 without pdep; -1 = auto (default). Unavailable
// kernels fall back to 0. vals must have 2 readable entries past 2^prob_bits.
void force_kernel(int which) noexcept;
int active_kernel() noexcept;

}  // namespace wc::fans::detail
