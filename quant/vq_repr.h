// vq's entry in the representation table (quant/repr.cpp): a vector codebook
// per tensor with per-row steps (spec/VQ.md).
#pragma once
#include "quant/repr.h"
#include "quant/vq_math.h"

namespace wc {

inline constexpr uint8_t kReprVq = 3;
inline constexpr uint32_t kMaxVqShift = 31;         // params byte 3 (2.11)
inline constexpr uint64_t kMaxVqEntries = 1u << 16;  // K: codes are at most U16

void vq_check(const TensorRecord& t);
Errc vq_decode_tile(const TensorRecord& t, uint32_t tile, unsigned level, const TileInputs& in, DType out,
                    uint8_t* dst);

// The record's group size d (params byte 2) and book shift s (params byte 3:
// one codebook per 2^s rows; 0: one for the tensor).
uint32_t vq_dim(const TensorRecord& t);
uint32_t vq_shift(const TensorRecord& t);
// Its number of books (one per group of rows), entries per book, the second
// codebook's size K2 of an additive book (params bytes 4-5; 0: flat), and
// the number of valid codes (flat: the entries; additive: K1 x K2).
uint64_t vq_books(const TensorRecord& t);
uint64_t vq_entries(const TensorRecord& t);
uint32_t vq_second(const TensorRecord& t);
uint64_t vq_codes(const TensorRecord& t);

namespace vq {
// Decoders of rows [0, n) of a tile (e: their steps; codes: one per group of
// d, code_bytes each; b: the codebooks, quant/vq_math.h) in dtype out. The
// reference evaluates the spec element by element; the fast one row by row.
// Both return false when a code is not below k (dst partly written).
bool decode_rows_ref(int32_t base_exp, const uint8_t* e, const uint8_t* codes, unsigned code_bytes, const Books& b,
                     uint64_t n, uint64_t cols, DType out, uint8_t* dst);
bool decode_rows_fast(int32_t base_exp, const uint8_t* e, const uint8_t* codes, unsigned code_bytes, const Books& b,
                      uint64_t n, uint64_t cols, DType out, uint8_t* dst);
}  // namespace vq

}  // namespace wc
