// Building blocks of the tensor-core attention kernels (attention_tc_fwd.cu, attention_tc_bwd.cu):
// warp-level 16-row products on shared tiles through ldmatrix + mma.sync (attention_ptx.cuh has
// the instructions and their register layouts), an asynchronous (cp.async) shared-tile loader,
// operand packing and quad reductions.
//
// Shared tiles hold bf16 / f16 as stored, rows of COLS + 8 elements: every ldmatrix row address
// is 16-byte aligned and the 8 rows of one 8 x 8 matrix fall in 8 different 16-byte bank groups
// (the row pitch is 16 bytes more than a multiple of 128), so the loads are conflict-free.
#pragma once

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/attention_ptx.cuh"

namespace r1kit::kernels::cuda::attn {

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

// Starts copying rows [0, nr) x columns [0, nc) of a row-pitched global matrix into a ROWS x COLS
// shared tile of the same type (leading dimension COLS + 8), zero elsewhere. vec (g and the stride
// 16-byte aligned, nc a multiple of 8): cp.async, complete after the caller's commit + wait;
// otherwise plain element copies, complete on return. Either way a barrier must follow before
// other threads read the tile.
template <int ROWS, int COLS, int NT, class T>
__device__ __forceinline__ void load_tile_async(T* s, const T* g, int64_t stride, int nr, int nc,
                                                bool vec) {
  constexpr int ld = COLS + 8;
  if (vec) {
    constexpr int P = kPack<T>, kChunks = COLS / P;
    static_assert(P == 8 && COLS % P == 0, "16-bit tiles in 16-byte chunks");
    for (int idx = static_cast<int>(threadIdx.x); idx < ROWS * kChunks; idx += NT) {
      const int r = idx / kChunks, c = (idx % kChunks) * P;
      const bool ok = r < nr && c < nc;
      cp_async16(s + r * ld + c, ok ? g + r * stride + c : g, ok);
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

template <int N>
__device__ __forceinline__ void zero(float (&acc)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.f;
}

// acc[n] (16 x 8 tiles, n < N / 8) += A · B over k < K, where A is the 16 rows of shared tile a
// starting at a (row pitch lda) and B[k][n] = b[n][k] for the N rows of shared tile b (pitch ldb):
// A through ldmatrix, B through ldmatrix of two n-tiles at a time (b's rows are B's columns).
template <int N, int K, class T>
__device__ __forceinline__ void mma_nt(float (&acc)[N / 8][4], const T* a, int lda, const T* b,
                                       int ldb, int lane) {
  static_assert(N % 16 == 0 && K % 16 == 0, "tile sizes");
  // Matrix j = lane / 8 of A: rows 8·(j % 2) + lane % 8, columns 8·(j / 2) (a0, a1, a2, a3).
  const T* ap = a + ((lane % 8) + ((lane / 8) % 2) * 8) * lda + (lane / 16) * 8;
  // Matrix j of B's pair: rows (n-tile) 8·(j / 2) + lane % 8, columns (k) 8·(j % 2) (b0, b1 of
  // the first n-tile, then of the second).
  const T* bp = b + ((lane % 8) + (lane / 16) * 8) * ldb + ((lane / 8) % 2) * 8;
#pragma unroll 4
  for (int kc = 0; kc < K / 16; ++kc) {
    uint32_t fa[4];
    ldsm_x4(fa, ap + kc * 16);
#pragma unroll
    for (int np = 0; np < N / 16; ++np) {
      uint32_t fb[4];
      ldsm_x4(fb, bp + np * 16 * ldb + kc * 16);
      const uint32_t b0[2] = {fb[0], fb[1]}, b1[2] = {fb[2], fb[3]};
      mma_16816<T>(acc[2 * np], fa, b0);
      mma_16816<T>(acc[2 * np + 1], fa, b1);
    }
  }
}

// acc[n] (n < N / 8) += R · B, where R (16 x K) is given as register tiles r[0 .. K / 8) in the
// accumulator layout — rounded to T here; two accumulator tiles are one A operand — and B[k][n] =
// b[k][n] of shared tile b (pitch ldb), through transposing ldmatrix of two n-tiles at a time.
template <int N, int K, class T>
__device__ __forceinline__ void mma_rn(float (&acc)[N / 8][4], const float (&r)[K / 8][4],
                                       const T* b, int ldb, int lane) {
  static_assert(N % 16 == 0 && K % 16 == 0, "tile sizes");
  // Matrix j: rows (k) 8·(j % 2) + lane % 8, columns (n) 8·(j / 2).
  const T* bp = b + ((lane % 8) + ((lane / 8) % 2) * 8) * ldb + (lane / 16) * 8;
#pragma unroll
  for (int c = 0; c < K / 16; ++c) {
    const uint32_t fa[4] = {pack2<T>(r[2 * c][0], r[2 * c][1]), pack2<T>(r[2 * c][2], r[2 * c][3]),
                            pack2<T>(r[2 * c + 1][0], r[2 * c + 1][1]),
                            pack2<T>(r[2 * c + 1][2], r[2 * c + 1][3])};
#pragma unroll
    for (int np = 0; np < N / 16; ++np) {
      uint32_t fb[4];
      ldsm_x4_trans(fb, bp + c * 16 * ldb + np * 16);
      const uint32_t b0[2] = {fb[0], fb[1]}, b1[2] = {fb[2], fb[3]};
      mma_16816<T>(acc[2 * np], fa, b0);
      mma_16816<T>(acc[2 * np + 1], fa, b1);
    }
  }
}

// Rows r0 and r0 + 8 of a warp's accumulator tiles (row r0 + 8i times mul[i]) to a (T, H, D)
// view: the block's tile starts at token t0; rows >= nr and columns >= nc are not written.
// tg = lane % 4.
template <int N, class T>
__device__ __forceinline__ void store_acc(const HeadView<T>& dst, int64_t t0, int h, int r0, int nr,
                                          int nc, const float (&acc)[N][4], const float (&mul)[2],
                                          int tg) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = r0 + r * 8;
    if (row >= nr) continue;
    T* out = dst.row(t0 + row, h);
#pragma unroll
    for (int n = 0; n < N; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int col = n * 8 + tg * 2 + e;
        if (col < nc) out[col] = from_acc<T>(acc[n][r * 2 + e] * mul[r]);
      }
  }
}

}  // namespace r1kit::kernels::cuda::attn
