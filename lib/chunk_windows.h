// The chunks of a run of tensors, processed a window at a time: each window's
// chunks in parallel on the pool, then handed on strictly in order. Pack and
// decode share it so both stream with memory bounded by the window (4 chunks
// per thread) and emit chunks in container order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "format/container.h"
#include "lib/thread_pool.h"
#include "lib/unit_decode.h"

namespace wc {

// Per-slot buffers: 4 chunks per thread, which bounds memory. With more than
// one thread the ordered stage of a window runs on its own thread beside the
// next window's work, so a window is half of the slots.
inline size_t chunk_slots(const ThreadPool& pool) { return size_t(pool.size()) * 4; }
inline size_t chunk_window(const ThreadPool& pool) { return chunk_slots(pool) / (pool.size() > 1 ? 2 : 1); }

// A unit of a tensor (lib/unit_decode.h): an exact tensor's chunk, a lossy
// tensor's tile.
struct ChunkJob {
  uint32_t tensor, chunk;  // unit relative to the tensor
};

// For each window of at most chunk_window(pool) chunks of tensors
// [first, first + count): before(k, job) in order on this thread, then
// work(k, job) in parallel, then after(k, job) in order; k is the chunk's
// slot (0 .. chunk_slots(pool) - 1), for per-slot buffers. With more than one
// thread, after() runs on a SerialWorker while the next window's before() and
// work() run (alternate windows use alternate halves of the slots), so a
// serial stage (hash, write) overlaps the parallel one. -T 1 stays on one
// thread.
template <class Before, class Work, class After>
void for_chunk_windows(const Manifest& m, uint32_t first, uint32_t count, ThreadPool& pool, Before&& before,
                       Work&& work, After&& after) {
  const size_t window = chunk_window(pool);
  // The jobs of a window are listed as the window starts (a list of every
  // chunk up front would cost memory for chunks a file merely claims); with
  // an ordered stage, alternate windows use alternate lists, as the slots do.
  std::vector<ChunkJob> lists[2];
  ChunkJob cursor{first, 0};
  const uint32_t end = first + count;
  auto next_window = [&](std::vector<ChunkJob>& jobs) {
    jobs.clear();
    while (jobs.size() < window && cursor.tensor < end) {
      if (cursor.chunk < unit_count(m.tensors[cursor.tensor])) jobs.push_back(cursor), ++cursor.chunk;
      else cursor = {cursor.tensor + 1, 0};
    }
    return !jobs.empty();
  };
  std::optional<SerialWorker> ordered;  // declared after the lists: joined before they go
  if (pool.size() > 1) ordered.emplace();
  for (size_t w = 0;; ++w) {
    std::vector<ChunkJob>& jobs = lists[ordered ? (w & 1) : 0];
    if (!next_window(jobs)) break;
    const size_t n = jobs.size(), off = ordered ? (w & 1) * window : 0;
    // these slots (and this list) were last handed on by window w - 2, which
    // post() below waited for before starting window w - 1's ordered stage
    for (size_t k = 0; k < n; ++k) before(off + k, jobs[k]);
    pool.parallel_for(n, [&](size_t k) { work(off + k, jobs[k]); });
    auto hand_on = [&after, &jobs, n, off] {
      for (size_t k = 0; k < n; ++k) after(off + k, jobs[k]);
    };
    if (ordered) ordered->post(hand_on);
    else hand_on();
  }
  if (ordered) ordered->wait();
}

}  // namespace wc
