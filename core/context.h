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

// A data-dependent error found by a CUDA kernel (an id out of range, a NaN logit): kernels cannot
// throw, so the first failing thread records it here and the host throws at the next
// synchronisation point (Context::synchronize, a copy to the host). `what` is a host string literal
// with up to three "{}" placeholders for a, b, c, e.g. "[embedding] id {} at position {} is outside
// [0, {})"; the kernel receives the pointer as an opaque value and stores it back.
struct DeviceErrorRecord {
  int32_t flag = 0;  // 0: no error; set once by atomicCAS
  int32_t pad = 0;
  const char* what = nullptr;
  int64_t a = 0, b = 0, c = 0;
};

// Per-context state a backend creates on first use (the cuBLASLt handle and its workspace) and
// that dies with the context: one slot per kind, no globals.
enum class BackendSlot : int { blas = 0, kCount };

struct ContextOptions {
  int threads = 0;    // CPU worker threads; 0 = hardware concurrency
  uint64_t seed = 0;  // Philox key for everything random in this context
  int device_index = 0;
};

class Context;

// An instantiated CUDA graph (Context::end_capture): replays the captured stream work. Move-only;
// empty when default-constructed or on a CPU context.
class CudaGraph {
 public:
  CudaGraph() = default;
  ~CudaGraph();
  CudaGraph(CudaGraph&& o) noexcept : exec_(o.exec_) { o.exec_ = nullptr; }
  CudaGraph& operator=(CudaGraph&& o) noexcept;
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;
  bool empty() const { return exec_ == nullptr; }
  // Queues the captured work on ctx's stream (the context it was captured on).
  void replay(Context& ctx) const;

 private:
  friend class Context;
  void* exec_ = nullptr;  // cudaGraphExec_t
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
  // The same between two tensors both on this context's device, ordered on its stream without a
  // host sync (any dtype; contiguous; equal byte counts).
  void copy_on_device(const TensorView& dst, const TensorView& src);
  // Waits for all work queued on the stream (no-op on CPU), then throws the first data-dependent
  // error a kernel recorded since the last check (DeviceErrorRecord).
  void synchronize();

  // CUDA graphs (CUDA contexts only). begin_capture() starts recording the work queued on the
  // stream instead of running it (cudaStreamCaptureModeRelaxed); until end_capture(), tensors made
  // by empty()/zeros() come from a separate caching pool that only captured work uses, so memory a
  // graph touches is never handed to tensors outside graphs (a training step's, say) that could be
  // live while it replays. Graphs share that pool with each other: replays are ordered on the
  // stream, so a graph's outputs must be read (copied out) before another graph is replayed, and
  // its inputs written just before its own replay. end_capture() instantiates the graph; on a
  // failure (an op that cannot be captured, such as a copy that synchronises) it ends the capture,
  // restores the allocator and throws. Captured work does not run: replay the graph.
  void begin_capture();
  CudaGraph end_capture();
  bool capturing() const { return capturing_; }

  // Device pointer to this context's error record (CUDA contexts; nullptr on CPU). Kernels that
  // validate data on the device write the first failure there.
  DeviceErrorRecord* device_error_record() const { return dev_err_device_; }
  // Reads the record back (a small copy on the stream, then a stream sync) and throws (and clears)
  // a recorded device error.
  void check_device_errors();

  // Backend state: nullptr until set. set_backend_state takes ownership (deleter runs in the
  // destructor after the stream is drained, before the allocator goes).
  void* backend_state(BackendSlot s) const { return backend_[static_cast<int>(s)].ptr; }
  void set_backend_state(BackendSlot s, void* p, void (*deleter)(void*));

 private:
  Context() = default;
  Device device_;
  void* stream_ = nullptr;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Allocator> device_alloc_;
  std::unique_ptr<Allocator> graph_alloc_;  // the captured work's pool (CUDA graphs)
  bool capturing_ = false;
  CpuAllocator host_alloc_;
  Allocator* alloc_ = nullptr;
  uint64_t seed_ = 0;
  [[maybe_unused]] DeviceErrorRecord* dev_err_host_ =
      nullptr;                                   // pinned host mirror (CUDA contexts)
  DeviceErrorRecord* dev_err_device_ = nullptr;  // the record kernels write, in device memory
  struct BackendState {
    void* ptr = nullptr;
    void (*deleter)(void*) = nullptr;
  };
  BackendState backend_[static_cast<int>(BackendSlot::kCount)];
};

}  // namespace r1kit
