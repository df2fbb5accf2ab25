// CUDA decoder for float_ans chunks (codec/float_ans.h, spec/FLOAT_ANS.md).
//
// The kernel's phases live in gpu/fans_kernel_body.h (run on the CPU by the
// gpu_emulation tests). One thread block per chunk: the block parses the chunk header and table,
// builds the rANS slot tables in shared memory, prefix-sums the group word
// counts, and each warp then decodes whole groups of 32 sub-streams, one lane
// per thread, with layout::lane_decode / lane_refill (the functions the CPU
// reference decoder runs, so both give identical bits); the lanes of a group
// share one word stream, distributed with a warp ballot. Element i belongs to
// sub-stream i mod nsub, so the threads of a warp write adjacent elements.
#pragma once
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu/fans_kernel_body.h"  // Chunk, status codes, the kernel's phases

namespace wc::fans::gpu {

// Shared memory one block needs for chunks with prob_bits <= max_prob_bits.
size_t shared_bytes(uint32_t max_prob_bits);

// Decodes nchunks chunks of dtype `dtype_id` (wc::DType numeric id) described
// by d_chunks (device memory) on `stream`; d_status[i] (device memory)
// receives chunk i's status. Chunks whose prob_bits exceed max_prob_bits
// report kUnsupported (the encoder's default is 12). Returns the launch error.
cudaError_t decode_chunks_async(const Chunk* d_chunks, uint32_t nchunks, uint32_t dtype_id, int* d_status,
                                cudaStream_t stream, uint32_t max_prob_bits = 12,
                                uint32_t threads_per_block = 128);

// Convenience: one chunk, descriptor passed by value.
cudaError_t decode_chunk_async(uint32_t dtype_id, const uint8_t* d_src, uint64_t src_n, uint8_t* d_dst,
                               uint64_t dst_n, int* d_status, cudaStream_t stream,
                               uint32_t max_prob_bits = 12);

}  // namespace wc::fans::gpu
