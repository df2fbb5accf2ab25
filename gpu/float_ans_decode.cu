// CUDA kernel for float_ans: see float_ans_decode.cuh.
#include "gpu/float_ans_decode.cuh"

#include "codec/ans_layout.h"

namespace wc::fans::gpu {

using namespace wc::fans::layout;

namespace {

// Shared-memory layout (dynamic): slot u32[M] | vals u16[M + 2] | f u16[kMaxAlphabet] | q u8[kMaxAlphabet]
// (M = 2^max_pb). Until build_slots, slot and vals hold normalize_freqs's
// workspace: order u16[2 * 2^pb] and counts u16[2^pb + 1], pb <= max_pb (both
// scale with M, so checking the largest M suffices).
static_assert(norm_order_entries(kMaxProbBits) * 2 <= 4 * kMaxTableSlots, "order fits slot");
static_assert(norm_count_entries(kMaxProbBits) <= kMaxTableSlots + 2, "counts fit vals");
__host__ __device__ inline size_t smem_for(uint32_t pb) {
  const size_t M = size_t(1) << pb;
  return 4 * M + 2 * (M + 2) + 2 * kMaxAlphabet + kMaxAlphabet;
}

__device__ void decode_chunk_block(const Chunk c, uint32_t dtype_id, int* status, uint32_t max_pb) {
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ ChunkLayout L;
  __shared__ int st;           // block status
  __shared__ uint64_t scan[32];  // word offset of each warp's group in a batch
  __shared__ uint64_t running;  // words before the current batch of sub-streams
  const uint32_t M_max = 1u << max_pb;
  uint32_t* slot = reinterpret_cast<uint32_t*>(smem);
  uint16_t* vals = reinterpret_cast<uint16_t*>(smem + 4 * size_t(M_max));
  uint16_t* f = reinterpret_cast<uint16_t*>(smem + 4 * size_t(M_max) + 2 * (size_t(M_max) + 2));
  uint8_t* q = reinterpret_cast<uint8_t*>(f + kMaxAlphabet);
  const uint32_t tid = threadIdx.x, nt = blockDim.x;

  if (tid == 0) {
    st = kOk;
    running = 0;
    if (!parse_chunk(dtype_id, c.src, c.src_n, c.dst_n, &L, q)) st = kCorrupt;
    else if (L.mode == kModeRans) {
      if (L.h.prob_bits > max_pb) st = kUnsupported;
      else if (!check_counts(c.src, L)) st = kCorrupt;
      else if (!normalize_freqs(q, L.count, L.h.qshift, L.h.prob_bits, f, reinterpret_cast<uint16_t*>(slot), vals))
        st = kCorrupt;  // workspace sized for max_pb >= prob_bits (see smem_for)
      else {  // exclusive prefix of f into the q-free f array is not needed: build sequentially
        build_slots(f, L.count, L.lo, L.s, slot, vals);
      }
    }
  }
  __syncthreads();
  if (st != kOk) {
    if (tid == 0) *status = st;
    return;
  }
  if (L.mode == kModeRaw) {
    for (uint64_t i = tid; i < c.dst_n; i += nt) c.dst[i] = c.src[1 + i];
    if (tid == 0) *status = kOk;
    return;
  }
  // Each warp decodes whole groups of kGroupLanes lanes (one lane per
  // thread); the lanes of a group share one word stream: in each step the
  // lanes that need a word take consecutive words in lane order (ballot +
  // popc prefix). Groups are taken in batches of nwarps; thread 0 prefix-sums
  // the batch's word counts.
  const uint32_t warp = tid / 32, lane = tid % 32, nwarps = nt / 32;
  bool ok = true;
  for (uint64_t b0 = 0; b0 < L.ngroups; b0 += nwarps) {
    if (tid == 0) {
      uint64_t acc = running;
      for (uint32_t k = 0; k < nwarps; ++k) {
        const uint64_t g = b0 + k;
        scan[k] = acc;
        if (g + 1 < L.ngroups) acc += load32(c.src + L.counts_off + 4 * g);
      }
      running = acc;
    }
    __syncthreads();
    const uint64_t g = b0 + warp;
    if (g < L.ngroups) {  // warp-uniform
      const uint64_t before = scan[warp];
      const uint32_t words = word_count(c.src, L, g, before);
      const uint8_t* wp = c.src + L.streams_off + 2 * before;
      const uint64_t j0 = g * kGroupLanes;
      const uint32_t lanes = group_lanes(L, g);
      const bool mine = lane < lanes;
      uint32_t x = mine ? load32(c.src + L.states_off + 4 * (j0 + lane)) : kLowerBound;
      bool lok = x >= kLowerBound;
      uint64_t used = 0;
      const uint64_t steps = substream_len(L, j0);  // the group's first lane is its longest
      for (uint64_t t = 0; t < steps; ++t) {
        const uint64_t i = t * L.nsub + j0 + lane;
        const bool need = mine && i < L.n &&
                          lane_decode(L.s, L.h.prob_bits, slot, vals, x, i, c.src + L.plane_off, L.plane_n, c.dst);
        const uint32_t ballot = __ballot_sync(0xFFFFFFFFu, need);
        if (need) lane_refill(x, wp, words, used + __popc(ballot & ((1u << lane) - 1u)), lok);
        used += __popc(ballot);
      }
      ok &= lok && x == kLowerBound && used == words;
    }
    __syncthreads();
  }
  if (!ok) atomicExch(&st, kCorrupt);
  __syncthreads();
  if (tid == 0) *status = st;
}

__global__ void decode_chunks_kernel(const Chunk* chunks, uint32_t dtype_id, int* status, uint32_t max_pb) {
  decode_chunk_block(chunks[blockIdx.x], dtype_id, status + blockIdx.x, max_pb);
}

__global__ void decode_one_kernel(Chunk c, uint32_t dtype_id, int* status, uint32_t max_pb) {
  decode_chunk_block(c, dtype_id, status, max_pb);
}

cudaError_t prepare(uint32_t max_prob_bits, uint32_t threads) {
  if (max_prob_bits < kMinProbBits || max_prob_bits > kMaxProbBits) return cudaErrorInvalidValue;
  if (threads == 0 || threads > 1024 || (threads & 31)) return cudaErrorInvalidValue;
  const int bytes = int(smem_for(max_prob_bits));
  cudaError_t e = cudaFuncSetAttribute(decode_chunks_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(decode_one_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

}  // namespace

size_t shared_bytes(uint32_t max_prob_bits) { return smem_for(max_prob_bits); }

cudaError_t decode_chunks_async(const Chunk* d_chunks, uint32_t nchunks, uint32_t dtype_id, int* d_status,
                                cudaStream_t stream, uint32_t max_prob_bits, uint32_t threads_per_block) {
  if (nchunks == 0) return cudaSuccess;
  cudaError_t e = prepare(max_prob_bits, threads_per_block);
  if (e != cudaSuccess) return e;
  decode_chunks_kernel<<<nchunks, threads_per_block, smem_for(max_prob_bits), stream>>>(d_chunks, dtype_id, d_status,
                                                                                          max_prob_bits);
  return cudaGetLastError();
}

cudaError_t decode_chunk_async(uint32_t dtype_id, const uint8_t* d_src, uint64_t src_n, uint8_t* d_dst,
                               uint64_t dst_n, int* d_status, cudaStream_t stream, uint32_t max_prob_bits) {
  cudaError_t e = prepare(max_prob_bits, 128);
  if (e != cudaSuccess) return e;
  decode_one_kernel<<<1, 128, smem_for(max_prob_bits), stream>>>(Chunk{d_src, src_n, d_dst, dst_n}, dtype_id,
                                                                 d_status, max_prob_bits);
  return cudaGetLastError();
}

}  // namespace wc::fans::gpu
