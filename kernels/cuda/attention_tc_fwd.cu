// Attention forward on tensor cores for bf16 / f16 (mma.sync m16n8k16, fp32 accumulators; sm_80
// and later). One block of 4 warps per (query tile of 64 rows of one sequence, query head); warp w
// owns query rows 16w .. 16w + 15. Q, K and V tiles sit in shared memory as stored (bf16/f16, rows
// padded by 16 bytes: the 32-bit fragment loads are free of bank conflicts). Per key tile of 64:
// S = Q·Kᵀ in registers (8 accumulator tiles of 16 x 8), causal mask, online softmax on the
// registers (a row lives in the 4 lanes of a quad), then P — rounded to bf16/f16, the one
// intermediate rounding of this path — feeds O += P·V straight from the S registers (the
// accumulator layout of two 16 x 8 tiles is the A-operand layout of one 16 x 16 tile). The row sums
// l use the unrounded P. Never more than one 64 x 64 tile of scores.
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/attention_mma.cuh"

namespace r1kit::kernels::cuda::attn {
namespace {

template <class T, int KD, int VD>
__global__ void __launch_bounds__(kTcThreads) attn_fwd_tc_kernel(const AttnParams<T> p) {
  constexpr int BM = kTcBM, BN = kTcBN, LQ = KD + 8, LV = VD + 8, NT = kTcThreads;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);
  T* ks = qs + BM * LQ;
  T* vs = ks + BN * LQ;

  const Tile tile = p.tiles[blockIdx.x / p.hq];
  const int h = static_cast<int>(blockIdx.x % p.hq), g = h / p.group;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int gq = lane / 4, tg = lane % 4;  // mma groupID and thread-in-group
  const int q0 = tile.row0, len = tile.seq_len, nq = min(BM, len - q0);
  const int64_t tq = static_cast<int64_t>(tile.seq_start) + q0;

  load_tile_raw<BM, KD, NT>(qs, p.q.row(tq, h), p.q.s0, nq, p.dqk, p.q.vec);

  float o[VD / 8][4];
#pragma unroll
  for (int n = 0; n < VD / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[n][e] = 0.f;
  // This thread's two rows: rw[0] = 16·warp + gq and rw[1] = rw[0] + 8 (within the tile).
  const int rw0 = warp * 16 + gq;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const T* qa = qs + rw0 * LQ + tg * 2;

  const int n_kt = (min(q0 + BM, len) + BN - 1) / BN;
  for (int kt = 0; kt < n_kt; ++kt) {
    const int k0 = kt * BN, nk = min(BN, len - k0);
    const int64_t tk = static_cast<int64_t>(tile.seq_start) + k0;
    __syncthreads();  // the previous tile's K and V are no longer read
    load_tile_raw<BN, KD, NT>(ks, p.k.row(tk, g), p.k.s0, nk, p.dqk, p.k.vec);
    load_tile_raw<BN, VD, NT>(vs, p.v.row(tk, g), p.v.s0, nk, p.dvd, p.v.vec);
    __syncthreads();

    // S = Q·Kᵀ: 16 rows x 64 keys per warp, 8 tiles of 16 x 8.
    float s[BN / 8][4];
#pragma unroll
    for (int n = 0; n < BN / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = 0.f;
#pragma unroll 4
    for (int kc = 0; kc < KD / 16; ++kc) {
      uint32_t a[4];
      a[0] = *reinterpret_cast<const uint32_t*>(qa + kc * 16);
      a[1] = *reinterpret_cast<const uint32_t*>(qa + 8 * LQ + kc * 16);
      a[2] = *reinterpret_cast<const uint32_t*>(qa + kc * 16 + 8);
      a[3] = *reinterpret_cast<const uint32_t*>(qa + 8 * LQ + kc * 16 + 8);
#pragma unroll
      for (int n = 0; n < BN / 8; ++n) {
        // B[k][n] = K[key n][d k]: consecutive pairs along d.
        const T* kb = ks + (n * 8 + gq) * LQ + kc * 16 + tg * 2;
        const uint32_t b[2] = {*reinterpret_cast<const uint32_t*>(kb),
                               *reinterpret_cast<const uint32_t*>(kb + 8)};
        mma_16816<T>(s[n], a, b);
      }
    }

    // Mask, base-2 logits, online softmax. Element e of tile n: row rw[e / 2], key
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

    // O += P·V, 16 keys at a time; P's A fragment is the S registers of tiles 2c and 2c + 1.
#pragma unroll
    for (int c = 0; c < BN / 16; ++c) {
      const uint32_t a[4] = {pack2<T>(s[2 * c][0], s[2 * c][1]), pack2<T>(s[2 * c][2], s[2 * c][3]),
                             pack2<T>(s[2 * c + 1][0], s[2 * c + 1][1]),
                             pack2<T>(s[2 * c + 1][2], s[2 * c + 1][3])};
      const T* vb = vs + (c * 16 + tg * 2) * LV + gq;
#pragma unroll
      for (int n = 0; n < VD / 8; ++n) {
        // B[k][n] = V[key k][col n]: a pair of rows, one column.
        const T* vn = vb + n * 8;
        const uint32_t b[2] = {pack2_raw(vn[0], vn[LV]), pack2_raw(vn[8 * LV], vn[9 * LV])};
        mma_16816<T>(o[n], a, b);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = rw0 + r * 8;
    if (row >= nq) continue;
    const float inv = 1.f / l[r];
    T* out = p.o.row(tq + row, h);
#pragma unroll
    for (int n = 0; n < VD / 8; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int col = n * 8 + tg * 2 + e;
        if (col < p.dvd) out[col] = from_acc<T>(o[n][r * 2 + e] * inv);
      }
    if (tg == 0)
      p.lse_out[static_cast<int64_t>(h) * p.t + tq + row] = (m[r] + lg2(l[r])) * float(kLn2);
  }
}

}  // namespace

template <class T, int KD, int VD>
void launch_fwd_tc(const AttnParams<T>& p, int64_t n_tiles, cudaStream_t stream) {
  constexpr size_t smem = tc_fwd_smem_bytes(KD, VD);
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
