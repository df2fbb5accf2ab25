// The chunks of a run of tensors, processed in parallel on the pool and
// handed on strictly in order. Pack and decode share it so both stream with
// memory bounded by the slots (4 chunks per thread) and emit chunks in
// container order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <vector>

#include "format/container.h"
#include "lib/thread_pool.h"
#include "lib/unit_decode.h"

namespace wc {

// Per-slot buffers: 4 chunks per thread, which bounds memory (the chunks
// from the oldest not yet handed on to the newest started).
inline size_t chunk_slots(const ThreadPool& pool) { return size_t(pool.size()) * 4; }

// A unit of a tensor (lib/unit_decode.h): an exact tensor's chunk, a lossy
// tensor's tile.
struct ChunkJob {
  uint32_t tensor, chunk;  // unit relative to the tensor
};

// The chunks of tensors [first, first + count) in order: before(k, job) in
// order, one at a time, then work(k, job) in parallel, then after(k, job)
// in order, one at a time; k is the chunk's slot (0 .. chunk_slots(pool) -
// 1), for per-slot buffers, free again once after() has run.
//
// With more than one thread this is a pipeline without barriers: each pool
// thread takes the next chunk once its slot is free (the chunk
// chunk_slots(pool) before it handed on), and the thread that finishes the
// oldest chunk not yet handed on hands on every finished chunk from there.
// The ordered stage (writing, hashing) thus runs on whichever thread is free
// and the parallel one never waits for a whole window: windows with a
// barrier and the ordered stage on a thread of its own left pack's encode
// stage at 1.3x one thread's speed on two cores. The first exception thrown
// by any stage stops the pipeline (no later chunk is handed on) and is
// rethrown here. -T 1 stays on one thread, a window at a time.
template <class Before, class Work, class After>
void for_chunk_windows(const Manifest& m, uint32_t first, uint32_t count, ThreadPool& pool, Before&& before,
                       Work&& work, After&& after) {
  // The next chunk (a list of every chunk up front would cost memory for
  // chunks a file merely claims).
  ChunkJob cursor{first, 0};
  const uint32_t end = first + count;
  auto next_job = [&](ChunkJob* job) {
    while (cursor.tensor < end) {
      if (cursor.chunk < unit_count(m.tensors[cursor.tensor])) {
        *job = cursor;
        ++cursor.chunk;
        return true;
      }
      cursor = {cursor.tensor + 1, 0};
    }
    return false;
  };
  const size_t slots = chunk_slots(pool);
  if (pool.size() == 1) {
    std::vector<ChunkJob> jobs;
    for (;;) {
      jobs.clear();
      ChunkJob j;
      while (jobs.size() < slots && next_job(&j)) jobs.push_back(j);
      if (jobs.empty()) return;
      for (size_t k = 0; k < jobs.size(); ++k) before(k, jobs[k]);
      for (size_t k = 0; k < jobs.size(); ++k) work(k, jobs[k]);
      for (size_t k = 0; k < jobs.size(); ++k) after(k, jobs[k]);
    }
  }
  std::mutex claim_mu;  // taking a chunk: in order, before() one at a time
  std::mutex mu;        // what follows
  std::condition_variable cv;
  std::vector<ChunkJob> job(slots);
  std::vector<uint8_t> done(slots);
  uint64_t taken = 0, handed = 0;  // chunks taken, chunks handed on (in order)
  bool handing = false, failed = false;
  std::exception_ptr error;
  auto fail_with = [&](std::unique_lock<std::mutex>&) {
    if (!error) error = std::current_exception();
    failed = true;
    cv.notify_all();
  };
  // Hands on the finished chunks from the oldest, unless a thread already
  // does; called with mu held.
  auto hand_on = [&](std::unique_lock<std::mutex>& lk) {
    if (handing) return;
    handing = true;
    while (!failed && handed < taken && done[handed % slots]) {
      const size_t k = size_t(handed % slots);
      lk.unlock();
      try {
        after(k, job[k]);
      } catch (...) {
        lk.lock();
        fail_with(lk);
        break;
      }
      lk.lock();
      done[k] = 0;
      ++handed;
      cv.notify_all();  // its slot is free
    }
    handing = false;
  };
  pool.parallel_for(pool.size(), [&](size_t) {
    for (;;) {
      size_t k;
      {
        std::unique_lock<std::mutex> c(claim_mu);
        ChunkJob j;
        uint64_t i;
        {
          std::unique_lock<std::mutex> lk(mu);
          if (failed || !next_job(&j)) return;
          i = taken;
          // its slot is free once the chunk `slots` before it is handed on
          // (hand_on() here too: every other thread may be waiting as well)
          for (;;) {
            hand_on(lk);
            if (failed) return;
            if (i < handed + slots) break;
            cv.wait(lk);
          }
          k = size_t(i % slots);
          job[k] = j;
          taken = i + 1;
        }
        try {
          before(k, j);
        } catch (...) {
          std::unique_lock<std::mutex> lk(mu);
          fail_with(lk);
          return;
        }
      }
      try {
        work(k, job[k]);
      } catch (...) {
        std::unique_lock<std::mutex> lk(mu);
        fail_with(lk);
        return;
      }
      std::unique_lock<std::mutex> lk(mu);
      done[k] = 1;
      hand_on(lk);
    }
  });
  // every thread has returned: a chunk left finished but not handed on
  // belongs to a failed pipeline
  if (error) std::rethrow_exception(error);
}

}  // namespace wc
