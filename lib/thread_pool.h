// A fixed set of worker threads that run one parallel loop at a time. The
// caller's thread works too, so a pool of N threads has N-1 workers.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wc {

class ThreadPool {
 public:
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();
  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }
  // Runs fn(i) for i in [0, n); returns when all are done. The first
  // exception thrown by any fn is rethrown here (the rest of the loop is skipped).
  void parallel_for(size_t n, const std::function<void(size_t)>& fn);

 private:
  void work();
  void drain();
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_ = 0;
  std::atomic<size_t> next_{0};
  size_t pending_ = 0;  // workers yet to finish the current loop
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
};

unsigned default_threads();

}  // namespace wc
