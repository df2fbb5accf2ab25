// CUDA decoder for qrow tensors (spec/QROW.md): turns a tile's row steps e[]
// and zigzag codes into BF16/F16/F32 values, bit for bit what the CPU
// decoders (wc::qrow::decode_rows_ref / decode_rows_fast) write.
//
// A grid-stride kernel: each thread decodes groups of consecutive elements,
// 16 bytes of output a group (8 BF16/F16 or 4 F32 values, one vector code
// load and one 16-byte store) when d_dst is 16-byte aligned and d_codes is
// aligned to a group's codes, else one element a group. What one thread does
// is gpu/qrow_kernel_body.h's qrow_thread, which the CPU emulation test runs
// for every thread of the same launch shape (tests/test_gpu_emulation.cpp).
// Launch: 256 threads a block; min(ceil(groups / 256), multiprocessors x
// resident blocks per multiprocessor (occupancy, at most 8)) blocks.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

namespace wc::qrow::gpu {

// Decodes rows [0, rows) of a tile: d_e (rows bytes), d_codes (rows * cols
// codes of code_bytes 1 or 2, little-endian), written in dtype out_dtype_id
// (wc::DType numeric id: F16 8, BF16 9, F32 12) to d_dst (rows * cols
// elements); all device memory. Returns cudaErrorInvalidValue for a code
// width, dtype or base_exp (spec: -126..96) out of range, else the launch
// error. Nothing is launched for an empty tile.
cudaError_t decode_rows_async(int32_t base_exp, const uint8_t* d_e, const uint8_t* d_codes, unsigned code_bytes,
                              uint64_t rows, uint64_t cols, uint32_t out_dtype_id, uint8_t* d_dst,
                              cudaStream_t s);

// qrow-outliers: after decode_rows_async of tile `tile`, writes the tile's
// outliers from the outlier block d_block (block_n bytes, device memory) of a
// tensor of `tiles` tiles and dtype dtype_id over d_dst (out_dtype_id); one
// thread. *d_status (device) becomes 0, or 1 when the block's table or the
// tile's section breaks spec/OUTLIERS.md §2.
cudaError_t apply_outliers_async(const uint8_t* d_block, uint64_t block_n, uint64_t tiles, uint64_t tile,
                                 uint64_t rows, uint64_t cols, uint32_t dtype_id, uint32_t out_dtype_id,
                                 uint8_t* d_dst, uint32_t* d_status, cudaStream_t s);

}  // namespace wc::qrow::gpu
