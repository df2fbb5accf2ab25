// What one CUDA thread of the vq decode kernel (gpu/vq_decode.cu) does, as a
// host/device function the CPU emulation test (tests/test_vq.cpp) runs for
// every (block, thread) of the same launch shape. A grid-stride loop over
// the tile's elements: element i is quant/vq_math.h's `element` (the spec's
// arithmetic, VQ.md §2) and nothing else. A code not below K sets *status.
// Plain C++ includes this header too: nothing here needs the CUDA toolkit.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "quant/vq_math.h"

namespace wc::vq::gpu {

inline constexpr uint32_t kThreadsPerBlock = 256;

struct VqArgs {
  int32_t base_exp;
  uint32_t code_bytes, out_dt;
  Books books;  // the codebook(s) and where the tile's rows start
  uint64_t rows, cols, n;
  const uint8_t* e;
  const uint8_t* codes;
  uint8_t* dst;
  uint32_t* status;   // set to 1 when a code is out of range (never cleared)
};

WC_QHD void vq_thread(const VqArgs& a, uint64_t thread_index, uint64_t thread_count) {
  for (uint64_t i = thread_index; i < a.n; i += thread_count)
    if (!element(a.base_exp, a.e, a.codes, a.code_bytes, a.books, a.cols, i, a.out_dt, a.dst)) *a.status = 1;
}

// Blocks: one element a thread, at most max_blocks, at least 1.
WC_QHD uint32_t vq_blocks(uint64_t n, uint32_t max_blocks) {
  const uint64_t want = n / kThreadsPerBlock + (n % kThreadsPerBlock != 0);
  return uint32_t(want == 0 ? 1 : want < max_blocks ? want : max_blocks);
}

}  // namespace wc::vq::gpu
