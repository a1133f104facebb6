// Run-time GPU detection and the few CUDA runtime helpers core needs. Built in every
// configuration; without the CUDA backend the helpers report that clearly.
#include <string>

#include "core/cuda_check.h"
#include "core/device.h"

namespace r1kit {

#if defined(R1KIT_WITH_CUDA)

namespace detail {
void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line) {
  throw Error(fmt::format("CUDA error {} ({}) in `{}` at {}:{}", cudaGetErrorName(e),
                          cudaGetErrorString(e), expr, file, line));
}
}  // namespace detail

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error for a CPU run
    return 0;
  }
  return n;
}

bool cuda_available() {
  return cuda_device_count() > 0;
}

std::string cuda_describe() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fmt::format("no GPU: {}", cudaGetErrorString(e));
  }
  if (n == 0) return "no GPU: the CUDA driver reports 0 devices";
  cudaDeviceProp p{};
  R1_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  return fmt::format("{} GPU(s); cuda:0 {} sm_{}{} {:.1f} GiB", n, p.name, p.major, p.minor,
                     static_cast<double>(p.totalGlobalMem) / (1ull << 30));
}

// Both run on the legacy default stream, which a Context's stream (cudaStreamNonBlocking) does not
// order against: without the device-wide syncs a kernel queued on the Context's stream could run
// before a memset or copy finished (the DMA of a pageable host-to-device cudaMemcpy may still be
// in flight when it returns, a device-to-device one is asynchronous), or the memset could zero a
// recycled block that earlier kernels still read. That race zeroed a bf16 policy's fp32 master
// weights at its first optimizer step on an H200 (GRPO collapsed to a uniform policy). Both are
// rare calls (arena allocation, whole-tensor copies), so the syncs cost nothing that matters.
void cuda_memset_zero(void* p, size_t bytes) {
  R1_CUDA_CHECK(cudaDeviceSynchronize());
  R1_CUDA_CHECK(cudaMemset(p, 0, bytes));
  R1_CUDA_CHECK(cudaDeviceSynchronize());
}
void cuda_copy(void* dst, const void* src, size_t bytes) {
  R1_CUDA_CHECK(cudaDeviceSynchronize());
  R1_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
  R1_CUDA_CHECK(cudaDeviceSynchronize());
}

#else

int cuda_device_count() {
  return 0;
}
bool cuda_available() {
  return false;
}
std::string cuda_describe() {
  return "no GPU: r1kit was built without CUDA (nvcc not found)";
}
void cuda_memset_zero(void*, size_t) {
  R1_THROW("cuda_memset_zero: r1kit was built without CUDA");
}
void cuda_copy(void*, const void*, size_t) {
  R1_THROW("cuda_copy: r1kit was built without CUDA");
}

#endif

}  // namespace r1kit
