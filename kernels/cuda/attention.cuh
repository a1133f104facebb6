// Shared pieces of the tiled attention kernels (kernels/cuda/attention_fwd.cu,
// attention_bwd_dkdv.cu, attention_bwd_dq.cu, attention_tc_*.cu; host side in attention.cu):
// parameters, tile lists, tile shapes per head-dim bucket, and the CUDA-core building blocks — a
// global -> shared tile loader and two register-blocked products on shared-memory tiles.
//
// Layout of every kernel: 256 threads as a 16 x 16 grid (ty = tid / 16, tx = tid % 16). A block
// owns one tile of rows of one sequence and one head; tiles never straddle sequences. Shared tiles
// hold the operands converted to the accumulator type A (float, double for f64), rows padded by 16
// bytes so the 16-byte reads of both products are free of bank conflicts. Head dims are templated
// on a bucket (64, 128, 192, 256); the columns past the real dim are zero in shared memory, so
// every dot product over the bucket equals the one over the real dim.
#pragma once

#include <cmath>

#include "kernels/cuda/common.cuh"

namespace r1kit::kernels::cuda::attn {

constexpr int kThreads = 256;
// Dynamic shared memory per block: under the 163 KiB an sm_80 block may use (227 KiB on sm_90).
constexpr size_t kSmemBudget = 160 * 1024;
constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

// Row padding of shared tiles, in elements (16 bytes).
template <class A>
inline constexpr int kPad = 16 / static_cast<int>(sizeof(A));

// One tile of rows [row0, row0 + tile) of the sequence starting at token seq_start (rows are
// relative to the sequence; the last tile of a sequence is partial).
struct Tile {
  int32_t seq_start, seq_len, row0, unused;
};

// A (T, H, D) view: element pointer, token and head strides (unit stride in D), and whether every
// row can be read in 16-byte packs.
template <class T>
struct HeadView {
  T* p = nullptr;
  int64_t s0 = 0, s1 = 0;
  bool vec = false;
  __device__ T* row(int64_t t, int h) const { return p + t * s0 + static_cast<int64_t>(h) * s1; }
};

template <class T>
struct AttnParams {
  using A = acc_t<T>;
  HeadView<const T> q, k, v, out, dout;  // inputs (out, dout: backward)
  HeadView<T> o, dq, dk, dv;             // outputs
  A* lse_out = nullptr;                  // (Hq, T), forward
  const A* lse = nullptr;                // (Hq, T), backward
  A* dd_out = nullptr;                   // D = Σ dout·out (Hq, T), backward scratch
  const A* dd = nullptr;
  const Tile* tiles = nullptr;
  int64_t t = 0;  // packed tokens
  int hq = 0, hkv = 0, group = 0, dqk = 0, dvd = 0;
  A scale = 0, scale_log2 = 0;  // scale and scale·log2(e) (exponentials are base 2)
};

// ---- tile shapes -------------------------------------------------------------------------------

struct TileShape {
  int bm, bn;  // query rows, key rows
};

// Candidates, largest first; the first that fits kSmemBudget is used.
inline constexpr TileShape kFwdCands[] = {{64, 64}, {64, 32}, {32, 32}, {32, 16}, {16, 16}};
inline constexpr TileShape kDkdvCands[] = {{64, 64}, {32, 64}, {32, 32}, {16, 32}, {16, 16}};
inline constexpr TileShape kDqCands[] = {{64, 64}, {64, 32}, {32, 32}, {32, 16}, {16, 16}};

// Shared memory (elements of A) of each kernel for a tile shape.
template <class A, int KD, int VD>
constexpr size_t fwd_smem_elems(TileShape s) {
  constexpr int p = kPad<A>;
  // Q (bm x KD), K (bn x KD), V (bn x VD), P (bm x bn)
  return static_cast<size_t>(s.bm * (KD + p) + s.bn * (KD + p) + s.bn * (VD + p) +
                             s.bm * (s.bn + p));
}
template <class A, int KD, int VD>
constexpr size_t dkdv_smem_elems(TileShape s) {
  constexpr int p = kPad<A>;
  // K, V (bn rows), Q, dO (bm rows), Pᵀ and dSᵀ (bn x bm), lse and D (bm)
  return static_cast<size_t>(s.bn * (KD + p) + s.bn * (VD + p) + s.bm * (KD + p) + s.bm * (VD + p) +
                             2 * s.bn * (s.bm + p) + 2 * s.bm);
}
template <class A, int KD, int VD>
constexpr size_t dq_smem_elems(TileShape s) {
  constexpr int p = kPad<A>;
  // Q, dO (bm rows), K, V (bn rows), dS (bm x bn)
  return static_cast<size_t>(s.bm * (KD + p) + s.bm * (VD + p) + s.bn * (KD + p) + s.bn * (VD + p) +
                             s.bm * (s.bn + p));
}

template <class A, int KD, int VD>
struct Shapes {
  static constexpr TileShape pick(int kernel) {
    const TileShape* c = kernel == 0 ? kFwdCands : kernel == 1 ? kDkdvCands : kDqCands;
    for (int i = 0; i < 5; ++i) {
      const size_t e = kernel == 0   ? fwd_smem_elems<A, KD, VD>(c[i])
                       : kernel == 1 ? dkdv_smem_elems<A, KD, VD>(c[i])
                                     : dq_smem_elems<A, KD, VD>(c[i]);
      if (e * sizeof(A) <= kSmemBudget) return c[i];
    }
    return c[4];
  }
  static constexpr TileShape fwd = pick(0), dkdv = pick(1), dq = pick(2);
  static constexpr size_t fwd_bytes = fwd_smem_elems<A, KD, VD>(fwd) * sizeof(A);
  static constexpr size_t dkdv_bytes = dkdv_smem_elems<A, KD, VD>(dkdv) * sizeof(A);
  static constexpr size_t dq_bytes = dq_smem_elems<A, KD, VD>(dq) * sizeof(A);
  static_assert(fwd_bytes <= kSmemBudget && dkdv_bytes <= kSmemBudget && dq_bytes <= kSmemBudget,
                "attention tile does not fit in shared memory");
};

// ---- launchers (attention_fwd.cu, attention_bwd_*.cu); blocks = tiles x heads ------------------

template <class T, int KD, int VD>
void launch_fwd(const AttnParams<T>& p, int64_t n_tiles, cudaStream_t stream);
template <class T, int KD, int VD>
void launch_bwd_dkdv(const AttnParams<T>& p, int64_t n_tiles, cudaStream_t stream);
template <class T, int KD, int VD>
void launch_bwd_dq(const AttnParams<T>& p, int64_t n_tiles, cudaStream_t stream);

// Tensor-core forward (bf16 / f16; attention_tc_fwd.cu): 4 warps, 64 query rows; Q and two
// stages of K + V (BN keys) in shared memory as stored, rows padded by 8 elements. BN = 64 where
// that fits the budget, else 32 (the 256 bucket).
constexpr int kTcThreads = 128, kTcBM = 64;
constexpr size_t tc_fwd_smem_bytes(int kd, int vd, int bn) {
  return static_cast<size_t>(kTcBM * (kd + 8) + 2 * bn * (kd + 8 + vd + 8)) * 2;
}
constexpr int tc_fwd_bn(int kd, int vd) {
  return tc_fwd_smem_bytes(kd, vd, 64) <= kSmemBudget ? 64 : 32;
}
static_assert(tc_fwd_smem_bytes(256, 256, tc_fwd_bn(256, 256)) <= kSmemBudget);
template <class T, int KD, int VD>
void launch_fwd_tc(const AttnParams<T>& p, int64_t n_tiles, cudaStream_t stream);

// Tensor-core backward (bf16 / f16, buckets up to 192/128; attention_tc_bwd.cu): dk/dv blocks of
// 64 keys stepping over 32 queries (two stages of Q, dO, lse, D), dq blocks of 64 queries (kTcBM)
// stepping over 32 keys (two stages of K, V).
constexpr int kTcBwdKeys = 64, kTcBwdQueries = 32, kTcDqKeys = 32;
constexpr size_t tc_dkdv_smem_bytes(int kd, int vd) {
  return static_cast<size_t>(kTcBwdKeys + 2 * kTcBwdQueries) * (kd + vd + 16) * 2 +
         2 * 2 * kTcBwdQueries * sizeof(float);
}
constexpr size_t tc_dq_smem_bytes(int kd, int vd) {
  return static_cast<size_t>(kTcBM + 2 * kTcDqKeys) * (kd + vd + 16) * 2;
}
static_assert(tc_dkdv_smem_bytes(192, 128) <= kSmemBudget &&
              tc_dq_smem_bytes(192, 128) <= kSmemBudget);
// Launches the dk/dv kernel over key_tiles (kTcBwdKeys rows each) and the dq kernel over
// query_tiles (kTcBM rows each); D must be in p.dd.
template <class T, int KD, int VD>
void launch_bwd_tc(const AttnParams<T>& p, const Tile* key_tiles, int64_t n_key_tiles,
                   const Tile* query_tiles, int64_t n_query_tiles, cudaStream_t stream);

// The head-dim buckets compiled, X(T, KD, VD): (Dqk, Dv) runs on the first
// pair that holds both (attention.cu: pick_bucket).
#define R1_ATTN_FOR_EACH_BUCKET(X, T) X(T, 64, 64) X(T, 128, 128) X(T, 192, 128) X(T, 256, 256)

// ---- device building blocks
// ----------------------------------------------------------------------

template <class A>
struct alignas(16) V4 {
  A v[4];
};

__device__ __forceinline__ float ex2(float x) {
  return exp2f(x);
}
__device__ __forceinline__ double ex2(double x) {
  return exp2(x);
}
__device__ __forceinline__ float lg2(float x) {
  return log2f(x);
}
__device__ __forceinline__ double lg2(double x) {
  return log2(x);
}

// Sum / max over the 16 lanes of a half-warp (the 16 tx threads of one ty). The xor butterfly
// gives every lane bit-identical results (each step adds the same two values on both lanes).
template <class A>
__device__ __forceinline__ A half_warp_sum(A v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class A>
__device__ __forceinline__ A half_warp_max(A v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Copies rows [0, nr) x columns [0, nc) of a row-pitched global matrix g (row stride in elements)
// into a ROWS x COLS shared tile s with leading dimension COLS + kPad<A>, converted to A; every
// other element of the tile is zero. vec: 16-byte packs (g and the stride 16-byte aligned,
// nc a multiple of the pack). Call from all threads; no barrier inside.
template <int ROWS, int COLS, class T, class A>
__device__ __forceinline__ void load_tile(A* s, const T* g, int64_t stride, int nr, int nc,
                                          bool vec) {
  constexpr int ld = COLS + kPad<A>;
  if (vec) {
    constexpr int P = kPack<T>;
    constexpr int kChunks = COLS / P;
    static_assert(COLS % P == 0, "tile width must be a multiple of the pack");
    for (int idx = threadIdx.x; idx < ROWS * kChunks; idx += kThreads) {
      const int r = idx / kChunks, c = (idx % kChunks) * P;
      A vals[P];
      if (r < nr && c < nc) {
        const Pack<T> pk = load_pack(g + r * stride + c);
#pragma unroll
        for (int e = 0; e < P; ++e) vals[e] = to_acc(pk.v[e]);
      } else {
#pragma unroll
        for (int e = 0; e < P; ++e) vals[e] = A(0);
      }
      A* dst = s + r * ld + c;
      if constexpr (P % 4 == 0) {
#pragma unroll
        for (int e = 0; e < P; e += 4)
          *reinterpret_cast<V4<A>*>(dst + e) =
              V4<A>{{vals[e], vals[e + 1], vals[e + 2], vals[e + 3]}};
      } else {
#pragma unroll
        for (int e = 0; e < P; ++e) dst[e] = vals[e];
      }
    }
  } else {
    for (int idx = threadIdx.x; idx < ROWS * COLS; idx += kThreads) {
      const int r = idx / COLS, c = idx % COLS;
      s[r * ld + c] = (r < nr && c < nc) ? to_acc(g[r * stride + c]) : A(0);
    }
  }
}

// "NT" product: acc[i][j] += Σ_{d < K} a[ty·RM + i][d] · b[tx + 16·j][d] for shared tiles a and b
// whose rows are K + kPad<A> long. Thread (ty, tx) owns rows ty·RM .. ty·RM + RM − 1 and the
// columns tx, tx + 16, ... (strided, so the 16 lanes read 16 different b rows: conflict-free).
template <int RM, int CN, int K, class A>
__device__ __forceinline__ void mm_nt(A (&acc)[RM][CN], const A* a, const A* b, int ty, int tx) {
  constexpr int ld = K + kPad<A>;
  static_assert(K % 4 == 0, "reduction length must be a multiple of 4");
#pragma unroll 2
  for (int d = 0; d < K; d += 4) {
    V4<A> av[RM], bv[CN];
#pragma unroll
    for (int i = 0; i < RM; ++i)
      av[i] = *reinterpret_cast<const V4<A>*>(a + (ty * RM + i) * ld + d);
#pragma unroll
    for (int j = 0; j < CN; ++j)
      bv[j] = *reinterpret_cast<const V4<A>*>(b + (tx + 16 * j) * ld + d);
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < CN; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j] = fma(av[i].v[e], bv[j].v[e], acc[i][j]);
  }
}

// "NN" product: acc[i][4·c + e] += Σ_{j < J} p[ty·RM + i][j] · b[j][tx·4 + 64·c + e] for a shared
// tile p with rows J + kPad<A> long and a shared tile b with rows N + kPad<A> long. Thread (ty, tx)
// owns rows ty·RM .. and the column quads tx·4 + 64·c (c < N / 64): the 16 lanes read one b row in
// consecutive 16-byte pieces.
template <int RM, int J, int N, class A>
__device__ __forceinline__ void mm_nn(A (&acc)[RM][N / 16], const A* p, const A* b, int ty,
                                      int tx) {
  constexpr int ldp = J + kPad<A>, ldb = N + kPad<A>, NC = N / 64;
  static_assert(J % 4 == 0 && N % 64 == 0, "tile sizes");
#pragma unroll 1
  for (int j = 0; j < J; j += 4) {
    V4<A> pv[RM];
#pragma unroll
    for (int i = 0; i < RM; ++i)
      pv[i] = *reinterpret_cast<const V4<A>*>(p + (ty * RM + i) * ldp + j);
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) {
#pragma unroll
      for (int c = 0; c < NC; ++c) {
        const V4<A> bv = *reinterpret_cast<const V4<A>*>(b + (j + jj) * ldb + tx * 4 + 64 * c);
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            acc[i][4 * c + e] = fma(pv[i].v[jj], bv.v[e], acc[i][4 * c + e]);
      }
    }
  }
}

// Writes a thread's mm_nn-layout accumulator rows, row i times mul[i], to a (T, H, D) view:
// rows [0, nr) of the tile starting at token t0, head h, columns [0, nc).
template <int RM, int N, class T, class A>
__device__ __forceinline__ void store_rows(const HeadView<T>& dst, int64_t t0, int h, int nr,
                                           int nc, const A (&acc)[RM][N / 16], const A (&mul)[RM],
                                           int ty, int tx) {
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int r = ty * RM + i;
    if (r >= nr) continue;
    T* out = dst.row(t0 + r, h);
#pragma unroll
    for (int c = 0; c < N / 64; ++c)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = tx * 4 + 64 * c + e;
        if (col < nc) out[col] = from_acc<T>(acc[i][4 * c + e] * mul[i]);
      }
  }
}

}  // namespace r1kit::kernels::cuda::attn
