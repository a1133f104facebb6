// Context construction for CPU and CUDA, tensor creation and copies.
#include "core/context.h"

#include <cstring>
#include <new>

#include "core/cuda_check.h"

namespace r1kit {

std::unique_ptr<Context> Context::cpu(const ContextOptions& opts) {
  std::unique_ptr<Context> c(new Context());
  c->device_ = Device::cpu();
  c->pool_ = std::make_unique<ThreadPool>(opts.threads);
  c->alloc_ = &c->host_alloc_;
  c->seed_ = opts.seed;
  return c;
}

std::unique_ptr<Context> Context::cuda(const ContextOptions& opts) {
#if defined(R1KIT_WITH_CUDA)
  int n = cuda_device_count();
  R1_CHECK(n > 0, "cannot create a CUDA context: {}", cuda_describe());
  R1_CHECK(opts.device_index >= 0 && opts.device_index < n,
           "cannot create a CUDA context on cuda:{}: {} device(s) present", opts.device_index, n);
  std::unique_ptr<Context> c(new Context());
  c->device_ = Device::cuda(opts.device_index);
  R1_CUDA_CHECK(cudaSetDevice(opts.device_index));
  cudaStream_t s;
  R1_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  c->stream_ = s;
  c->pool_ = std::make_unique<ThreadPool>(opts.threads);
  c->device_alloc_ = std::make_unique<CudaCachingAllocator>(opts.device_index);
  c->alloc_ = c->device_alloc_.get();
  c->seed_ = opts.seed;
  // The record lives in device memory (device atomics are exact there; atomics on mapped host
  // memory are not guaranteed over PCIe) and is read back into a pinned mirror at each check.
  void* host = nullptr;
  R1_CUDA_CHECK(cudaMallocHost(&host, sizeof(DeviceErrorRecord)));
  c->dev_err_host_ = new (host) DeviceErrorRecord();
  void* dev = nullptr;
  R1_CUDA_CHECK(cudaMalloc(&dev, sizeof(DeviceErrorRecord)));
  R1_CUDA_CHECK(cudaMemset(dev, 0, sizeof(DeviceErrorRecord)));
  c->dev_err_device_ = static_cast<DeviceErrorRecord*>(dev);
  return c;
#else
  (void)opts;
  R1_THROW(
      "cannot create a CUDA context: r1kit was built without CUDA (nvcc was not found at "
      "configure time)");
#endif
}

std::unique_ptr<Context> Context::best_available(const ContextOptions& opts) {
  return cuda_available() ? cuda(opts) : cpu(opts);
}

Context::~Context() {
#if defined(R1KIT_WITH_CUDA)
  if (stream_) cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
#endif
  for (auto& b : backend_)
    if (b.ptr && b.deleter) b.deleter(b.ptr);
#if defined(R1KIT_WITH_CUDA)
  if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
  if (dev_err_device_) cudaFree(dev_err_device_);
  if (dev_err_host_) cudaFreeHost(dev_err_host_);
#endif
}

void Context::set_backend_state(BackendSlot s, void* p, void (*deleter)(void*)) {
  auto& b = backend_[static_cast<int>(s)];
  if (b.ptr && b.deleter) b.deleter(b.ptr);
  b.ptr = p;
  b.deleter = deleter;
}

void Context::check_device_errors() {
  if (!dev_err_device_) return;
#if defined(R1KIT_WITH_CUDA)
  auto st = static_cast<cudaStream_t>(stream_);
  R1_CUDA_CHECK(cudaMemcpyAsync(dev_err_host_, dev_err_device_, sizeof(DeviceErrorRecord),
                                cudaMemcpyDeviceToHost, st));
  R1_CUDA_CHECK(cudaStreamSynchronize(st));
  const DeviceErrorRecord r = *dev_err_host_;
  if (r.flag == 0) return;
  R1_CUDA_CHECK(cudaMemsetAsync(dev_err_device_, 0, sizeof(DeviceErrorRecord), st));
  R1_CUDA_CHECK(cudaStreamSynchronize(st));
  const char* what = r.what ? r.what : "[cuda] a kernel reported an error ({}, {}, {})";
  throw Error(fmt::format(fmt::runtime(what), r.a, r.b, r.c));
#endif
}

Tensor Context::empty(const Shape& shape, DType dtype, std::string name) {
  return Tensor(shape, dtype, *alloc_, std::move(name));
}

Tensor Context::zeros(const Shape& shape, DType dtype, std::string name) {
  Tensor t(shape, dtype, *alloc_, std::move(name));
  if (t.nbytes() == 0) return t;
  if (device_.is_cpu()) {
    std::memset(t.data(), 0, t.nbytes());
  } else {
#if defined(R1KIT_WITH_CUDA)
    R1_CUDA_CHECK(cudaMemsetAsync(t.data(), 0, t.nbytes(), static_cast<cudaStream_t>(stream_)));
#endif
  }
  return t;
}

void Context::copy(const TensorView& dst, const TensorView& src) {
  R1_CHECK(dst.dtype == src.dtype && dst.numel() == src.numel(),
           "[copy] dst {} and src {} differ in dtype or element count", dst.describe(),
           src.describe());
  R1_CHECK(dst.is_contiguous() && src.is_contiguous(), "[copy] needs contiguous tensors: {} <- {}",
           dst.describe(), src.describe());
  if (dst.nbytes() == 0) return;
  if (dst.device.is_cpu() && src.device.is_cpu()) {
    std::memmove(dst.data, src.data, dst.nbytes());
    return;
  }
#if defined(R1KIT_WITH_CUDA)
  R1_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, dst.nbytes(), cudaMemcpyDefault,
                                static_cast<cudaStream_t>(stream_)));
  R1_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
  check_device_errors();
#else
  R1_THROW("[copy] CUDA tensor in a build without CUDA");
#endif
}

void Context::copy_on_device(const TensorView& dst, const TensorView& src) {
  R1_CHECK(dst.dtype == src.dtype && dst.numel() == src.numel(),
           "[copy_on_device] dst {} and src {} differ in dtype or element count", dst.describe(),
           src.describe());
  R1_CHECK(dst.is_contiguous() && src.is_contiguous(),
           "[copy_on_device] needs contiguous tensors: {} <- {}", dst.describe(), src.describe());
  R1_CHECK(dst.device == device_ && src.device == device_,
           "[copy_on_device] both tensors must be on the context's device: {} <- {}",
           dst.describe(), src.describe());
  if (dst.nbytes() == 0) return;
  if (device_.is_cpu()) {
    std::memmove(dst.data, src.data, dst.nbytes());
    return;
  }
#if defined(R1KIT_WITH_CUDA)
  R1_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, dst.nbytes(), cudaMemcpyDeviceToDevice,
                                static_cast<cudaStream_t>(stream_)));
#else
  R1_THROW("[copy_on_device] CUDA tensor in a build without CUDA");
#endif
}

CudaGraph::~CudaGraph() {
#if defined(R1KIT_WITH_CUDA)
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
#endif
}

CudaGraph& CudaGraph::operator=(CudaGraph&& o) noexcept {
  if (this != &o) {
    CudaGraph dead(std::move(*this));
    exec_ = o.exec_;
    o.exec_ = nullptr;
  }
  return *this;
}

void CudaGraph::replay(Context& ctx) const {
  R1_CHECK(exec_ && ctx.is_cuda(), "[cuda_graph] replay of an empty graph or on a CPU context");
#if defined(R1KIT_WITH_CUDA)
  R1_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_),
                                static_cast<cudaStream_t>(ctx.stream())));
#endif
}

void Context::begin_capture() {
  R1_CHECK(is_cuda(), "[cuda_graph] capture needs a CUDA context");
  R1_CHECK(!capturing_, "[cuda_graph] a capture is already in progress");
#if defined(R1KIT_WITH_CUDA)
  if (!graph_alloc_) graph_alloc_ = std::make_unique<CudaCachingAllocator>(device_.index);
  R1_CUDA_CHECK(
      cudaStreamBeginCapture(static_cast<cudaStream_t>(stream_), cudaStreamCaptureModeRelaxed));
  capturing_ = true;
  alloc_ = graph_alloc_.get();
#endif
}

CudaGraph Context::end_capture() {
  R1_CHECK(capturing_, "[cuda_graph] end_capture without begin_capture");
  CudaGraph g;
#if defined(R1KIT_WITH_CUDA)
  capturing_ = false;
  alloc_ = device_alloc_.get();
  cudaGraph_t graph = nullptr;
  const cudaError_t e = cudaStreamEndCapture(static_cast<cudaStream_t>(stream_), &graph);
  if (e != cudaSuccess || graph == nullptr) {
    (void)cudaGetLastError();  // clear the sticky capture error
    if (graph) cudaGraphDestroy(graph);
    R1_THROW("[cuda_graph] capture failed: {}", cudaGetErrorString(e));
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t ie = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (ie != cudaSuccess) {
    (void)cudaGetLastError();
    R1_THROW("[cuda_graph] instantiation failed: {}", cudaGetErrorString(ie));
  }
  g.exec_ = exec;
#endif
  return g;
}

void Context::synchronize() {
#if defined(R1KIT_WITH_CUDA)
  if (stream_) R1_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
#endif
  check_device_errors();
}

}  // namespace r1kit
