// The PTX instructions of the tensor-core attention kernels (sm_80 and later), one thin wrapper
// each: mma.sync m16n8k16 (bf16 / f16 operands, fp32 accumulators), ldmatrix (x4, plain and
// transposed) and cp.async (16 bytes, zero-fill, commit / wait). Classic include guard rather than
// #pragma once, so a host-side emulation of exactly these wrappers can stand in for this header.
//
// Register layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), lane = 4·g + t:
//   A (16 x 16, row major), 4 registers of 2 elements (low half first):
//     a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, 2t+9], a3 = A[g+8][2t+8, 2t+9]
//   B (16 x 8, k x n), 2 registers: b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]
//   C, D (16 x 8, fp32): c0, c1 = C[g][2t, 2t+1], c2, c3 = C[g+8][2t, 2t+1]
// ldmatrix .x4: lanes 8j .. 8j+7 give the row addresses (16 bytes each) of 8 x 8 matrix j; register
// j of lane L receives M_j[L/4][2(L%4), 2(L%4)+1], or with .trans M_j[2(L%4), 2(L%4)+1][L/4].
#ifndef R1KIT_KERNELS_CUDA_ATTENTION_PTX_CUH
#define R1KIT_KERNELS_CUDA_ATTENTION_PTX_CUH

#include "kernels/cuda/common.cuh"

namespace r1kit::kernels::cuda::attn {

// d += a · b for one 16 x 8 x 16 tile; T is bf16 or f16.
template <class T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4],
                                          const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, bf16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

// Four 8 x 8 matrices of 16-bit elements from shared memory; p: this lane's row address.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  const auto a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
  const auto a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// 16 bytes global -> shared without a register round trip; !valid writes 16 zero bytes (and
// reads nothing from g). Both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async16(void* s, const void* g, bool valid) {
  const auto a = static_cast<uint32_t>(__cvta_generic_to_shared(s));
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(g), "r"(n));
}
// Closes this thread's group of cp.async copies issued since the last commit (maybe none).
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
// Waits until at most N of this thread's committed groups are still in flight. The memory
// clobber keeps the compiler from moving shared-memory accesses across the wait.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace r1kit::kernels::cuda::attn

#endif  // R1KIT_KERNELS_CUDA_ATTENTION_PTX_CUH
