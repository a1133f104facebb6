// SandboxPool (see pool.h).
#include "sandbox/pool.h"

namespace r1kit::sandbox {

SandboxPool::SandboxPool(const Sandbox& sb, int jobs, size_t queue_capacity) : sb_(sb) {
  if (jobs <= 0) jobs = std::max(1, int(std::thread::hardware_concurrency()));
  capacity_ = queue_capacity ? queue_capacity : size_t(2 * jobs);
  for (int i = 0; i < jobs; ++i) workers_.emplace_back([this] { worker(); });
}

SandboxPool::~SandboxPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  not_empty_.notify_all();
  for (auto& w : workers_) w.join();
}

void SandboxPool::enqueue(std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(mu_);
  not_full_.wait(lock, [this] { return queue_.size() < capacity_; });
  queue_.push_back(std::move(fn));
  lock.unlock();
  not_empty_.notify_one();
}

void SandboxPool::worker() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      not_empty_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    not_full_.notify_one();
    fn();  // packaged_task: exceptions land in the future
    std::lock_guard<std::mutex> lock(mu_);
    ++completed_;
  }
}

size_t SandboxPool::completed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return completed_;
}

std::future<RunResult> SandboxPool::submit(RunSpec spec) {
  return submit_task([this, spec = std::move(spec)] { return sb_.run(spec); });
}

std::vector<RunResult> SandboxPool::run_all(std::vector<RunSpec> specs) {
  std::vector<std::future<RunResult>> futs;
  futs.reserve(specs.size());
  for (auto& s : specs) futs.push_back(submit(std::move(s)));
  std::vector<RunResult> out;
  out.reserve(futs.size());
  for (auto& f : futs) out.push_back(f.get());
  return out;
}

}  // namespace r1kit::sandbox
