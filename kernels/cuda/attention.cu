// Attention on CUDA, host side: head-dim bucket, (sequence, tile) lists built from the host copy
// of cu_seqlens, the D = Σ dout·out kernel, and the launches of the tiled kernels
// (attention_fwd.cu, attention_bwd_dkdv.cu, attention_bwd_dq.cu; design in attention.cuh).
//
// Forward: one kernel, one block per (query tile, query head); tensor cores (mma.sync) for bf16
// and f16, CUDA cores for f32 and f64. Backward (tensor cores for bf16 / f16 up to head dim 192,
// CUDA cores otherwise): D (one warp per row and head), then dk/dv (one block per key tile and kv
// head, looping over the group's query heads in a fixed order) and dq (one block per query tile and
// query head). Every output element is written by exactly one thread with a fixed summation order:
// results are deterministic.
#include <algorithm>
#include <memory>
#include <type_traits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/attention_entry.cuh"

namespace r1kit::kernels::cuda {
namespace {
using namespace attn;

// D[h, t] = Σ_d dout[t, h, d] · out[t, h, d]: one warp per (token, head).
template <class T>
__global__ void attn_bwd_dot_kernel(const AttnParams<T> p) {
  using A = acc_t<T>;
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  if (w >= p.t * p.hq) return;  // whole warps
  const int64_t t = w / p.hq;
  const int h = static_cast<int>(w % p.hq);
  const T* a = p.dout.row(t, h);
  const T* b = p.out.row(t, h);
  A s = 0;
  for (int c = lane; c < p.dvd; c += 32) s = fma(to_acc(a[c]), to_acc(b[c]), s);
  s = warp_sum(s);
  if (lane == 0) p.dd_out[static_cast<int64_t>(h) * p.t + t] = s;
}

struct Bucket {
  int kd, vd;
};
constexpr Bucket kBuckets[] = {{64, 64}, {128, 128}, {192, 128}, {256, 256}};

// The first compiled bucket (R1_ATTN_FOR_EACH_BUCKET) that holds both head dims.
Bucket pick_bucket(int64_t dqk, int64_t dv, const char* op) {
  for (const Bucket& b : kBuckets)
    if (dqk <= b.kd && dv <= b.vd) return b;
  R1_THROW("[{}] head dims Dqk = {}, Dv = {}: the CUDA kernels support head dims up to 256", op,
           dqk, dv);
}

// Calls f(KD, VD) with the bucket as integral constants.
template <class F>
void with_bucket(Bucket b, F&& f) {
  using std::integral_constant;
  if (b.kd == 64) {
    f(integral_constant<int, 64>{}, integral_constant<int, 64>{});
  } else if (b.kd == 128) {
    f(integral_constant<int, 128>{}, integral_constant<int, 128>{});
  } else if (b.kd == 192) {
    f(integral_constant<int, 192>{}, integral_constant<int, 128>{});
  } else {
    f(integral_constant<int, 256>{}, integral_constant<int, 256>{});
  }
}

// Tiles of `rows` rows of every non-empty sequence (an empty one has none), heaviest first so the
// long blocks start early: query tiles by descending row0 (more key tiles up to the diagonal),
// key tiles by descending number of rows from row0 to the sequence end (more query tiles).
std::vector<Tile> make_tiles(const int32_t* cu, int64_t n_seq, int rows, bool key_tiles) {
  std::vector<Tile> v;
  for (int64_t b = 0; b < n_seq; ++b) {
    const int32_t len = cu[b + 1] - cu[b];
    for (int32_t r0 = 0; r0 < len; r0 += rows) v.push_back({cu[b], len, r0, 0});
  }
  auto work = [key_tiles](const Tile& t) { return key_tiles ? t.seq_len - t.row0 : t.row0; };
  std::stable_sort(v.begin(), v.end(),
                   [&](const Tile& a, const Tile& b) { return work(a) > work(b); });
  return v;
}

// Device copy of tile lists, one after another, in one buffer, by an asynchronous copy on the
// stream. The host list must outlive that copy: for cudaMemcpyAsync from pageable memory the CUDA
// runtime documents only that it "might be synchronous" with respect to the host (API
// synchronization behavior), not that the driver has staged the buffer when the call returns. So
// the list moves to the heap and a host function queued after the copy frees it, in stream order,
// once the copy has completed (a host-function round trip per call, microseconds).
Tensor upload_tiles(std::vector<Tile>&& tiles, Context& ctx) {
  static_assert(sizeof(Tile) == 4 * sizeof(int32_t));
  const cudaStream_t stream = stream_of(ctx);
  auto host = std::make_unique<std::vector<Tile>>(std::move(tiles));
  Tensor d = ctx.empty({static_cast<int64_t>(host->size()) * 4}, DType::i32, "attention.tiles");
  R1_CUDA_CHECK(cudaMemcpyAsync(d.data(), host->data(), host->size() * sizeof(Tile),
                                cudaMemcpyHostToDevice, stream));
  const cudaError_t e = cudaLaunchHostFunc(
      stream, [](void* list) { delete static_cast<std::vector<Tile>*>(list); }, host.get());
  if (e != cudaSuccess) {
    (void)cudaStreamSynchronize(stream);  // the copy is done with the list; unique_ptr frees it
    R1_CUDA_CHECK(e);
  }
  (void)host.release();  // owned by the host function now
  return d;
}

template <class T>
HeadView<T> head_view(const TensorView& v, int64_t width) {
  HeadView<T> h;
  h.p = v.ptr<T>();
  h.s0 = v.stride[0];
  h.s1 = v.stride[1];
  const size_t es = sizeof(T);
  h.vec = aligned16(v.data) && (static_cast<uint64_t>(h.s0) * es) % 16 == 0 &&
          (static_cast<uint64_t>(h.s1) * es) % 16 == 0 && width % kPack<T> == 0;
  return h;
}
template <class T>
HeadView<const T> head_view_in(const TensorView& v, int64_t width) {
  const HeadView<T> m = head_view<T>(v, width);
  return HeadView<const T>{m.p, m.s0, m.s1, m.vec};
}

template <class T>
AttnParams<T> base_params(const TensorView& q, const TensorView& k, const TensorView& v,
                          double scale, const TensorView& lse, const char* op) {
  using A = acc_t<T>;
  R1_CHECK(lse.dtype == (std::is_same_v<T, double> ? DType::f64 : DType::f32),
           "[{}] lse {} must be f64 with f64 tensors and f32 otherwise on CUDA", op,
           lse.describe());
  AttnParams<T> p;
  p.t = q.shape[0];
  p.hq = static_cast<int>(q.shape[1]);
  p.hkv = static_cast<int>(k.shape[1]);
  p.group = p.hq / p.hkv;
  p.dqk = static_cast<int>(q.shape[2]);
  p.dvd = static_cast<int>(v.shape[2]);
  p.q = head_view_in<T>(q, p.dqk);
  p.k = head_view_in<T>(k, p.dqk);
  p.v = head_view_in<T>(v, p.dvd);
  p.scale = static_cast<A>(scale);
  p.scale_log2 = static_cast<A>(scale * kLog2e);
  return p;
}

// gridDim.x < 2^31 (every launch here is one-dimensional: blocks = tiles x heads).
void check_grid(int64_t tiles, int64_t heads, const char* op) {
  R1_CHECK(tiles * heads < (int64_t{1} << 31), "[{}] {} x {} blocks exceed the grid", op, tiles,
           heads);
}

}  // namespace

void attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                       const TensorView& k, const TensorView& v, const TensorView& cu_seqlens,
                       const int32_t* cu, double scale, Context& ctx) {
  if (q.shape[0] == 0) return;  // T = 0: nothing to compute
  const Bucket bucket = pick_bucket(q.shape[2], v.shape[2], "attention");
  const int64_t n_seq = cu_seqlens.shape[0] - 1;
  dispatch_float(q.dtype, "attention", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    AttnParams<T> p = base_params<T>(q, k, v, scale, lse, "attention");
    p.o = head_view<T>(out, p.dvd);
    p.lse_out = lse.ptr<A>();
    with_bucket(bucket, [&](auto kd, auto vd) {
      constexpr int KD = decltype(kd)::value, VD = decltype(vd)::value;
      constexpr bool kTensorCores = std::is_same_v<T, bf16> || std::is_same_v<T, f16>;
      const int rows = kTensorCores ? kTcBM : Shapes<A, KD, VD>::fwd.bm;
      std::vector<Tile> tiles = make_tiles(cu, n_seq, rows, false);
      const int64_t n = static_cast<int64_t>(tiles.size());
      if (n == 0) return;
      check_grid(n, p.hq, "attention");
      const Tensor dtiles = upload_tiles(std::move(tiles), ctx);
      p.tiles = reinterpret_cast<const Tile*>(dtiles.data());
      if constexpr (kTensorCores) {
        launch_fwd_tc<T, KD, VD>(p, n, stream_of(ctx));
      } else {
        launch_fwd<T, KD, VD>(p, n, stream_of(ctx));
      }
    });
  });
}

void attention_backward(const TensorView& dq, const TensorView& dk, const TensorView& dv,
                        const TensorView& dout, const TensorView& q, const TensorView& k,
                        const TensorView& v, const TensorView& out, const TensorView& lse,
                        const TensorView& cu_seqlens, const int32_t* cu, double scale,
                        Context& ctx) {
  if (q.shape[0] == 0) return;
  const Bucket bucket = pick_bucket(q.shape[2], v.shape[2], "attention_backward");
  const int64_t n_seq = cu_seqlens.shape[0] - 1;
  dispatch_float(q.dtype, "attention_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    AttnParams<T> p = base_params<T>(q, k, v, scale, lse, "attention_backward");
    p.out = head_view_in<T>(out, p.dvd);
    p.dout = head_view_in<T>(dout, p.dvd);
    p.dq = head_view<T>(dq, p.dqk);
    p.dk = head_view<T>(dk, p.dqk);
    p.dv = head_view<T>(dv, p.dvd);
    p.lse = lse.ptr<A>();
    const cudaStream_t stream = stream_of(ctx);

    // D = Σ dout·out per (head, token), in the accumulator type.
    const Tensor dd = ctx.empty({static_cast<int64_t>(p.hq), p.t}, lse.dtype, "attention.D");
    p.dd_out = dd.ptr<A>();
    p.dd = dd.ptr<A>();
    const int64_t warps = p.t * p.hq, threads = 256;
    const int64_t blocks = (warps * 32 + threads - 1) / threads;
    check_grid(blocks, 1, "attention_backward");
    attn_bwd_dot_kernel<T><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(p);
    R1_CUDA_CHECK_LAUNCH();

    with_bucket(bucket, [&](auto kd, auto vd) {
      constexpr int KD = decltype(kd)::value, VD = decltype(vd)::value;
      constexpr bool kTensorCores = (std::is_same_v<T, bf16> || std::is_same_v<T, f16>)&&KD <= 192;
      using S = Shapes<A, KD, VD>;
      std::vector<Tile> tiles = make_tiles(cu, n_seq, kTensorCores ? kTcBwdKeys : S::dkdv.bn, true);
      const int64_t n_key_tiles = static_cast<int64_t>(tiles.size());
      const std::vector<Tile> qtiles =
          make_tiles(cu, n_seq, kTensorCores ? kTcBM : S::dq.bm, false);
      const int64_t n_query_tiles = static_cast<int64_t>(qtiles.size());
      if (n_key_tiles == 0) return;
      check_grid(n_key_tiles, p.hkv, "attention_backward");
      check_grid(n_query_tiles, p.hq, "attention_backward");
      tiles.insert(tiles.end(), qtiles.begin(), qtiles.end());
      const Tensor dtiles = upload_tiles(std::move(tiles), ctx);
      const Tile* all = reinterpret_cast<const Tile*>(dtiles.data());
      if constexpr (kTensorCores) {
        launch_bwd_tc<T, KD, VD>(p, all, n_key_tiles, all + n_key_tiles, n_query_tiles, stream);
      } else {
        p.tiles = all;
        launch_bwd_dkdv<T, KD, VD>(p, n_key_tiles, stream);
        p.tiles = all + n_key_tiles;
        launch_bwd_dq<T, KD, VD>(p, n_query_tiles, stream);
      }
    });
  });
}

// The entry points of kernels/attention.h: copy cu_seqlens to the host (a synchronising copy; the
// tile lists need the lengths on the host). The front-end calls the overloads above with the copy
// it made for validation instead.
namespace {
std::vector<int32_t> host_offsets(const TensorView& cu, Context& ctx) {
  std::vector<int32_t> h(static_cast<size_t>(cu.shape[0]));
  if (cu.device.is_cpu()) {
    std::copy(cu.ptr<int32_t>(), cu.ptr<int32_t>() + cu.shape[0], h.begin());
  } else {
    TensorView hv(h.data(), DType::i32, Device{}, {cu.shape[0]}, cu.name);
    ctx.copy(hv, cu);
  }
  return h;
}
}  // namespace

void attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                       const TensorView& k, const TensorView& v, const TensorView& cu_seqlens,
                       double scale, Context& ctx) {
  const std::vector<int32_t> cu = host_offsets(cu_seqlens, ctx);
  attention_forward(out, lse, q, k, v, cu_seqlens, cu.data(), scale, ctx);
}

void attention_backward(const TensorView& dq, const TensorView& dk, const TensorView& dv,
                        const TensorView& dout, const TensorView& q, const TensorView& k,
                        const TensorView& v, const TensorView& out, const TensorView& lse,
                        const TensorView& cu_seqlens, double scale, Context& ctx) {
  const std::vector<int32_t> cu = host_offsets(cu_seqlens, ctx);
  attention_backward(dq, dk, dv, dout, q, k, v, out, lse, cu_seqlens, cu.data(), scale, ctx);
}

}  // namespace r1kit::kernels::cuda
