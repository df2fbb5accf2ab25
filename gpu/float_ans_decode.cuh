// CUDA decoder for float_ans chunks (codec/float_ans.h, spec/FLOAT_ANS.md):
// codecs 2, 3 and 4 (modes 0, 1, 3; mode 2 is the host's, see below).
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

// What the kernel takes (spec/FLOAT_ANS.md §2): codec 2 (float-ans),
// codec 3 (float-ans-trim: z low mantissa bits left out) and codec 4
// (float-ans-mixed) chunks of modes 0 (raw), 1 (rANS) and 3 (per-channel
// shift, §2.1: decoded, then the shift added in the same block). A codec-4
// chunk of mode 2 is a zstd frame, which the GPU does not decode: its status
// is kHostZstd, nothing is written to its dst, and the host decodes it
// (wc::decode_chunk, or wcodec_decode_desc through the C API) into the same
// destination. kernel_takes(codec, first byte) tells a loader beforehand.
//
// Per-chunk status (d_status): kOk; kCorrupt (the CPU decoder refuses the
// chunk too; dst bytes unspecified, nothing outside dst written);
// kUnsupported (nothing written: prob_bits above max_prob_bits, or a shift
// list longer than shift_entries(); decode it on the host); kHostZstd.

// Shared memory one block needs for chunks with prob_bits <= max_prob_bits
// and shift lists of up to max_shift_entries entries (0: as many as the
// tables' memory holds, shift_entries(max_prob_bits, 0); 36,866 at 12).
size_t shared_bytes(uint32_t max_prob_bits, uint32_t max_shift_entries = 0);
// The longest shift list (entries) a launch with these limits decodes.
uint32_t shift_entries(uint32_t max_prob_bits, uint32_t max_shift_entries = 0);

// Decodes nchunks chunks of codec `codec` (2, 3 or 4; wc::CodecId) and dtype
// `dtype_id` (wc::DType numeric id) described by d_chunks (device memory) on
// `stream`; d_status[i] (device memory) receives chunk i's status. Chunks
// whose prob_bits exceed max_prob_bits report kUnsupported (the encoder's
// default is 12). max_shift_entries (at most 2^16) raises the block's shared
// memory so that longer lists decode (at 2^16: 128 KiB, one block per SM).
// Returns the launch error (cudaErrorInvalidValue for another codec).
cudaError_t decode_chunks_async(const Chunk* d_chunks, uint32_t nchunks, uint32_t codec, uint32_t dtype_id,
                                int* d_status, cudaStream_t stream, uint32_t max_prob_bits = 12,
                                uint32_t threads_per_block = 128, uint32_t max_shift_entries = 0);

// Convenience: one chunk, descriptor passed by value.
cudaError_t decode_chunk_async(uint32_t codec, uint32_t dtype_id, const uint8_t* d_src, uint64_t src_n,
                               uint8_t* d_dst, uint64_t dst_n, int* d_status, cudaStream_t stream,
                               uint32_t max_prob_bits = 12, uint32_t max_shift_entries = 0);

}  // namespace wc::fans::gpu
