// CUDA decoder for vq tensors (spec/VQ.md): a tile's row steps, codes (one
// per group of d) and codebook into BF16/F16/F32 values, bit for bit what the
// CPU decoders (wc::vq::decode_rows_ref / decode_rows_fast) write. What one
// thread does is gpu/vq_kernel_body.h's vq_thread.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

namespace wc::vq::gpu {

// All pointers device memory: d_e (rows bytes), d_codes (rows * cols / d
// codes of code_bytes 1 or 2), d_cb (per book, k entries of d F32 values, or
// additive (k2 > 0) k / k2 entries then k2; one book when shift is 0, else
// book (row0 + r) >> shift for tile row r), d_dst (rows * cols elements
// of out_dtype_id: F16 8, BF16 9, F32 12), d_status (set to 1 when a code is
// not below k; the caller clears it). cudaErrorInvalidValue for arguments
// out of range.
cudaError_t decode_rows_async(int32_t base_exp, const uint8_t* d_e, const uint8_t* d_codes, unsigned code_bytes,
                              const uint8_t* d_cb, uint32_t k, uint32_t d, uint32_t shift, uint64_t row0, uint32_t k2,
                              uint64_t rows, uint64_t cols, uint32_t out_dtype_id, uint8_t* d_dst, uint32_t* d_status, cudaStream_t s);

}  // namespace wc::vq::gpu
