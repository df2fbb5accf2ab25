// The phases of the float-ans decode kernel (gpu/float_ans_decode.cu) as
// host/device functions: the kernel is barriers and warp votes around them,
// and the CPU emulation (tests/test_gpu_emulation.cpp) runs the same
// functions in the kernel's decomposition (thread 0's preparation, batches of
// one group per warp, 32 lanes stepping together with a ballot), so the CPU
// checks the kernel's logic on every test tensor and corpus chunk. The
// arithmetic is codec/ans_layout.h's, shared with the CPU decoders.
//
// Decomposition: one thread block per chunk. Thread 0 parses the chunk,
// checks its word counts, normalises the table and builds the slot tables in
// shared memory. Warp w then decodes group b0 + w of each batch of nwarps
// groups (thread 0 first prefix-sums the batch's word counts): lane l holds
// sub-stream j0 + l; at step t every lane with an element decodes it
// (lane_step), the lanes that need a renormalisation word take consecutive
// words of the group's stream in lane order (ballot + popcount prefix,
// lane_take).
// Plain C++ includes this header too: nothing here needs the CUDA toolkit.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "codec/ans_layout.h"

namespace wc::fans::gpu {

using namespace wc::fans::layout;

// One chunk: device pointers and sizes (dst_n is the chunk's raw size).
struct Chunk {
  const uint8_t* src;
  uint64_t src_n;
  uint8_t* dst;
  uint64_t dst_n;
};

// Status codes written per chunk.
enum : int { kOk = 0, kCorrupt = 1, kUnsupported = 2 };

// Dynamic shared memory: slot u32[M] | vals u16[M + 2] | f u16[kMaxAlphabet] |
// q u8[kMaxAlphabet] (M = 2^max_pb). Until build_slots, slot and vals hold
// normalize_freqs's workspace: order u16[2 * 2^pb] and counts u16[2^pb + 1],
// pb <= max_pb (both scale with M, so checking the largest M suffices).
static_assert(norm_order_entries(kMaxProbBits) * 2 <= 4 * kMaxTableSlots, "order fits slot");
static_assert(norm_count_entries(kMaxProbBits) <= kMaxTableSlots + 2, "counts fit vals");
WC_HD size_t smem_for(uint32_t pb) {
  const size_t M = size_t(1) << pb;
  return 4 * M + 2 * (M + 2) + 2 * kMaxAlphabet + kMaxAlphabet;
}

struct Smem {
  uint32_t* slot;
  uint16_t* vals;
  uint16_t* f;
  uint8_t* q;
};
WC_HD Smem smem_parts(uint8_t* smem, uint32_t max_pb) {
  const size_t M = size_t(1) << max_pb;
  Smem s;
  s.slot = reinterpret_cast<uint32_t*>(smem);
  s.vals = reinterpret_cast<uint16_t*>(smem + 4 * M);
  s.f = reinterpret_cast<uint16_t*>(smem + 4 * M + 2 * (M + 2));
  s.q = reinterpret_cast<uint8_t*>(s.f + kMaxAlphabet);
  return s;
}

// Thread 0, first: everything before the groups. Returns the chunk's status.
WC_HD int block_prepare(const Chunk& c, uint32_t dtype_id, uint32_t max_pb, ChunkLayout& L, const Smem& S) {
  if (!parse_chunk(dtype_id, c.src, c.src_n, c.dst_n, &L, S.q)) return kCorrupt;
  if (L.mode != kModeRans) return kOk;
  if (L.h.prob_bits > max_pb) return kUnsupported;
  if (!check_counts(c.src, L)) return kCorrupt;
  if (!normalize_freqs(S.q, L.count, L.h.qshift, L.h.prob_bits, S.f, reinterpret_cast<uint16_t*>(S.slot), S.vals))
    return kCorrupt;  // workspace sized for max_pb >= prob_bits (see smem_for)
  build_slots(S.f, L.count, L.lo, L.s, S.slot, S.vals);
  return kOk;
}

// A raw chunk: thread tid of nt copies every nt-th byte.
WC_HD void raw_copy(const Chunk& c, uint32_t tid, uint32_t nt) {
  for (uint64_t i = tid; i < c.dst_n; i += nt) c.dst[i] = c.src[1 + i];
}

// Thread 0, before each batch of nwarps groups from b0: the word offset of
// each warp's group (scan[k]), advancing `running` past the batch.
WC_HD void batch_scan(const Chunk& c, const ChunkLayout& L, uint64_t b0, uint32_t nwarps, uint64_t* scan,
                      uint64_t& running) {
  uint64_t acc = running;
  for (uint32_t k = 0; k < nwarps; ++k) {
    const uint64_t g = b0 + k;
    scan[k] = acc;
    if (g + 1 < L.ngroups) acc += load32(c.src + L.counts_off + 4 * g);
  }
  running = acc;
}

// One group, as every lane of its warp sees it.
struct Group {
  uint64_t j0;      // first sub-stream
  uint64_t steps;   // steps of its longest lane (the first)
  uint32_t lanes;   // lanes with a sub-stream
  uint32_t words;   // words of its stream
  const uint8_t* wp;  // its stream
};
WC_HD Group group_begin(const Chunk& c, const ChunkLayout& L, uint64_t g, uint64_t before) {
  Group G;
  G.j0 = g * kGroupLanes;
  G.steps = substream_len(L, G.j0);
  G.lanes = group_lanes(L, g);
  G.words = word_count(c.src, L, g, before);
  G.wp = c.src + L.streams_off + 2 * before;
  return G;
}

struct Lane {
  uint32_t x;
  bool ok;
  bool mine;  // the lane has a sub-stream
};
WC_HD Lane lane_begin(const Chunk& c, const ChunkLayout& L, const Group& G, uint32_t lane) {
  Lane s;
  s.mine = lane < G.lanes;
  s.x = s.mine ? load32(c.src + L.states_off + 4 * (G.j0 + lane)) : kLowerBound;
  s.ok = s.x >= kLowerBound;
  return s;
}
// Step t: decodes the lane's element, if it has one. Returns whether the lane
// needs a renormalisation word (the warp's ballot).
WC_HD bool lane_step(const Chunk& c, const ChunkLayout& L, const Smem& S, const Group& G, Lane& s, uint64_t t,
                     uint32_t lane) {
  const uint64_t i = t * L.nsub + G.j0 + lane;
  return s.mine && i < L.n &&
         lane_decode(L.s, L.h.prob_bits, S.slot, S.vals, s.x, i, c.src + L.plane_off, L.plane_n, c.dst);
}
WC_HD uint32_t popcount32(uint32_t v) {
#ifdef __CUDA_ARCH__
  return uint32_t(__popc(v));
#else
  return uint32_t(__builtin_popcount(v));
#endif
}
// A lane that needs a word takes word `used` + (lanes below it that need one).
WC_HD void lane_take(const Group& G, Lane& s, uint64_t used, uint32_t ballot, uint32_t lane) {
  lane_refill(s.x, G.wp, G.words, used + popcount32(ballot & ((1u << lane) - 1u)), s.ok);
}
// After the last step: the lane ended well; the group also needs used == words.
WC_HD bool lane_end(const Lane& s) { return s.ok && s.x == kLowerBound; }

}  // namespace wc::fans::gpu
