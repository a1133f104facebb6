// Context: everything an op needs besides its tensors, passed explicitly (no globals): the device,
// the CUDA stream, the thread pool for CPU kernels, the allocator, and the RNG seed.
#pragma once

#include <cstdint>
#include <memory>

#include "core/allocator.h"
#include "core/device.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace r1kit {

struct ContextOptions {
  int threads = 0;    // CPU worker threads; 0 = hardware concurrency
  uint64_t seed = 0;  // Philox key for everything random in this context
  int device_index = 0;
};

class Context {
 public:
  // A CPU context.
  static std::unique_ptr<Context> cpu(const ContextOptions& opts = {});
  // A CUDA context on opts.device_index with its own stream and caching allocator; throws with the
  // reason when the build has no CUDA or the machine has no GPU.
  static std::unique_ptr<Context> cuda(const ContextOptions& opts = {});
  // CUDA when a GPU is usable at run time, else CPU.
  static std::unique_ptr<Context> best_available(const ContextOptions& opts = {});

  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  Device device() const { return device_; }
  bool is_cuda() const { return device_.is_cuda(); }
  void* stream() const { return stream_; }  // a cudaStream_t on CUDA, nullptr on CPU
  ThreadPool& pool() { return *pool_; }
  Allocator& allocator() { return *alloc_; }
  // A host allocator is always available (for staging, I/O and the CPU side of a GPU run).
  Allocator& host_allocator() { return host_alloc_; }
  uint64_t seed() const { return seed_; }
  void set_seed(uint64_t s) { seed_ = s; }

  // New tensors on this context's device.
  Tensor empty(const Shape& shape, DType dtype, std::string name = "");
  Tensor zeros(const Shape& shape, DType dtype, std::string name = "");
  // Copies a tensor's bytes to/from host memory (any device); shapes and dtypes must match.
  void copy(const TensorView& dst, const TensorView& src);
  // Waits for all work queued on the stream (no-op on CPU).
  void synchronize();

 private:
  Context() = default;
  Device device_;
  void* stream_ = nullptr;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Allocator> device_alloc_;
  CpuAllocator host_alloc_;
  Allocator* alloc_ = nullptr;
  uint64_t seed_ = 0;
};

}  // namespace r1kit
