// Allocators. CPU: 256-byte aligned heap memory. CUDA: a caching allocator that keeps freed blocks
// in size-class free lists and reuses them, so training steps stop calling cudaMalloc after
// warm-up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "core/device.h"

namespace r1kit {

struct AllocatorStats {
  size_t allocated_bytes = 0;  // in use by tensors now
  size_t reserved_bytes = 0;   // held from the system (in use + cached)
  size_t peak_allocated_bytes = 0;
  size_t num_system_allocs = 0;  // calls to malloc/cudaMalloc
  size_t num_cache_hits = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
  virtual Device device() const = 0;
  virtual AllocatorStats stats() const = 0;
};

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  Device device() const override { return Device::cpu(); }
  AllocatorStats stats() const override;

 private:
  mutable std::mutex mu_;
  AllocatorStats stats_;
};

// Caching allocator over cudaMalloc. Requests are rounded up (512 B for small blocks, 2 MiB for
// large), freed blocks go to a free list keyed by rounded size, and on out-of-memory the cache is
// released and the allocation retried once. Not stream-aware: all tensors of one Context use its
// stream, so reuse after free is ordered by that stream.
class CudaCachingAllocator final : public Allocator {
 public:
  explicit CudaCachingAllocator(int device_index);
  ~CudaCachingAllocator() override;
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  Device device() const override { return Device::cuda(device_index_); }
  AllocatorStats stats() const override;
  void release_cache();  // returns every cached block to the driver
  static size_t round_size(size_t bytes);

 private:
  int device_index_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;  // rounded size -> cached block
  std::map<void*, size_t> blocks_;     // live block -> its rounded size
  AllocatorStats stats_;
};

}  // namespace r1kit
