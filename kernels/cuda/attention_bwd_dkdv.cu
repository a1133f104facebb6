// Attention backward, dk/dv kernel (FlashAttention-2's outer loop over keys), CUDA cores (f32, f64,
// and bf16/f16 head dims past 192/128; attention_tc_bwd.cu has the others). One
// block per (key tile of one sequence, kv head g): K and V of the tile stay in shared memory; for
// each query head of g's group in turn (a fixed order, so the GQA sum is deterministic) and each
// query tile at or after the diagonal, it recomputes Pᵀ from the saved lse, forms dPᵀ = V·dOᵀ and
// dSᵀ = Pᵀ ∘ (dPᵀ − D), and accumulates dV += Pᵀ·dO and dK += dSᵀ·Q in registers. Each dk/dv row
// is written once by its block: no atomics.
#include "kernels/cuda/attention.cuh"

namespace r1kit::kernels::cuda::attn {
namespace {

template <class T, int KD, int VD>
__global__ void __launch_bounds__(kThreads) attn_bwd_dkdv_kernel(const AttnParams<T> p) {
  using A = acc_t<T>;
  constexpr TileShape kS = Shapes<A, KD, VD>::dkdv;
  // BN key rows per block (RN per thread), BM query rows per inner step (CM per thread).
  constexpr int BM = kS.bm, BN = kS.bn, RN = BN / 16, CM = BM / 16, pad = kPad<A>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* ks = reinterpret_cast<A*>(smem_raw);
  A* vs = ks + BN * (KD + pad);
  A* qs = vs + BN * (VD + pad);
  A* dos = qs + BM * (KD + pad);
  A* pts = dos + BM * (VD + pad);     // Pᵀ (BN x BM)
  A* dsts = pts + BN * (BM + pad);    // dSᵀ (BN x BM)
  A* lse2s = dsts + BN * (BM + pad);  // lse·log₂e of the query rows (+inf past the sequence)
  A* dds = lse2s + BM;                // D of the query rows (0 past the sequence)

  const Tile tile = p.tiles[blockIdx.x / p.hkv];
  const int g = static_cast<int>(blockIdx.x % p.hkv);
  const int ty = static_cast<int>(threadIdx.x) / 16, tx = static_cast<int>(threadIdx.x) % 16;
  const int k0 = tile.row0, len = tile.seq_len, nk = min(BN, len - k0);
  const int64_t seq = tile.seq_start, tk = seq + k0;

  load_tile<BN, KD>(ks, p.k.row(tk, g), p.k.s0, nk, p.dqk, p.k.vec);
  load_tile<BN, VD>(vs, p.v.row(tk, g), p.v.s0, nk, p.dvd, p.v.vec);

  A dk[RN][KD / 16], dv[RN][VD / 16];
#pragma unroll
  for (int i = 0; i < RN; ++i) {
#pragma unroll
    for (int c = 0; c < KD / 16; ++c) dk[i][c] = 0;
#pragma unroll
    for (int c = 0; c < VD / 16; ++c) dv[i][c] = 0;
  }

  // Query tiles that hold a row >= k0 (causal), to the end of the sequence.
  const int qt0 = k0 / BM, n_qt = (len + BM - 1) / BM;
  for (int hh = 0; hh < p.group; ++hh) {
    const int h = g * p.group + hh;
    for (int qt = qt0; qt < n_qt; ++qt) {
      const int q0 = qt * BM, nq = min(BM, len - q0);
      const int64_t tq = seq + q0;
      __syncthreads();  // the previous step's Q, dO, Pᵀ, dSᵀ are no longer read
      load_tile<BM, KD>(qs, p.q.row(tq, h), p.q.s0, nq, p.dqk, p.q.vec);
      load_tile<BM, VD>(dos, p.dout.row(tq, h), p.dout.s0, nq, p.dvd, p.dout.vec);
      for (int r = static_cast<int>(threadIdx.x); r < BM; r += kThreads) {
        const int64_t at = static_cast<int64_t>(h) * p.t + tq + r;
        lse2s[r] = r < nq ? p.lse[at] * A(kLog2e) : A(INFINITY);
        dds[r] = r < nq ? p.dd[at] : A(0);
      }
      __syncthreads();

      A st[RN][CM], dpt[RN][CM];
#pragma unroll
      for (int i = 0; i < RN; ++i)
#pragma unroll
        for (int j = 0; j < CM; ++j) st[i][j] = dpt[i][j] = 0;
      mm_nt<RN, CM, KD>(st, ks, qs, ty, tx);    // Sᵀ = K·Qᵀ
      mm_nt<RN, CM, VD>(dpt, vs, dos, ty, tx);  // dPᵀ = V·dOᵀ
#pragma unroll
      for (int i = 0; i < RN; ++i) {
        const int kj = k0 + ty * RN + i;
#pragma unroll
        for (int j = 0; j < CM; ++j) {
          const int c = tx + 16 * j, qi = q0 + c;
          // P = exp(s − lse); 0 above the diagonal and for rows past the sequence (lse = +inf).
          const A pv = kj <= qi ? ex2(st[i][j] * p.scale_log2 - lse2s[c]) : A(0);
          pts[(ty * RN + i) * (BM + pad) + c] = pv;
          dsts[(ty * RN + i) * (BM + pad) + c] = pv * (dpt[i][j] - dds[c]);
        }
      }
      __syncthreads();
      mm_nn<RN, BM, VD>(dv, pts, dos, ty, tx);  // dV += Pᵀ·dO
      mm_nn<RN, BM, KD>(dk, dsts, qs, ty, tx);  // dK += dSᵀ·Q
    }
  }

  A one[RN], sc[RN];
#pragma unroll
  for (int i = 0; i < RN; ++i) {
    one[i] = A(1);
    sc[i] = p.scale;
  }
  store_rows<RN, KD>(p.dk, tk, g, nk, p.dqk, dk, sc, ty, tx);
  store_rows<RN, VD>(p.dv, tk, g, nk, p.dvd, dv, one, ty, tx);
}

}  // namespace

template <class T, int KD, int VD>
void launch_bwd_dkdv(const AttnParams<T>& p, int64_t n_tiles, cudaStream_t stream) {
  constexpr size_t smem = Shapes<acc_t<T>, KD, VD>::dkdv_bytes;
  auto kernel = attn_bwd_dkdv_kernel<T, KD, VD>;
  R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(smem)));
  const int64_t blocks = n_tiles * p.hkv;
  kernel<<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(p);
  R1_CUDA_CHECK_LAUNCH();
}

#define R1_ATTN_INST_DKDV(T, KD, VD) \
  template void launch_bwd_dkdv<T, KD, VD>(const AttnParams<T>&, int64_t, cudaStream_t);
// f32 and f64 in every bucket; bf16 and f16 only where the tensor-core backward does not run.
R1_ATTN_FOR_EACH_BUCKET(R1_ATTN_INST_DKDV, float)
R1_ATTN_FOR_EACH_BUCKET(R1_ATTN_INST_DKDV, double)
R1_ATTN_INST_DKDV(bf16, 256, 256)
R1_ATTN_INST_DKDV(f16, 256, 256)

}  // namespace r1kit::kernels::cuda::attn
