// A pool that runs many sandboxes at once within a CPU budget: `jobs` workers (default: the
// machine's cores), a bounded queue, and back-pressure (submit blocks while the queue is full).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "sandbox/sandbox.h"

namespace r1kit::sandbox {

class SandboxPool {
 public:
  // jobs <= 0: std::thread::hardware_concurrency(). queue_capacity 0: 2 * jobs.
  explicit SandboxPool(const Sandbox& sb, int jobs = 0, size_t queue_capacity = 0);
  // Finishes everything queued, then joins the workers.
  ~SandboxPool();
  SandboxPool(const SandboxPool&) = delete;
  SandboxPool& operator=(const SandboxPool&) = delete;

  // Queues one run; blocks while the queue is full.
  std::future<RunResult> submit(RunSpec spec);
  // Queues any work (a harness call, say) under the same budget.
  template <class F>
  auto submit_task(F f) -> std::future<decltype(f())> {
    using R = decltype(f());
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(f));
    auto fut = task->get_future();
    enqueue([task] { (*task)(); });
    return fut;
  }
  // Runs all specs, results in order.
  std::vector<RunResult> run_all(std::vector<RunSpec> specs);

  int jobs() const { return int(workers_.size()); }
  const Sandbox& sandbox() const { return sb_; }
  size_t completed() const;

 private:
  void enqueue(std::function<void()> fn);
  void worker();

  const Sandbox& sb_;
  size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  size_t completed_ = 0;
};

}  // namespace r1kit::sandbox
