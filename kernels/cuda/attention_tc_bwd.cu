// Attention backward on tensor cores for bf16 / f16 (mma.sync m16n8k16, fp32 accumulators), head
// dims up to 192 (the 256 bucket runs on CUDA cores: its accumulators would not fit in
// registers). Same two-kernel, atomic-free scheme as the CUDA-core kernels (attention_bwd_*.cu):
//   dk/dv: 4 warps per (key tile of 64, kv head), warp w owns keys 16w .. 16w + 15; for each query
//          head of the group in a fixed order and each query tile of 32 at or after the diagonal:
//          Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ in registers, Pᵀ = exp(Sᵀ − lse), dSᵀ = Pᵀ ∘ (dPᵀ − D), then
//          dV += Pᵀ·dO and dK += dSᵀ·Q with Pᵀ / dSᵀ rounded to bf16/f16 as A operands straight
//          from the registers.
//   dq:    4 warps per (query tile of 64, query head), warp w owns rows 16w .. 16w + 15; for each
//          key tile of 32 up to the diagonal: S = Q·Kᵀ, dP = dO·Vᵀ, dS = P ∘ (dP − D), dQ += dS·K.
// Operand tiles sit in shared memory as stored, rows padded by 8 elements. The one rounding beyond
// the outputs is that of P and dS to bf16/f16 before their products.
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/attention_mma.cuh"

namespace r1kit::kernels::cuda::attn {
namespace {

// acc[n] (16 x 8 tiles, n < N / 8) += A · B over K (a multiple of 16) for A, 16 rows of a shared
// tile a (row length lda, 16-row offset already applied, lane offset not), and B[k][n] =
// b[n][k] of a shared tile b (row length ldb): both operands consecutive pairs along k.
template <int N, int K, class T>
__device__ __forceinline__ void mma_nt(float (&acc)[N / 8][4], const T* a, int lda, const T* b,
                                       int ldb, int gq, int tg) {
  const T* ap = a + gq * lda + tg * 2;
#pragma unroll 4
  for (int kc = 0; kc < K / 16; ++kc) {
    const uint32_t fa[4] = {*reinterpret_cast<const uint32_t*>(ap + kc * 16),
                            *reinterpret_cast<const uint32_t*>(ap + 8 * lda + kc * 16),
                            *reinterpret_cast<const uint32_t*>(ap + kc * 16 + 8),
                            *reinterpret_cast<const uint32_t*>(ap + 8 * lda + kc * 16 + 8)};
#pragma unroll
    for (int n = 0; n < N / 8; ++n) {
      const T* bp = b + (n * 8 + gq) * ldb + kc * 16 + tg * 2;
      const uint32_t fb[2] = {*reinterpret_cast<const uint32_t*>(bp),
                              *reinterpret_cast<const uint32_t*>(bp + 8)};
      mma_16816<T>(acc[n], fa, fb);
    }
  }
}

// acc[n] (n < N / 8) += R · B where R (16 x K) is given as register tiles r[0 .. K / 8) in the
// accumulator layout (rounded to T here) and B[k][n] = b[k][n] of a shared tile b (row length
// ldb): rows k pairwise, one column.
template <int N, int K, class T>
__device__ __forceinline__ void mma_rn(float (&acc)[N / 8][4], const float (&r)[K / 8][4],
                                       const T* b, int ldb, int gq, int tg) {
#pragma unroll
  for (int c = 0; c < K / 16; ++c) {
    const uint32_t fa[4] = {pack2<T>(r[2 * c][0], r[2 * c][1]), pack2<T>(r[2 * c][2], r[2 * c][3]),
                            pack2<T>(r[2 * c + 1][0], r[2 * c + 1][1]),
                            pack2<T>(r[2 * c + 1][2], r[2 * c + 1][3])};
    const T* bp = b + (c * 16 + tg * 2) * ldb + gq;
#pragma unroll
    for (int n = 0; n < N / 8; ++n) {
      const T* bn = bp + n * 8;
      const uint32_t fb[2] = {pack2_raw(bn[0], bn[ldb]), pack2_raw(bn[8 * ldb], bn[9 * ldb])};
      mma_16816<T>(acc[n], fa, fb);
    }
  }
}

template <int N>
__device__ __forceinline__ void zero(float (&acc)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.f;
}

// Rows r0 and r0 + 8 of a warp's accumulator tiles (times mul) to a (T, H, D) view: the block's
// tile starts at token t0; rows >= nr and columns >= nc are not written.
template <int N, class T>
__device__ __forceinline__ void store_acc(const HeadView<T>& dst, int64_t t0, int h, int r0, int nr,
                                          int nc, const float (&acc)[N][4], float mul, int tg) {
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
        if (col < nc) out[col] = from_acc<T>(acc[n][r * 2 + e] * mul);
      }
  }
}

template <class T, int KD, int VD>
__global__ void __launch_bounds__(kTcThreads) attn_bwd_dkdv_tc_kernel(const AttnParams<T> p) {
  constexpr int BN = kTcBwdKeys, BM = kTcBwdQueries, LK = KD + 8, LV = VD + 8, NT = kTcThreads;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* ks = reinterpret_cast<T*>(smem_raw);
  T* vs = ks + BN * LK;
  T* qs = vs + BN * LV;
  T* dos = qs + BM * LK;
  float* lse2s = reinterpret_cast<float*>(dos + BM * LV);  // +inf past the sequence
  float* dds = lse2s + BM;                                 // 0 past the sequence

  const Tile tile = p.tiles[blockIdx.x / p.hkv];
  const int g = static_cast<int>(blockIdx.x % p.hkv);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int gq = lane / 4, tg = lane % 4;
  const int k0 = tile.row0, len = tile.seq_len, nk = min(BN, len - k0);
  const int64_t seq = tile.seq_start, tk = seq + k0;
  const int kw = warp * 16;  // this warp's first key row in the tile

  load_tile_raw<BN, KD, NT>(ks, p.k.row(tk, g), p.k.s0, nk, p.dqk, p.k.vec);
  load_tile_raw<BN, VD, NT>(vs, p.v.row(tk, g), p.v.s0, nk, p.dvd, p.v.vec);

  float dk[KD / 8][4], dv[VD / 8][4];
  zero(dk);
  zero(dv);

  const int qt0 = k0 / BM, n_qt = (len + BM - 1) / BM;
  for (int hh = 0; hh < p.group; ++hh) {
    const int h = g * p.group + hh;
    for (int qt = qt0; qt < n_qt; ++qt) {
      const int q0 = qt * BM, nq = min(BM, len - q0);
      const int64_t tq = seq + q0;
      __syncthreads();  // the previous step's Q, dO, lse, D are no longer read
      load_tile_raw<BM, KD, NT>(qs, p.q.row(tq, h), p.q.s0, nq, p.dqk, p.q.vec);
      load_tile_raw<BM, VD, NT>(dos, p.dout.row(tq, h), p.dout.s0, nq, p.dvd, p.dout.vec);
      for (int r = static_cast<int>(threadIdx.x); r < BM; r += NT) {
        const int64_t at = static_cast<int64_t>(h) * p.t + tq + r;
        lse2s[r] = r < nq ? p.lse[at] * float(kLog2e) : INFINITY;
        dds[r] = r < nq ? p.dd[at] : 0.f;
      }
      __syncthreads();

      float st[BM / 8][4], dpt[BM / 8][4];
      zero(st);
      zero(dpt);
      mma_nt<BM, KD>(st, ks + kw * LK, LK, qs, LK, gq, tg);    // Sᵀ = K·Qᵀ
      mma_nt<BM, VD>(dpt, vs + kw * LV, LV, dos, LV, gq, tg);  // dPᵀ = V·dOᵀ
      // Element e of tile n: key k0 + kw + gq + 8·(e / 2), query q0 + 8n + 2tg + e % 2.
#pragma unroll
      for (int n = 0; n < BM / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = n * 8 + tg * 2 + (e % 2);
          const int kj = k0 + kw + gq + (e / 2) * 8, qi = q0 + c;
          const float pv = kj <= qi ? ex2(st[n][e] * p.scale_log2 - lse2s[c]) : 0.f;
          st[n][e] = pv;                          // Pᵀ
          dpt[n][e] = pv * (dpt[n][e] - dds[c]);  // dSᵀ
        }
      mma_rn<VD, BM>(dv, st, dos, LV, gq, tg);  // dV += Pᵀ·dO
      mma_rn<KD, BM>(dk, dpt, qs, LK, gq, tg);  // dK += dSᵀ·Q
    }
  }

  store_acc(p.dk, tk, g, kw + gq, nk, p.dqk, dk, p.scale, tg);
  store_acc(p.dv, tk, g, kw + gq, nk, p.dvd, dv, 1.f, tg);
}

template <class T, int KD, int VD>
__global__ void __launch_bounds__(kTcThreads) attn_bwd_dq_tc_kernel(const AttnParams<T> p) {
  constexpr int BM = kTcBM, BN = kTcDqKeys, LK = KD + 8, LV = VD + 8, NT = kTcThreads;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);
  T* dos = qs + BM * LK;
  T* ks = dos + BM * LV;
  T* vs = ks + BN * LK;

  const Tile tile = p.tiles[blockIdx.x / p.hq];
  const int h = static_cast<int>(blockIdx.x % p.hq), g = h / p.group;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int gq = lane / 4, tg = lane % 4;
  const int q0 = tile.row0, len = tile.seq_len, nq = min(BM, len - q0);
  const int64_t seq = tile.seq_start, tq = seq + q0;
  const int rw0 = warp * 16 + gq;  // this thread's rows rw0 and rw0 + 8 of the tile

  load_tile_raw<BM, KD, NT>(qs, p.q.row(tq, h), p.q.s0, nq, p.dqk, p.q.vec);
  load_tile_raw<BM, VD, NT>(dos, p.dout.row(tq, h), p.dout.s0, nq, p.dvd, p.dout.vec);
  float lse2[2], dd[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = rw0 + r * 8;
    const int64_t at = static_cast<int64_t>(h) * p.t + tq + row;
    lse2[r] = row < nq ? p.lse[at] * float(kLog2e) : INFINITY;
    dd[r] = row < nq ? p.dd[at] : 0.f;
  }
  float dq[KD / 8][4];
  zero(dq);

  const int n_kt = (min(q0 + BM, len) + BN - 1) / BN;
  for (int kt = 0; kt < n_kt; ++kt) {
    const int k0 = kt * BN, nk = min(BN, len - k0);
    const int64_t tk = seq + k0;
    __syncthreads();  // the previous step's K and V are no longer read
    load_tile_raw<BN, KD, NT>(ks, p.k.row(tk, g), p.k.s0, nk, p.dqk, p.k.vec);
    load_tile_raw<BN, VD, NT>(vs, p.v.row(tk, g), p.v.s0, nk, p.dvd, p.v.vec);
    __syncthreads();

    float s[BN / 8][4], dp[BN / 8][4];
    zero(s);
    zero(dp);
    mma_nt<BN, KD>(s, qs + warp * 16 * LK, LK, ks, LK, gq, tg);    // S = Q·Kᵀ
    mma_nt<BN, VD>(dp, dos + warp * 16 * LV, LV, vs, LV, gq, tg);  // dP = dO·Vᵀ
#pragma unroll
    for (int n = 0; n < BN / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = q0 + rw0 + (e / 2) * 8, kj = k0 + n * 8 + tg * 2 + (e % 2);
        const float pv = kj <= qi ? ex2(s[n][e] * p.scale_log2 - lse2[e / 2]) : 0.f;
        dp[n][e] = pv * (dp[n][e] - dd[e / 2]);  // dS
      }
    mma_rn<KD, BN>(dq, dp, ks, LK, gq, tg);  // dQ += dS·K
  }

  store_acc(p.dq, tq, h, rw0, nq, p.dqk, dq, p.scale, tg);
}

}  // namespace

template <class T, int KD, int VD>
void launch_bwd_tc(const AttnParams<T>& p, const Tile* key_tiles, int64_t n_key_tiles,
                   const Tile* query_tiles, int64_t n_query_tiles, cudaStream_t stream) {
  AttnParams<T> q = p;
  {
    constexpr size_t smem = tc_dkdv_smem_bytes(KD, VD);
    auto kernel = attn_bwd_dkdv_tc_kernel<T, KD, VD>;
    R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
    q.tiles = key_tiles;
    kernel<<<static_cast<unsigned>(n_key_tiles * p.hkv), kTcThreads, smem, stream>>>(q);
    R1_CUDA_CHECK_LAUNCH();
  }
  {
    constexpr size_t smem = tc_dq_smem_bytes(KD, VD);
    auto kernel = attn_bwd_dq_tc_kernel<T, KD, VD>;
    R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
    q.tiles = query_tiles;
    kernel<<<static_cast<unsigned>(n_query_tiles * p.hq), kTcThreads, smem, stream>>>(q);
    R1_CUDA_CHECK_LAUNCH();
  }
}

#define R1_ATTN_INST_BWD_TC(T, KD, VD)                                                            \
  template void launch_bwd_tc<T, KD, VD>(const AttnParams<T>&, const Tile*, int64_t, const Tile*, \
                                         int64_t, cudaStream_t);
R1_ATTN_INST_BWD_TC(bf16, 64, 64)
R1_ATTN_INST_BWD_TC(bf16, 128, 128)
R1_ATTN_INST_BWD_TC(bf16, 192, 128)
R1_ATTN_INST_BWD_TC(f16, 64, 64)
R1_ATTN_INST_BWD_TC(f16, 128, 128)
R1_ATTN_INST_BWD_TC(f16, 192, 128)

}  // namespace r1kit::kernels::cuda::attn
