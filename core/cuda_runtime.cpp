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

void cuda_memset_zero(void* p, size_t bytes) {
  R1_CUDA_CHECK(cudaMemset(p, 0, bytes));
}
void cuda_copy(void* dst, const void* src, size_t bytes) {
  R1_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
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
