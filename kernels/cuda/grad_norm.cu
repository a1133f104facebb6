// Gradient-norm primitives on the GPU.
//
// Every gradient is cut into fixed chunks of kChunk elements; one block owns one chunk. The
// tensors go to the kernels in batches of up to kMaxSegs passed by value as a kernel argument
// (pointer, length, dtype, first chunk), so a list of many small tensors costs one launch per
// batch, not per tensor, and nothing is copied to the device; a block finds its tensor by binary
// search over the batch's chunk offsets.
//
// grad_sum_squares: each block sums g² of its chunk in double (each thread over a fixed set of
// elements, 16-byte packs where the tensor is aligned, then a fixed shuffle tree) into one partial
// per chunk; one final block adds all partials in a fixed order. The result depends only on the
// tensors, not on timing: two runs give the same bits. It is not bit-identical to the CPU (whose
// blocks are 8192 elements added sequentially) but agrees to rounding in double. The API returns
// a double, so the context's stream is synchronised once to read it back (ctx.copy).
//
// grad_scale: g ← g·coef in place, computed in double and rounded once to the dtype (f32, then
// bf16/f16, as the CPU reference does), so it is bit-identical to the CPU.
#include "kernels/cuda/common.cuh"
#include "kernels/grad_norm.h"

#include <algorithm>

namespace r1kit::kernels::cuda {
namespace {

constexpr int64_t kChunk = 16384;  // elements per block (and per partial sum)
constexpr int kThreads = 256;
constexpr int kMaxSegs = 112;  // tensors per launch: the argument stays below 4 KB
constexpr int kFinalThreads = 1024;

struct Segs {
  const void* ptr[kMaxSegs];
  int64_t n[kMaxSegs];
  int64_t first[kMaxSegs];  // first chunk of each tensor, relative to the launch
  uint8_t dtype[kMaxSegs];  // DType
  uint8_t vec[kMaxSegs];    // 16-byte aligned: walk in packs
  int count;
  int64_t out_base;  // this launch's first partial in the output
};
static_assert(sizeof(Segs) < 4096, "kernel argument limit");

struct Chunk {
  int seg;
  int64_t begin, len;
};

__device__ __forceinline__ Chunk find_chunk(const Segs& s, int64_t b) {
  int lo = 0, hi = s.count - 1;  // the last tensor whose first chunk is <= b
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (s.first[mid] <= b) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const int64_t begin = (b - s.first[lo]) * kChunk;
  return {lo, begin, min(kChunk, s.n[lo] - begin)};
}

__device__ __forceinline__ double sq(double x) {
  return x * x;
}

// This thread's share of Σ x² over p[0, len): packs (when aligned) then the tail, fixed order.
template <class T>
__device__ double chunk_sum_squares(const T* p, int64_t len, bool vec) {
  double s = 0.0;
  int64_t tail = 0;
  if (vec) {
    constexpr int K = kPack<T>;
    const int64_t packs = len / K;
#pragma unroll 4
    for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
      const Pack<T> pk = load_pack_stream(p + q * K);
#pragma unroll
      for (int k = 0; k < K; ++k) s += sq(static_cast<double>(to_acc(pk.v[k])));
    }
    tail = packs * K;
  }
  for (int64_t i = tail + threadIdx.x; i < len; i += blockDim.x)
    s += sq(static_cast<double>(to_acc(p[i])));
  return s;
}

__global__ void __launch_bounds__(kThreads)
    sum_squares_kernel(const __grid_constant__ Segs s, double* __restrict__ partials) {
  __shared__ double scratch[32];
  const Chunk c = find_chunk(s, blockIdx.x);
  const bool vec = s.vec[c.seg] != 0;
  const void* base = s.ptr[c.seg];
  double acc = 0.0;
  switch (static_cast<DType>(s.dtype[c.seg])) {
    case DType::f64:
      acc = chunk_sum_squares(static_cast<const double*>(base) + c.begin, c.len, vec);
      break;
    case DType::f32:
      acc = chunk_sum_squares(static_cast<const float*>(base) + c.begin, c.len, vec);
      break;
    case DType::bf16:
      acc = chunk_sum_squares(static_cast<const bf16*>(base) + c.begin, c.len, vec);
      break;
    default:
      acc = chunk_sum_squares(static_cast<const f16*>(base) + c.begin, c.len, vec);
      break;
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partials[s.out_base + blockIdx.x] = acc;
}

// One block: thread t adds partials t, t + 1024, ... in order, then the fixed shuffle tree.
__global__ void __launch_bounds__(kFinalThreads)
    final_sum_kernel(const double* __restrict__ partials, int64_t count, double* __restrict__ out) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *out = s;
}

// x·coef in double, rounded once as the CPU reference rounds (f32, then bf16/f16).
template <class T>
__device__ __forceinline__ T scaled(T x, double coef) {
  const double y = __dmul_rn(static_cast<double>(to_acc(x)), coef);
  if constexpr (std::is_same_v<T, double>) {
    return y;
  } else {
    return from_acc<T>(static_cast<float>(y));
  }
}

template <class T>
__device__ void chunk_scale(T* p, int64_t len, bool vec, double coef) {
  int64_t tail = 0;
  if (vec) {
    constexpr int K = kPack<T>;
    const int64_t packs = len / K;
#pragma unroll 4
    for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
      Pack<T> pk = load_pack_stream(p + q * K);
#pragma unroll
      for (int k = 0; k < K; ++k) pk.v[k] = scaled(pk.v[k], coef);
      store_pack(p + q * K, pk);
    }
    tail = packs * K;
  }
  for (int64_t i = tail + threadIdx.x; i < len; i += blockDim.x) p[i] = scaled(p[i], coef);
}

__global__ void __launch_bounds__(kThreads)
    scale_kernel(const __grid_constant__ Segs s, double coef) {
  const Chunk c = find_chunk(s, blockIdx.x);
  const bool vec = s.vec[c.seg] != 0;
  void* base = const_cast<void*>(s.ptr[c.seg]);
  switch (static_cast<DType>(s.dtype[c.seg])) {
    case DType::f64:
      chunk_scale(static_cast<double*>(base) + c.begin, c.len, vec, coef);
      break;
    case DType::f32:
      chunk_scale(static_cast<float*>(base) + c.begin, c.len, vec, coef);
      break;
    case DType::bf16:
      chunk_scale(static_cast<bf16*>(base) + c.begin, c.len, vec, coef);
      break;
    default:
      chunk_scale(static_cast<f16*>(base) + c.begin, c.len, vec, coef);
      break;
  }
}

// Calls launch(segs, chunks) for each batch of up to kMaxSegs non-empty tensors, in list order;
// returns the total number of chunks.
template <class F>
int64_t for_each_batch(const std::vector<TensorView>& grads, const char* op, F&& launch) {
  Segs s{};
  int64_t chunks = 0, total = 0;
  auto flush = [&] {
    if (s.count == 0) return;
    s.out_base = total;
    launch(s, chunks);
    total += chunks;
    s = Segs{};
    chunks = 0;
  };
  for (const TensorView& g : grads) {
    const int64_t n = g.numel();
    if (n == 0) continue;
    if (g.dtype != DType::f32 && g.dtype != DType::f64 && g.dtype != DType::bf16 &&
        g.dtype != DType::f16)
      R1_THROW("[{}] unsupported dtype for {} on CUDA", op, g.describe());
    const int64_t nc = (n + kChunk - 1) / kChunk;
    if (s.count == kMaxSegs || chunks + nc > INT32_MAX) flush();
    R1_CHECK(nc <= INT32_MAX, "[{}] {} is too large for one launch", op, g.describe());
    const int i = s.count++;
    s.ptr[i] = g.data;
    s.n[i] = n;
    s.first[i] = chunks;
    s.dtype[i] = static_cast<uint8_t>(g.dtype);
    s.vec[i] = aligned16(g.data) ? 1 : 0;
    chunks += nc;
  }
  flush();
  return total;
}

}  // namespace

double grad_sum_squares(const std::vector<TensorView>& grads, Context& ctx) {
  int64_t total = 0;
  for (const TensorView& g : grads) total += (g.numel() + kChunk - 1) / kChunk;
  if (total == 0) return 0.0;
  cudaStream_t stream = stream_of(ctx);
  Tensor partials = ctx.empty({total}, DType::f64);
  const int64_t written =
      for_each_batch(grads, "grad_global_norm", [&](const Segs& s, int64_t chunks) {
        sum_squares_kernel<<<static_cast<unsigned>(chunks), kThreads, 0, stream>>>(
            s, partials.ptr<double>());
        R1_CUDA_CHECK_LAUNCH();
      });
  R1_CHECK(written == total, "[grad_global_norm] chunk count mismatch {} != {}", written, total);
  Tensor sum = ctx.empty({1}, DType::f64);
  final_sum_kernel<<<1, kFinalThreads, 0, stream>>>(partials.ptr<double>(), total,
                                                    sum.ptr<double>());
  R1_CUDA_CHECK_LAUNCH();
  // The one host round trip: the API returns the value (synchronises the context's stream).
  Tensor host(Shape{1}, DType::f64, ctx.host_allocator());
  ctx.copy(host, sum);
  return host.ptr<double>()[0];
}

void grad_scale(const std::vector<TensorView>& grads, double coef, Context& ctx) {
  cudaStream_t stream = stream_of(ctx);
  for_each_batch(grads, "clip_grad_norm", [&](const Segs& s, int64_t chunks) {
    scale_kernel<<<static_cast<unsigned>(chunks), kThreads, 0, stream>>>(s, coef);
    R1_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace r1kit::kernels::cuda
