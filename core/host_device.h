// R1_HOST_DEVICE marks small inline functions shared by the CPU reference and CUDA kernels, so
// both compute the same bits (bf16 rounding, Philox).
#pragma once

#if defined(__CUDACC__)
#define R1_HOST_DEVICE __host__ __device__
#else
#define R1_HOST_DEVICE
#endif
