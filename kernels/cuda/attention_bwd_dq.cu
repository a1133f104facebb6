// Attention backward, dq kernel (FlashAttention-2's second pass, over queries), CUDA cores (f32,
// f64, and bf16/f16 head dims past 192/128; attention_tc_bwd.cu has the others). One block per
// (query tile of one sequence, query head h): Q and dO of the tile stay in shared memory; for each
// key tile up to the diagonal it recomputes P from the saved lse and dP = dO·Vᵀ, forms dS = P ∘ (dP
// − D) and accumulates dQ += dS·K in registers; dq = scale·dQ is written once per row. No atomics.
#include "kernels/cuda/attention.cuh"

namespace r1kit::kernels::cuda::attn {
namespace {

template <class T, int KD, int VD>
__global__ void __launch_bounds__(kThreads) attn_bwd_dq_kernel(const AttnParams<T> p) {
  using A = acc_t<T>;
  constexpr TileShape kS = Shapes<A, KD, VD>::dq;
  constexpr int BM = kS.bm, BN = kS.bn, RM = BM / 16, CN = BN / 16, pad = kPad<A>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* qs = reinterpret_cast<A*>(smem_raw);
  A* dos = qs + BM * (KD + pad);
  A* ks = dos + BM * (VD + pad);
  A* vs = ks + BN * (KD + pad);
  A* dss = vs + BN * (VD + pad);  // dS (BM x BN)

  const Tile tile = p.tiles[blockIdx.x / p.hq];
  const int h = static_cast<int>(blockIdx.x % p.hq), g = h / p.group;
  const int ty = static_cast<int>(threadIdx.x) / 16, tx = static_cast<int>(threadIdx.x) % 16;
  const int q0 = tile.row0, len = tile.seq_len, nq = min(BM, len - q0);
  const int64_t seq = tile.seq_start, tq = seq + q0;

  load_tile<BM, KD>(qs, p.q.row(tq, h), p.q.s0, nq, p.dqk, p.q.vec);
  load_tile<BM, VD>(dos, p.dout.row(tq, h), p.dout.s0, nq, p.dvd, p.dout.vec);

  // This thread's rows: lse·log₂e and D (+inf and 0 past the sequence, so P = dS = 0 there).
  A lse2[RM], dd[RM], dq[RM][KD / 16];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int r = ty * RM + i;
    const int64_t at = static_cast<int64_t>(h) * p.t + tq + r;
    lse2[i] = r < nq ? p.lse[at] * A(kLog2e) : A(INFINITY);
    dd[i] = r < nq ? p.dd[at] : A(0);
#pragma unroll
    for (int c = 0; c < KD / 16; ++c) dq[i][c] = 0;
  }

  const int n_kt = (min(q0 + BM, len) + BN - 1) / BN;
  for (int kt = 0; kt < n_kt; ++kt) {
    const int k0 = kt * BN, nk = min(BN, len - k0);
    const int64_t tk = seq + k0;
    __syncthreads();  // the previous step's K, V, dS are no longer read
    load_tile<BN, KD>(ks, p.k.row(tk, g), p.k.s0, nk, p.dqk, p.k.vec);
    load_tile<BN, VD>(vs, p.v.row(tk, g), p.v.s0, nk, p.dvd, p.v.vec);
    __syncthreads();

    A s[RM][CN], dp[RM][CN];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < CN; ++j) s[i][j] = dp[i][j] = 0;
    mm_nt<RM, CN, KD>(s, qs, ks, ty, tx);    // S = Q·Kᵀ
    mm_nt<RM, CN, VD>(dp, dos, vs, ty, tx);  // dP = dO·Vᵀ
#pragma unroll
    for (int i = 0; i < RM; ++i) {
      const int qi = q0 + ty * RM + i;
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        const int c = tx + 16 * j, kj = k0 + c;
        const A pv = kj <= qi ? ex2(s[i][j] * p.scale_log2 - lse2[i]) : A(0);
        dss[(ty * RM + i) * (BN + pad) + c] = pv * (dp[i][j] - dd[i]);
      }
    }
    __syncthreads();
    mm_nn<RM, BN, KD>(dq, dss, ks, ty, tx);  // dQ += dS·K
  }

  A sc[RM];
#pragma unroll
  for (int i = 0; i < RM; ++i) sc[i] = p.scale;
  store_rows<RM, KD>(p.dq, tq, h, nq, p.dqk, dq, sc, ty, tx);
}

}  // namespace

template <class T, int KD, int VD>
void launch_bwd_dq(const AttnParams<T>& p, int64_t n_tiles, cudaStream_t stream) {
  constexpr size_t smem = Shapes<acc_t<T>, KD, VD>::dq_bytes;
  auto kernel = attn_bwd_dq_kernel<T, KD, VD>;
  R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(smem)));
  const int64_t blocks = n_tiles * p.hq;
  kernel<<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(p);
  R1_CUDA_CHECK_LAUNCH();
}

#define R1_ATTN_INST_DQ(T, KD, VD) \
  template void launch_bwd_dq<T, KD, VD>(const AttnParams<T>&, int64_t, cudaStream_t);
// f32 and f64 in every bucket; bf16 and f16 only where the tensor-core backward does not run.
R1_ATTN_FOR_EACH_BUCKET(R1_ATTN_INST_DQ, float)
R1_ATTN_FOR_EACH_BUCKET(R1_ATTN_INST_DQ, double)
R1_ATTN_INST_DQ(bf16, 256, 256)
R1_ATTN_INST_DQ(f16, 256, 256)

}  // namespace r1kit::kernels::cuda::attn
