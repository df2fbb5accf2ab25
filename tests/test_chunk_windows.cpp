// lib/chunk_windows.h: every chunk once, before() and after() in container
// order, a slot never held by two chunks at once, at most chunk_slots(pool)
// chunks between the oldest not handed on and the newest begun, and the
// first exception of any stage rethrown with no later chunk handed on.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "format/container.h"
#include "lib/chunk_windows.h"
#include "lib/thread_pool.h"

namespace {

// Exact tensors of these many chunks each (0: an empty tensor, no chunk).
wc::Manifest manifest_of(const std::vector<uint64_t>& chunks) {
  wc::Manifest m;
  for (uint64_t c : chunks) {
    wc::TensorRecord t;
    t.dtype = wc::DType::U8;
    t.chunk_size = 16;
    t.byte_size = c * 16;
    t.shape = {t.byte_size};
    m.tensors.push_back(t);
  }
  m.derive_chunks();
  return m;
}

struct Seen {
  std::vector<wc::ChunkJob> before, after;
  std::atomic<int> worked{0};
  long max_ahead = 0;  // the most chunks begun and not yet handed on
};

// Runs the pipeline over m with `threads` threads; work() sleeps a random
// few microseconds (so chunks finish out of order), every 16th chunk 5 ms
// (so the slots run out behind it), and throws at chunk `throw_work` of the
// whole run where that is >= 0 (before() and after() at theirs likewise).
void run(const wc::Manifest& m, unsigned threads, Seen& s, long throw_work = -1, long throw_before = -1,
         long throw_after = -1) {
  wc::ThreadPool pool(threads);
  const size_t slots = wc::chunk_slots(pool);
  std::vector<long> holder(slots, -1);  // the chunk a slot holds, from before() to after()
  std::mutex mu;                        // guards the slot checks (the stages of one chunk run on different threads)
  long begun = 0, handed = 0;
  auto index_of = [&](const wc::ChunkJob& j) {
    long i = 0;
    for (uint32_t t = 0; t < j.tensor; ++t) i += long(m.tensors[t].chunk_count);
    return i + long(j.chunk);
  };
  wc::for_chunk_windows(
      m, 0, uint32_t(m.tensors.size()), pool,
      [&](size_t k, const wc::ChunkJob& j) {
        std::lock_guard<std::mutex> g(mu);
        REQUIRE(k < slots);
        CHECK(holder[k] == -1);  // free: its last chunk was handed on
        const long i = index_of(j);
        holder[k] = i;
        CHECK(i == begun);
        ++begun;
        CHECK(begun - handed <= long(slots));
        s.max_ahead = std::max(s.max_ahead, begun - handed);
        s.before.push_back(j);
        if (i == throw_before) throw std::runtime_error("before");
      },
      [&](size_t k, const wc::ChunkJob& j) {
        thread_local std::mt19937 rng(std::hash<std::thread::id>{}(std::this_thread::get_id()));
        const long i = index_of(j);
        // every 16th chunk slow: the others run ahead until the slots bind
        std::this_thread::sleep_for(std::chrono::microseconds(i % 16 == 3 ? 5000 : rng() % 200));
        {
          std::lock_guard<std::mutex> g(mu);
          CHECK(holder[k] == i);
        }
        ++s.worked;
        if (i == throw_work) throw std::runtime_error("work");
      },
      [&](size_t k, const wc::ChunkJob& j) {
        std::lock_guard<std::mutex> g(mu);
        const long i = index_of(j);
        CHECK(holder[k] == i);
        CHECK(i == handed);
        holder[k] = -1;
        ++handed;
        s.after.push_back(j);
        if (i == throw_after) throw std::runtime_error("after");
      });
}

std::vector<wc::ChunkJob> all_chunks(const wc::Manifest& m) {
  std::vector<wc::ChunkJob> v;
  for (uint32_t t = 0; t < m.tensors.size(); ++t)
    for (uint32_t c = 0; c < m.tensors[t].chunk_count; ++c) v.push_back({t, c});
  return v;
}

bool same(const std::vector<wc::ChunkJob>& a, const std::vector<wc::ChunkJob>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].tensor != b[i].tensor || a[i].chunk != b[i].chunk) return false;
  return true;
}

}  // namespace

TEST_SUITE("chunk_windows") {
  TEST_CASE("every chunk once, in order, within its slots, on 1 to 4 threads") {
    const auto m = manifest_of({3, 0, 1, 40, 0, 7, 2, 0});
    const auto want = all_chunks(m);
    REQUIRE(want.size() == 53);
    for (unsigned threads : {1u, 2u, 3u, 4u}) {
      CAPTURE(threads);
      for (int rep = 0; rep < 3; ++rep) {
        Seen s;
        run(m, threads, s);
        CHECK(same(s.before, want));
        CHECK(same(s.after, want));
        CHECK(s.worked.load() == int(want.size()));
        // the bound was reached (else the checks above prove nothing of it)
        CHECK(s.max_ahead == long(4 * threads));
      }
    }
    Seen none;
    run(manifest_of({0, 0}), 2, none);  // no chunk at all
    CHECK(none.before.empty());
    CHECK(none.after.empty());
  }

  TEST_CASE("the first exception of any stage comes back; no chunk after it is handed on") {
    const auto m = manifest_of({20, 30});
    const auto want = all_chunks(m);
    for (unsigned threads : {1u, 2u, 3u}) {
      CAPTURE(threads);
      for (long at : {0L, 17L, 49L}) {
        CAPTURE(at);
        {
          Seen s;
          CHECK_THROWS_WITH(run(m, threads, s, at), "work");
          CHECK(long(s.after.size()) <= at);  // handed on: a prefix that stops before it
          CHECK(same(s.after, std::vector<wc::ChunkJob>(want.begin(), want.begin() + long(s.after.size()))));
        }
        {
          Seen s;
          CHECK_THROWS_WITH(run(m, threads, s, -1, at), "before");
          CHECK(long(s.before.size()) == at + 1);  // no chunk begun after it
          CHECK(long(s.after.size()) <= at);
        }
        {
          Seen s;
          CHECK_THROWS_WITH(run(m, threads, s, -1, -1, at), "after");
          CHECK(long(s.after.size()) == at + 1);  // the one that threw was the last
        }
      }
    }
  }
}
