// Tensor-core primitives of the attention kernels: mma.sync m16n8k16 with bf16 or f16 operands and
// fp32 accumulators (sm_80 and later), and packing of two floats into one operand register.
//
// Register layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), lane = 4·g + t:
//   A (16 x 16, row major), 4 registers of 2 elements (low half first):
//     a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, 2t+9], a3 = A[g+8][2t+8, 2t+9]
//   B (16 x 8, k x n), 2 registers: b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]
//   C, D (16 x 8, fp32): c0, c1 = C[g][2t, 2t+1], c2, c3 = C[g+8][2t, 2t+1]
// Also the raw (unconverted) shared-tile loader and the quad (4-lane) reductions of the
// tensor-core kernels.
#ifndef R1KIT_KERNELS_CUDA_ATTENTION_MMA_CUH
#define R1KIT_KERNELS_CUDA_ATTENTION_MMA_CUH

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

// Two floats rounded to T (nearest even) in one register, lo in the low half.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t r;
  if constexpr (std::is_same_v<T, bf16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    memcpy(&r, &v, 4);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    memcpy(&r, &v, 4);
  }
  return r;
}

// Two elements of T (already rounded) in one register, lo in the low half.
template <class T>
__device__ __forceinline__ uint32_t pack2_raw(T lo, T hi) {
  uint16_t l, h;
  memcpy(&l, &lo, 2);
  memcpy(&h, &hi, 2);
  return static_cast<uint32_t>(l) | (static_cast<uint32_t>(h) << 16);
}

// Copies rows [0, nr) x columns [0, nc) of a row-pitched global matrix into a ROWS x COLS shared
// tile of the same type (leading dimension COLS + 8), zero elsewhere; vec: 16-byte packs.
template <int ROWS, int COLS, int NT, class T>
__device__ __forceinline__ void load_tile_raw(T* s, const T* g, int64_t stride, int nr, int nc,
                                              bool vec) {
  constexpr int ld = COLS + 8;
  if (vec) {
    constexpr int P = kPack<T>, kChunks = COLS / P;
    for (int idx = static_cast<int>(threadIdx.x); idx < ROWS * kChunks; idx += NT) {
      const int r = idx / kChunks, c = (idx % kChunks) * P;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (r < nr && c < nc) v = *reinterpret_cast<const uint4*>(g + r * stride + c);
      *reinterpret_cast<uint4*>(s + r * ld + c) = v;
    }
  } else {
    for (int idx = static_cast<int>(threadIdx.x); idx < ROWS * COLS; idx += NT) {
      const int r = idx / COLS, c = idx % COLS;
      s[r * ld + c] = (r < nr && c < nc) ? g[r * stride + c] : from_acc<T>(0.0f);
    }
  }
}

template <class A>
__device__ __forceinline__ A quad_sum(A v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v;
}
template <class A>
__device__ __forceinline__ A quad_max(A v) {
  v = max(v, __shfl_xor_sync(0xffffffffu, v, 1));
  v = max(v, __shfl_xor_sync(0xffffffffu, v, 2));
  return v;
}

}  // namespace r1kit::kernels::cuda::attn

#endif  // R1KIT_KERNELS_CUDA_ATTENTION_MMA_CUH
