// CUDA error checking. Every CUDA runtime call goes through R1_CUDA_CHECK and every kernel launch
// is followed by R1_CUDA_CHECK_LAUNCH(), so failures surface at the call that caused them.
#pragma once

#include <cstddef>

#include "core/error.h"

#if defined(R1KIT_WITH_CUDA)
#include <cuda_runtime.h>

namespace r1kit::detail {
[[noreturn]] void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line);
}

#define R1_CUDA_CHECK(expr)                                                  \
  do {                                                                       \
    cudaError_t r1_err_ = (expr);                                            \
    if (r1_err_ != cudaSuccess) [[unlikely]]                                 \
      ::r1kit::detail::throw_cuda_error(r1_err_, #expr, __FILE__, __LINE__); \
  } while (0)
#define R1_CUDA_CHECK_LAUNCH() R1_CUDA_CHECK(cudaGetLastError())
#endif

namespace r1kit {
// Zero-fills device memory (synchronously); throws when built without CUDA.
void cuda_memset_zero(void* p, size_t bytes);
// Copies between host and device (direction inferred by the driver); throws without CUDA.
void cuda_copy(void* dst, const void* src, size_t bytes);
}  // namespace r1kit
