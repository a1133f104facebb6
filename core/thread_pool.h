// A fixed pool of worker threads for the CPU reference kernels. parallel_for splits [0, n) into
// contiguous chunks, one per thread, statically: the same n and thread count always give the same
// split, so per-chunk partial sums are reproducible. Calls from inside a worker run inline.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace r1kit {

class ThreadPool {
 public:
  // threads <= 0 means the machine's hardware concurrency.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(begin, end) over chunks of [0, n); chunks have at least `grain` items. Blocks until
  // all chunks are done; rethrows the first exception a chunk threw.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_chunks_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
  std::mutex run_mu_;  // one parallel_for at a time from outside the pool
};

}  // namespace r1kit
