// Attention forward on tensor cores for bf16 / f16 (mma.sync m16n8k16 through ldmatrix, fp32
// accumulators; sm_80 and later). One block of 4 warps per (query tile of 64 rows of one sequence,
// query head); warp w owns query rows 16w .. 16w + 15. Q stays in shared memory; K and V tiles of
// BN keys (64, or 32 for the 256 bucket) stream through two shared stages with cp.async, the next
// tile loading while the current one is used. Per key tile: S = Q·Kᵀ in registers (BN / 8
// accumulator tiles of 16 x 8), causal mask, online softmax on the registers (a row lives in the
// 4 lanes of a quad), then P — rounded to bf16/f16, the one intermediate rounding of this path —
// feeds O += P·V straight from the S registers (two accumulator tiles are one A operand). The row
// sums l use the unrounded P. Never more than one 64 x BN tile of scores.
#include "kernels/cuda/attention_mma.cuh"

namespace r1kit::kernels::cuda::attn {
namespace {

template <class T, int KD, int VD>
__global__ void __launch_bounds__(kTcThreads) attn_fwd_tc_kernel(const AttnParams<T> p) {
  constexpr int BM = kTcBM, BN = tc_fwd_bn(KD, VD), LQ = KD + 8, LV = VD + 8, NT = kTcThreads;
  constexpr int kStage = BN * LQ + BN * LV;  // elements of one K + V stage
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);
  T* stages = qs + BM * LQ;  // stage s: K at stages + s·kStage, V after it

  const Tile tile = p.tiles[blockIdx.x / p.hq];
  const int h = static_cast<int>(blockIdx.x % p.hq), g = h / p.group;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int gq = lane / 4, tg = lane % 4;  // mma groupID and thread-in-group
  const int q0 = tile.row0, len = tile.seq_len, nq = min(BM, len - q0);
  const int64_t seq = tile.seq_start, tq = seq + q0;
  const int n_kt = (min(q0 + BM, len) + BN - 1) / BN;  // causal: no key after the last row

  auto issue = [&](int kt, int stage) {  // starts loading key tile kt into a stage
    const int k0 = kt * BN, nk = min(BN, len - k0);
    T* ks = stages + stage * kStage;
    load_tile_async<BN, KD, NT>(ks, p.k.row(seq + k0, g), p.k.s0, nk, p.dqk, p.k.vec);
    load_tile_async<BN, VD, NT>(ks + BN * LQ, p.v.row(seq + k0, g), p.v.s0, nk, p.dvd, p.v.vec);
  };
  load_tile_async<BM, KD, NT>(qs, p.q.row(tq, h), p.q.s0, nq, p.dqk, p.q.vec);
  issue(0, 0);
  cp_async_commit();

  float o[VD / 8][4];
  zero(o);
  // This thread's rows of the tile: rw0 = 16·warp + gq and rw0 + 8.
  const int rw0 = warp * 16 + gq;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  for (int kt = 0; kt < n_kt; ++kt) {
    if (kt + 1 < n_kt) issue(kt + 1, (kt + 1) & 1);
    cp_async_commit();   // one group per iteration (maybe empty), so wait<1> means "tile kt in"
    cp_async_wait<1>();  // this thread's copies of Q and tile kt have landed
    __syncthreads();     // ... and everyone's
    const T* ks = stages + (kt & 1) * kStage;
    const T* vs = ks + BN * LQ;
    const int k0 = kt * BN;

    float s[BN / 8][4];
    zero(s);
    mma_nt<BN, KD>(s, qs + warp * 16 * LQ, LQ, ks, LQ, lane);  // S = Q·Kᵀ

    // Mask, base-2 logits, online softmax. Element e of tile n: row rw0 + 8·(e / 2), key
    // k0 + 8n + 2tg + e % 2. Key 0 is never masked, so m is finite after the first tile.
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < BN / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = q0 + rw0 + (e / 2) * 8, kj = k0 + n * 8 + tg * 2 + (e % 2);
        s[n][e] = kj <= qi ? s[n][e] * p.scale_log2 : -INFINITY;
        mx[e / 2] = max(mx[e / 2], s[n][e]);
      }
    float alpha[2], sum[2] = {0.f, 0.f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m_new = max(m[r], quad_max(mx[r]));
      alpha[r] = ex2(m[r] - m_new);  // 0 on the first tile
      m[r] = m_new;
    }
#pragma unroll
    for (int n = 0; n < BN / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = ex2(s[n][e] - m[e / 2]);
        sum[e / 2] += s[n][e];
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) l[r] = l[r] * alpha[r] + quad_sum(sum[r]);
#pragma unroll
    for (int n = 0; n < VD / 8; ++n) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }
    mma_rn<VD, BN>(o, s, vs, LV, lane);  // O += P·V
    __syncthreads();                     // stage kt & 1 is free for tile kt + 2
  }

  const float inv[2] = {1.f / l[0], 1.f / l[1]};
  store_acc(p.o, tq, h, rw0, nq, p.dvd, o, inv, tg);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = rw0 + r * 8;
    // lse = ln Σ exp(s) = ln 2 · (m₂ + log₂ l) with base-2 logits.
    if (tg == 0 && row < nq)
      p.lse_out[static_cast<int64_t>(h) * p.t + tq + row] = (m[r] + lg2(l[r])) * float(kLn2);
  }
}

}  // namespace

template <class T, int KD, int VD>
void launch_fwd_tc(const AttnParams<T>& p, int64_t n_tiles, cudaStream_t stream) {
  constexpr size_t smem = tc_fwd_smem_bytes(KD, VD, tc_fwd_bn(KD, VD));
  auto kernel = attn_fwd_tc_kernel<T, KD, VD>;
  R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(smem)));
  const int64_t blocks = n_tiles * p.hq;
  kernel<<<static_cast<unsigned>(blocks), kTcThreads, smem, stream>>>(p);
  R1_CUDA_CHECK_LAUNCH();
}

#define R1_ATTN_INST_FWD_TC(T, KD, VD) \
  template void launch_fwd_tc<T, KD, VD>(const AttnParams<T>&, int64_t, cudaStream_t);
R1_ATTN_FOR_EACH_BUCKET(R1_ATTN_INST_FWD_TC, bf16)
R1_ATTN_FOR_EACH_BUCKET(R1_ATTN_INST_FWD_TC, f16)

}  // namespace r1kit::kernels::cuda::attn
