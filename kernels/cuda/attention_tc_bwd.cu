// Attention backward on tensor cores for bf16 / f16 (mma.sync m16n8k16 through ldmatrix, fp32
// accumulators), head dims up to 192/128 (the 256 bucket runs on CUDA cores: its accumulators
// would not fit in registers). Same two-kernel, atomic-free scheme as the CUDA-core kernels
// (attention_bwd_*.cu):
//   dk/dv: 4 warps per (key tile of 64, kv head), warp w owns keys 16w .. 16w + 15; K and V stay
//          in shared memory; the steps — each query head of the group in a fixed order, each
//          query tile of 32 at or after the diagonal — stream Q, dO (cp.async) and lse, D through
//          two stages. Per step: Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ in registers, Pᵀ = exp(Sᵀ − lse),
//          dSᵀ = Pᵀ ∘ (dPᵀ − D), then dV += Pᵀ·dO and dK += dSᵀ·Q with Pᵀ / dSᵀ as A operands
//          straight from the registers.
//   dq:    4 warps per (query tile of 64, query head), warp w owns rows 16w .. 16w + 15; Q, dO
//          stay; key tiles of 32 up to the diagonal stream K, V through two stages. Per step:
//          S = Q·Kᵀ, dP = dO·Vᵀ, dS = P ∘ (dP − D), dQ += dS·K.
// The one rounding beyond the outputs is that of P and dS to bf16/f16 as operands.
#include "kernels/cuda/attention_mma.cuh"

namespace r1kit::kernels::cuda::attn {
namespace {

template <class T, int KD, int VD>
__global__ void __launch_bounds__(kTcThreads) attn_bwd_dkdv_tc_kernel(const AttnParams<T> p) {
  constexpr int BN = kTcBwdKeys, BM = kTcBwdQueries, LK = KD + 8, LV = VD + 8, NT = kTcThreads;
  constexpr int kStage = BM * LK + BM * LV;  // elements of one Q + dO stage
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* ks = reinterpret_cast<T*>(smem_raw);
  T* vs = ks + BN * LK;
  T* stages = vs + BN * LV;  // stage s: Q at stages + s·kStage, dO after it
  // lse·log₂e (+inf past the sequence) and D (0 past it) of the step's query rows, per stage.
  float* stats = reinterpret_cast<float*>(stages + 2 * kStage);  // [stage][lse2 | D][BM]

  const Tile tile = p.tiles[blockIdx.x / p.hkv];
  const int g = static_cast<int>(blockIdx.x % p.hkv);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int gq = lane / 4, tg = lane % 4;
  const int k0 = tile.row0, len = tile.seq_len, nk = min(BN, len - k0);
  const int64_t seq = tile.seq_start, tk = seq + k0;
  const int kw = warp * 16;  // this warp's first key row in the tile

  // Steps: query heads g·group + hh in order, each over the query tiles qt0 .. n_qt − 1 holding a
  // row >= k0 (causal).
  const int qt0 = k0 / BM, n_qt = (len + BM - 1) / BM, per_head = n_qt - qt0;
  const int n_steps = p.group * per_head;
  auto issue = [&](int step, int stage) {
    const int h = g * p.group + step / per_head, q0 = (qt0 + step % per_head) * BM;
    const int nq = min(BM, len - q0);
    const int64_t tq = seq + q0;
    T* qs = stages + stage * kStage;
    load_tile_async<BM, KD, NT>(qs, p.q.row(tq, h), p.q.s0, nq, p.dqk, p.q.vec);
    load_tile_async<BM, VD, NT>(qs + BM * LK, p.dout.row(tq, h), p.dout.s0, nq, p.dvd, p.dout.vec);
    float* st = stats + stage * 2 * BM;
    for (int r = static_cast<int>(threadIdx.x); r < BM; r += NT) {
      const int64_t at = static_cast<int64_t>(h) * p.t + tq + r;
      st[r] = r < nq ? p.lse[at] * float(kLog2e) : INFINITY;
      st[BM + r] = r < nq ? p.dd[at] : 0.f;
    }
  };
  load_tile_async<BN, KD, NT>(ks, p.k.row(tk, g), p.k.s0, nk, p.dqk, p.k.vec);
  load_tile_async<BN, VD, NT>(vs, p.v.row(tk, g), p.v.s0, nk, p.dvd, p.v.vec);
  issue(0, 0);  // n_steps >= 1: the tile's own rows are queries of every head
  cp_async_commit();

  float dk[KD / 8][4], dv[VD / 8][4];
  zero(dk);
  zero(dv);

  for (int step = 0; step < n_steps; ++step) {
    if (step + 1 < n_steps) issue(step + 1, (step + 1) & 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const T* qs = stages + (step & 1) * kStage;
    const T* dos = qs + BM * LK;
    const float* lse2s = stats + (step & 1) * 2 * BM;
    const float* dds = lse2s + BM;
    const int q0 = (qt0 + step % per_head) * BM;

    float st[BM / 8][4], dpt[BM / 8][4];
    zero(st);
    zero(dpt);
    mma_nt<BM, KD>(st, ks + kw * LK, LK, qs, LK, lane);    // Sᵀ = K·Qᵀ
    mma_nt<BM, VD>(dpt, vs + kw * LV, LV, dos, LV, lane);  // dPᵀ = V·dOᵀ
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
    mma_rn<VD, BM>(dv, st, dos, LV, lane);  // dV += Pᵀ·dO
    mma_rn<KD, BM>(dk, dpt, qs, LK, lane);  // dK += dSᵀ·Q
    __syncthreads();                        // stage step & 1 is free for step + 2
  }

  const float sc[2] = {p.scale, p.scale}, one[2] = {1.f, 1.f};
  store_acc(p.dk, tk, g, kw + gq, nk, p.dqk, dk, sc, tg);
  store_acc(p.dv, tk, g, kw + gq, nk, p.dvd, dv, one, tg);
}

template <class T, int KD, int VD>
__global__ void __launch_bounds__(kTcThreads) attn_bwd_dq_tc_kernel(const AttnParams<T> p) {
  constexpr int BM = kTcBM, BN = kTcDqKeys, LK = KD + 8, LV = VD + 8, NT = kTcThreads;
  constexpr int kStage = BN * LK + BN * LV;  // elements of one K + V stage
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);
  T* dos = qs + BM * LK;
  T* stages = dos + BM * LV;  // stage s: K at stages + s·kStage, V after it

  const Tile tile = p.tiles[blockIdx.x / p.hq];
  const int h = static_cast<int>(blockIdx.x % p.hq), g = h / p.group;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int gq = lane / 4, tg = lane % 4;
  const int q0 = tile.row0, len = tile.seq_len, nq = min(BM, len - q0);
  const int64_t seq = tile.seq_start, tq = seq + q0;
  const int rw0 = warp * 16 + gq;  // this thread's rows rw0 and rw0 + 8 of the tile
  const int n_kt = (min(q0 + BM, len) + BN - 1) / BN;

  auto issue = [&](int kt, int stage) {
    const int k0 = kt * BN, nk = min(BN, len - k0);
    T* ks = stages + stage * kStage;
    load_tile_async<BN, KD, NT>(ks, p.k.row(seq + k0, g), p.k.s0, nk, p.dqk, p.k.vec);
    load_tile_async<BN, VD, NT>(ks + BN * LK, p.v.row(seq + k0, g), p.v.s0, nk, p.dvd, p.v.vec);
  };
  load_tile_async<BM, KD, NT>(qs, p.q.row(tq, h), p.q.s0, nq, p.dqk, p.q.vec);
  load_tile_async<BM, VD, NT>(dos, p.dout.row(tq, h), p.dout.s0, nq, p.dvd, p.dout.vec);
  issue(0, 0);
  cp_async_commit();

  float lse2[2], dd[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = rw0 + r * 8;
    const int64_t at = static_cast<int64_t>(h) * p.t + tq + row;
    lse2[r] = row < nq ? p.lse[at] * float(kLog2e) : INFINITY;  // P = dS = 0 past the sequence
    dd[r] = row < nq ? p.dd[at] : 0.f;
  }
  float dq[KD / 8][4];
  zero(dq);

  for (int kt = 0; kt < n_kt; ++kt) {
    if (kt + 1 < n_kt) issue(kt + 1, (kt + 1) & 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const T* ks = stages + (kt & 1) * kStage;
    const T* vs = ks + BN * LK;
    const int k0 = kt * BN;

    float s[BN / 8][4], dp[BN / 8][4];
    zero(s);
    zero(dp);
    mma_nt<BN, KD>(s, qs + warp * 16 * LK, LK, ks, LK, lane);    // S = Q·Kᵀ
    mma_nt<BN, VD>(dp, dos + warp * 16 * LV, LV, vs, LV, lane);  // dP = dO·Vᵀ
#pragma unroll
    for (int n = 0; n < BN / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = q0 + rw0 + (e / 2) * 8, kj = k0 + n * 8 + tg * 2 + (e % 2);
        const float pv = kj <= qi ? ex2(s[n][e] * p.scale_log2 - lse2[e / 2]) : 0.f;
        dp[n][e] = pv * (dp[n][e] - dd[e / 2]);  // dS
      }
    mma_rn<KD, BN>(dq, dp, ks, LK, lane);  // dQ += dS·K
    __syncthreads();                       // stage kt & 1 is free for tile kt + 2
  }

  const float sc[2] = {p.scale, p.scale};
  store_acc(p.dq, tq, h, rw0, nq, p.dqk, dq, sc, tg);
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
