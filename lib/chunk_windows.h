// The chunks of a run of tensors, processed a window at a time: each window's
// chunks in parallel on the pool, then handed on strictly in order. Pack and
// decode share it so both stream with memory bounded by the window (4 chunks
// per thread) and emit chunks in container order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "format/container.h"
#include "lib/thread_pool.h"

namespace wc {

// Chunks in flight at once (the size of per-slot buffer arrays).
inline size_t chunk_window(const ThreadPool& pool) { return size_t(pool.size()) * 4; }

struct ChunkJob {
  uint32_t tensor, chunk;  // chunk relative to the tensor
};

// For each window of at most pool.size() * 4 chunks of tensors
// [first, first + count): before(k, job) in order on this thread, then
// work(k, job) in parallel, then after(k, job) in order; k is the slot in the
// window (0 .. window size - 1), for per-slot buffers.
template <class Before, class Work, class After>
void for_chunk_windows(const Manifest& m, uint32_t first, uint32_t count, ThreadPool& pool, Before&& before,
                       Work&& work, After&& after) {
  std::vector<ChunkJob> jobs;
  for (uint32_t t = first; t < first + count; ++t)
    for (uint32_t c = 0; c < m.tensors[t].chunk_count; ++c) jobs.push_back({t, c});
  const size_t window = chunk_window(pool);
  for (size_t base = 0; base < jobs.size(); base += window) {
    const size_t n = std::min(window, jobs.size() - base);
    for (size_t k = 0; k < n; ++k) before(k, jobs[base + k]);
    pool.parallel_for(n, [&](size_t k) { work(k, jobs[base + k]); });
    for (size_t k = 0; k < n; ++k) after(k, jobs[base + k]);
  }
}

}  // namespace wc
