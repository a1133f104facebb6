// Attention forward for f32 and f64, tiled flash-style on CUDA cores (fp32 FMA; f64 for f64; bf16
// and f16 take the tensor-core kernel of attention_tc_fwd.cu). One block per
// (query tile of one sequence, query head): the Q tile stays in shared memory while the key/value
// tiles of the same sequence up to the diagonal stream through it; scores of one key tile live in
// registers, the online softmax rescales the output accumulator, and only P of the current tile
// (BM x BN) touches shared memory. The T x T score matrix never exists.
#include "kernels/cuda/attention.cuh"

namespace r1kit::kernels::cuda::attn {
namespace {

template <class T, int KD, int VD>
__global__ void __launch_bounds__(kThreads) attn_fwd_kernel(const AttnParams<T> p) {
  using A = acc_t<T>;
  constexpr TileShape kS = Shapes<A, KD, VD>::fwd;
  constexpr int BM = kS.bm, BN = kS.bn, RM = BM / 16, CN = BN / 16, pad = kPad<A>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* qs = reinterpret_cast<A*>(smem_raw);
  A* ks = qs + BM * (KD + pad);
  A* vs = ks + BN * (KD + pad);
  A* ps = vs + BN * (VD + pad);

  const Tile tile = p.tiles[blockIdx.x / p.hq];
  const int h = static_cast<int>(blockIdx.x % p.hq), g = h / p.group;
  const int ty = static_cast<int>(threadIdx.x) / 16, tx = static_cast<int>(threadIdx.x) % 16;
  const int q0 = tile.row0, len = tile.seq_len, nq = min(BM, len - q0);
  const int64_t tq = static_cast<int64_t>(tile.seq_start) + q0;  // token of the tile's first row

  load_tile<BM, KD>(qs, p.q.row(tq, h), p.q.s0, nq, p.dqk, p.q.vec);

  A o[RM][VD / 16];
  A m[RM], l[RM];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    m[i] = -INFINITY;
    l[i] = 0;
#pragma unroll
    for (int c = 0; c < VD / 16; ++c) o[i][c] = 0;
  }

  // Keys 0 .. min(q0 + BM, len) − 1 (causal: no key after the tile's last row).
  const int n_kt = (min(q0 + BM, len) + BN - 1) / BN;
  for (int kt = 0; kt < n_kt; ++kt) {
    const int k0 = kt * BN, nk = min(BN, len - k0);
    const int64_t tk = static_cast<int64_t>(tile.seq_start) + k0;
    __syncthreads();  // the previous tile's K, V, P are no longer read
    load_tile<BN, KD>(ks, p.k.row(tk, g), p.k.s0, nk, p.dqk, p.k.vec);
    load_tile<BN, VD>(vs, p.v.row(tk, g), p.v.s0, nk, p.dvd, p.v.vec);
    __syncthreads();

    A s[RM][CN];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < CN; ++j) s[i][j] = 0;
    mm_nt<RM, CN, KD>(s, qs, ks, ty, tx);

#pragma unroll
    for (int i = 0; i < RM; ++i) {
      const int qi = q0 + ty * RM + i;  // row within the sequence
      A mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        const int kj = k0 + tx + 16 * j;
        // Base-2 logits; causal mask. Key 0 (tile 0) is never masked, so m is finite from the
        // first tile on (also for rows past the sequence end, which are computed but not stored).
        s[i][j] = kj <= qi ? s[i][j] * p.scale_log2 : A(-INFINITY);
        mx = max(mx, s[i][j]);
      }
      const A m_new = max(m[i], half_warp_max(mx));
      const A alpha = ex2(m[i] - m_new);  // 0 on the first tile (m = −inf)
      A sum = 0;
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        s[i][j] = ex2(s[i][j] - m_new);
        sum += s[i][j];
        ps[(ty * RM + i) * (BN + pad) + tx + 16 * j] = s[i][j];
      }
      l[i] = l[i] * alpha + half_warp_sum(sum);
      m[i] = m_new;
#pragma unroll
      for (int c = 0; c < VD / 16; ++c) o[i][c] *= alpha;
    }
    __syncthreads();
    mm_nn<RM, BN, VD>(o, ps, vs, ty, tx);
  }

  A inv[RM];
#pragma unroll
  for (int i = 0; i < RM; ++i) inv[i] = A(1) / l[i];
  store_rows<RM, VD>(p.o, tq, h, nq, p.dvd, o, inv, ty, tx);
  if (tx == 0) {
#pragma unroll
    for (int i = 0; i < RM; ++i) {
      const int r = ty * RM + i;
      // lse = ln Σ exp(s) = ln 2 · (m₂ + log₂ l) with base-2 logits m₂ = max s·log₂e.
      if (r < nq) p.lse_out[static_cast<int64_t>(h) * p.t + tq + r] = (m[i] + lg2(l[i])) * A(kLn2);
    }
  }
}

}  // namespace

template <class T, int KD, int VD>
void launch_fwd(const AttnParams<T>& p, int64_t n_tiles, cudaStream_t stream) {
  constexpr size_t smem = Shapes<acc_t<T>, KD, VD>::fwd_bytes;
  auto kernel = attn_fwd_kernel<T, KD, VD>;
  R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(smem)));
  const int64_t blocks = n_tiles * p.hq;
  kernel<<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(p);
  R1_CUDA_CHECK_LAUNCH();
}

#define R1_ATTN_INST_FWD(T, KD, VD) \
  template void launch_fwd<T, KD, VD>(const AttnParams<T>&, int64_t, cudaStream_t);
// f32 and f64; bf16 and f16 run on tensor cores (attention_tc_fwd.cu).
R1_ATTN_FOR_EACH_BUCKET(R1_ATTN_INST_FWD, float)
R1_ATTN_FOR_EACH_BUCKET(R1_ATTN_INST_FWD, double)

}  // namespace r1kit::kernels::cuda::attn
