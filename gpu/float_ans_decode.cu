// CUDA kernel for float_ans: see float_ans_decode.cuh.
#include "gpu/float_ans_decode.cuh"

#include "gpu/fans_kernel_body.h"

namespace wc::fans::gpu {

namespace {

// The kernel: gpu/fans_kernel_body.h's phases between barriers and votes
// (the CPU emulation test runs the same phases in the same order).
__device__ void decode_chunk_block(const Chunk c, uint32_t codec, uint32_t dtype_id, int* status, uint32_t max_pb,
                                   uint32_t list_cap) {
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ ChunkLayout L;
  __shared__ Chunk in;           // the float-ans payload (a mode-3 chunk's inner one)
  __shared__ ShiftHead sh;       // a mode-3 chunk's shift
  __shared__ int st;             // block status
  __shared__ uint64_t scan[32];  // word offset of each warp's group in a batch
  __shared__ uint64_t running;   // words before the current batch of groups
  const Smem S = smem_parts(smem, max_pb);
  const uint32_t tid = threadIdx.x, nt = blockDim.x;

  if (tid == 0) {
    running = 0;
    st = block_prepare(c, codec, dtype_id, max_pb, list_cap, L, in, sh, S);
  }
  __syncthreads();
  if (st != kOk) {
    if (tid == 0) *status = st;
    return;
  }
  if (L.mode == kModeRaw) {
    raw_copy(in, tid, nt);
    if (tid == 0) *status = kOk;
    return;
  }
  const uint32_t warp = tid / 32, lane = tid % 32, nwarps = nt / 32;
  bool ok = true;
  for (uint64_t b0 = 0; b0 < L.ngroups; b0 += nwarps) {
    if (tid == 0) batch_scan(in, L, b0, nwarps, scan, running);
    __syncthreads();
    const uint64_t g = b0 + warp;
    if (g < L.ngroups) {  // warp-uniform
      const Group G = group_begin(in, L, g, scan[warp]);
      Lane s = lane_begin(in, L, G, lane);
      uint64_t used = 0;
      for (uint64_t t = 0; t < G.steps; ++t) {
        const bool need = lane_step(in, L, S, G, s, t, lane);
        const uint32_t ballot = __ballot_sync(0xFFFFFFFFu, need);
        if (need) lane_take(G, s, used, ballot, lane);
        used += popcount32(ballot);
      }
      ok &= lane_end(s) && used == G.words;
    }
    __syncthreads();
  }
  if (!ok) atomicExch(&st, kCorrupt);
  __syncthreads();
  if (st == kOk && sh.on) {  // block-uniform
    // every warp is past its groups (the barrier above): the slot tables'
    // memory takes the list; the decoded elements in dst are visible to the
    // whole block after the barrier
    int16_t* list = reinterpret_cast<int16_t*>(smem);
    if (tid == 0) shift_fill(c, sh, list);
    __syncthreads();
    shift_apply(c, sh, list, tid, nt);
  }
  if (tid == 0) *status = st;
}

__global__ void decode_chunks_kernel(const Chunk* chunks, uint32_t codec, uint32_t dtype_id, int* status,
                                     uint32_t max_pb, uint32_t list_cap) {
  decode_chunk_block(chunks[blockIdx.x], codec, dtype_id, status + blockIdx.x, max_pb, list_cap);
}

__global__ void decode_one_kernel(Chunk c, uint32_t codec, uint32_t dtype_id, int* status, uint32_t max_pb,
                                  uint32_t list_cap) {
  decode_chunk_block(c, codec, dtype_id, status, max_pb, list_cap);
}

cudaError_t prepare(uint32_t codec, uint32_t max_prob_bits, uint32_t threads, uint32_t max_shift_entries) {
  if (codec < kCodecFloatAns || codec > kCodecFloatAnsMixed) return cudaErrorInvalidValue;
  if (max_prob_bits < kMinProbBits || max_prob_bits > kMaxProbBits) return cudaErrorInvalidValue;
  if (threads == 0 || threads > 1024 || (threads & 31)) return cudaErrorInvalidValue;
  if (max_shift_entries > shift::kMaxEntries) return cudaErrorInvalidValue;
  const int bytes = int(smem_bytes(max_prob_bits, max_shift_entries));
  cudaError_t e = cudaFuncSetAttribute(decode_chunks_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(decode_one_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

}  // namespace

size_t shared_bytes(uint32_t max_prob_bits, uint32_t max_shift_entries) {
  return smem_bytes(max_prob_bits, max_shift_entries);
}

uint32_t shift_entries(uint32_t max_prob_bits, uint32_t max_shift_entries) {
  return list_capacity(smem_bytes(max_prob_bits, max_shift_entries));
}

cudaError_t decode_chunks_async(const Chunk* d_chunks, uint32_t nchunks, uint32_t codec, uint32_t dtype_id,
                                int* d_status, cudaStream_t stream, uint32_t max_prob_bits,
                                uint32_t threads_per_block, uint32_t max_shift_entries) {
  if (nchunks == 0) return cudaSuccess;
  cudaError_t e = prepare(codec, max_prob_bits, threads_per_block, max_shift_entries);
  if (e != cudaSuccess) return e;
  const size_t bytes = smem_bytes(max_prob_bits, max_shift_entries);
  decode_chunks_kernel<<<nchunks, threads_per_block, bytes, stream>>>(d_chunks, codec, dtype_id, d_status,
                                                                      max_prob_bits, list_capacity(bytes));
  return cudaGetLastError();
}

cudaError_t decode_chunk_async(uint32_t codec, uint32_t dtype_id, const uint8_t* d_src, uint64_t src_n,
                               uint8_t* d_dst, uint64_t dst_n, int* d_status, cudaStream_t stream,
                               uint32_t max_prob_bits, uint32_t max_shift_entries) {
  cudaError_t e = prepare(codec, max_prob_bits, 128, max_shift_entries);
  if (e != cudaSuccess) return e;
  const size_t bytes = smem_bytes(max_prob_bits, max_shift_entries);
  decode_one_kernel<<<1, 128, bytes, stream>>>(Chunk{d_src, src_n, d_dst, dst_n}, codec, dtype_id, d_status,
                                               max_prob_bits, list_capacity(bytes));
  return cudaGetLastError();
}

}  // namespace wc::fans::gpu
