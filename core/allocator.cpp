// CPU allocator and the CUDA caching allocator (the latter compiled only with the CUDA backend).
#include "core/allocator.h"

#include <cstdlib>
#include <new>

#include "core/cuda_check.h"
#include "core/error.h"

namespace r1kit {

void* CpuAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  // 256-byte alignment, like cudaMalloc, so FlatArena views are aligned on both devices.
  size_t rounded = (bytes + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, rounded);
  R1_CHECK(p != nullptr, "out of host memory allocating {} bytes", bytes);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.allocated_bytes += bytes;
  stats_.reserved_bytes += bytes;
  stats_.num_system_allocs++;
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  return p;
}

void CpuAllocator::deallocate(void* p, size_t bytes) {
  if (!p) return;
  std::free(p);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.allocated_bytes -= bytes;
  stats_.reserved_bytes -= bytes;
}

AllocatorStats CpuAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

size_t CudaCachingAllocator::round_size(size_t bytes) {
  constexpr size_t kSmall = 1 << 20;      // up to 1 MiB: multiples of 512 B
  constexpr size_t kLargeUnit = 2 << 20;  // above: multiples of 2 MiB
  if (bytes <= kSmall) return std::max<size_t>(512, (bytes + 511) / 512 * 512);
  return (bytes + kLargeUnit - 1) / kLargeUnit * kLargeUnit;
}

#if defined(R1KIT_WITH_CUDA)

CudaCachingAllocator::CudaCachingAllocator(int device_index) : device_index_(device_index) {}

CudaCachingAllocator::~CudaCachingAllocator() {
  // Destructors must not throw: free what we can and ignore errors at shutdown.
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [size, p] : free_) cudaFree(p);
  free_.clear();
}

void* CudaCachingAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  size_t rounded = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  // Reuse a cached block of the same rounded size (or, for small blocks, the next size up
  // within 2x, which bounds waste).
  auto it = free_.lower_bound(rounded);
  if (it != free_.end() && it->first <= rounded * 2 &&
      (it->first == rounded || rounded <= (1 << 20))) {
    void* p = it->second;
    size_t got = it->first;
    free_.erase(it);
    stats_.allocated_bytes += got;
    stats_.num_cache_hits++;
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
    blocks_[p] = got;
    return p;
  }
  R1_CUDA_CHECK(cudaSetDevice(device_index_));
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, rounded);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the sticky-free error state
    for (auto& [size, q] : free_) {
      R1_CUDA_CHECK(cudaFree(q));
      stats_.reserved_bytes -= size;
    }
    free_.clear();
    e = cudaMalloc(&p, rounded);
  }
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    R1_THROW("CUDA out of memory allocating {} bytes on cuda:{} ({} bytes in use)", bytes,
             device_index_, stats_.allocated_bytes);
  }
  R1_CUDA_CHECK(e);
  stats_.allocated_bytes += rounded;
  stats_.reserved_bytes += rounded;
  stats_.num_system_allocs++;
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  blocks_[p] = rounded;
  return p;
}

void CudaCachingAllocator::deallocate(void* p, size_t /*bytes*/) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blocks_.find(p);
  if (it == blocks_.end()) return;  // not ours; nothing sensible to do in a destructor path
  stats_.allocated_bytes -= it->second;
  free_.emplace(it->second, p);
  blocks_.erase(it);
}

void CudaCachingAllocator::release_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [size, p] : free_) {
    R1_CUDA_CHECK(cudaFree(p));
    stats_.reserved_bytes -= size;
  }
  free_.clear();
}

#else

CudaCachingAllocator::CudaCachingAllocator(int device_index) : device_index_(device_index) {
  R1_THROW("CudaCachingAllocator: r1kit was built without CUDA");
}
CudaCachingAllocator::~CudaCachingAllocator() = default;
void* CudaCachingAllocator::allocate(size_t) {
  R1_THROW("CudaCachingAllocator: built without CUDA");
}
void CudaCachingAllocator::deallocate(void*, size_t) {}
void CudaCachingAllocator::release_cache() {}

#endif

AllocatorStats CudaCachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace r1kit
