// Embedding on the GPU.
//
// Forward: out[n, :] = table[ids[n], :]. Rows are copied in 16-byte packs when table and out share
// a dtype and their rows are 16-byte aligned (a (rows x threads) block layout, grid-stride over
// rows), otherwise element by element with conversion through f32 (as the CPU's double round trip
// gives the same bits for f32/bf16/f16). An id outside [0, V) is reported through the context's
// error sink and its row is written with zeros; the table is never read out of bounds.
//
// Backward: dtable[v, :] += Σ_{n : ids[n] = v} dout[n, :], deterministic and in position order,
// with no float atomics: (1) keys = ids (an invalid id becomes the sentinel V and is reported),
// values = positions; (2) a stable radix sort (CUB) groups positions by id, keeping position order
// within each id; (3) one block per run of equal ids (x a slice of columns) sums the run's dout
// rows in position order in double, adds the sum to the table row in double and rounds once to
// the table's dtype (through f32 for bf16/f16) — the CPU reference's exact arithmetic, so the
// results are bit-identical to it.
#include <algorithm>
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/common.cuh"
#include "kernels/embedding.h"

namespace r1kit::kernels::cuda {
namespace {

constexpr const char* kFwdError =
    "[embedding] id {} at position {} of ids is out of range for the table (V = {})";
constexpr const char* kBwdError =
    "[embedding_backward] id {} at position {} of ids is out of range for the table (V = {})";

// ---- forward -----------------------------------------------------------------------------------

// Threads per row (a power of two, 1..256) for rows of `units` items; 256 threads per block.
int threads_per_row(int64_t units) {
  int t = 1;
  while (t < 256 && t < units) t <<= 1;
  return t;
}

// U is the unit copied: uint4 (a 16-byte pack of same-dtype rows) or the element type of the
// table when no conversion is needed; Tin/Tout convert through f32 otherwise.
template <class U>
__global__ void embed_copy_kernel(U* __restrict__ out, const int32_t* __restrict__ ids,
                                  const U* __restrict__ table, int64_t n, int64_t units,
                                  int64_t vocab, ErrorSink sink) {
  const int64_t rows_per_block = blockDim.y;
  for (int64_t r = blockIdx.x * rows_per_block + threadIdx.y; r < n;
       r += static_cast<int64_t>(gridDim.x) * rows_per_block) {
    const int32_t id = ids[r];
    U* dst = out + r * units;
    if (id < 0 || id >= vocab) {
      if (threadIdx.x == 0) sink.report(id, r, vocab);
      for (int64_t j = threadIdx.x; j < units; j += blockDim.x) dst[j] = U{};
      continue;
    }
    const U* src = table + static_cast<int64_t>(id) * units;
    // Four loads in flight per thread before their stores.
    for (int64_t j0 = threadIdx.x; j0 < units; j0 += 4 * static_cast<int64_t>(blockDim.x)) {
      U tmp[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int64_t j = j0 + u * static_cast<int64_t>(blockDim.x);
        if (j < units) tmp[u] = src[j];
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int64_t j = j0 + u * static_cast<int64_t>(blockDim.x);
        if (j < units) dst[j] = tmp[u];
      }
    }
  }
}

template <class Tin, class Tout>
__global__ void embed_convert_kernel(Tout* __restrict__ out, const int32_t* __restrict__ ids,
                                     const Tin* __restrict__ table, int64_t n, int64_t ch,
                                     int64_t vocab, ErrorSink sink) {
  const int64_t rows_per_block = blockDim.y;
  for (int64_t r = blockIdx.x * rows_per_block + threadIdx.y; r < n;
       r += static_cast<int64_t>(gridDim.x) * rows_per_block) {
    const int32_t id = ids[r];
    Tout* dst = out + r * ch;
    if (id < 0 || id >= vocab) {
      if (threadIdx.x == 0) sink.report(id, r, vocab);
      for (int64_t j = threadIdx.x; j < ch; j += blockDim.x) dst[j] = from_acc<Tout>(0.0f);
      continue;
    }
    const Tin* src = table + static_cast<int64_t>(id) * ch;
    for (int64_t j = threadIdx.x; j < ch; j += blockDim.x)
      dst[j] = from_acc<Tout>(static_cast<float>(to_acc(src[j])));
  }
}

dim3 row_block(int64_t units) {
  const int tx = threads_per_row(units);
  return dim3(static_cast<unsigned>(tx), static_cast<unsigned>(256 / tx));
}

template <class U>
void launch_copy(void* out, const int32_t* ids, const void* table, int64_t n, int64_t units,
                 int64_t vocab, ErrorSink sink, Context& ctx) {
  const dim3 block = row_block(units);
  const unsigned grid = grid_for(ctx, n, static_cast<int>(block.y));
  embed_copy_kernel<U><<<grid, block, 0, stream_of(ctx)>>>(
      static_cast<U*>(out), ids, static_cast<const U*>(table), n, units, vocab, sink);
  R1_CUDA_CHECK_LAUNCH();
}

// ---- backward ----------------------------------------------------------------------------------

// keys[n] = ids[n] (or the sentinel V when out of range, reported), vals[n] = n.
__global__ void embed_keys_kernel(uint32_t* __restrict__ keys, int32_t* __restrict__ vals,
                                  const int32_t* __restrict__ ids, int64_t n, int64_t vocab,
                                  ErrorSink sink) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t id = ids[i];
    const bool ok = id >= 0 && id < vocab;
    if (!ok) sink.report(id, i, vocab);
    keys[i] = ok ? static_cast<uint32_t>(id) : static_cast<uint32_t>(vocab);
    vals[i] = static_cast<int32_t>(i);
  }
}

// The table row update, rounded as the CPU reference rounds: double sum -> f32 (-> bf16/f16), or
// double for f64 tables.
template <class T>
__device__ __forceinline__ T round_like_cpu(double d) {
  if constexpr (std::is_same_v<T, double>) {
    return d;
  } else {
    return from_acc<T>(static_cast<float>(d));
  }
}

// Number of dout elements a thread owns in a row: one 16-byte pack of Tg, or one element.
template <class Tg, bool kVec>
inline constexpr int kGroup = kVec ? kPack<Tg> : 1;

template <class Tg, bool kVec>
__device__ __forceinline__ void load_group(const Tg* p, double (&x)[kGroup<Tg, kVec>]) {
  if constexpr (kVec) {
    const Pack<Tg> pk = load_pack(p);
#pragma unroll
    for (int k = 0; k < kPack<Tg>; ++k) x[k] = static_cast<double>(to_acc(pk.v[k]));
  } else {
    x[0] = static_cast<double>(to_acc(*p));
  }
}

// grid.x: sorted positions i (grid-stride); a block whose i starts a run of equal keys owns that
// run. grid.y: slices of blockDim.x column groups. Only run starts do work.
template <class Tt, class Tg, bool kVec>
__global__ void embed_accumulate_kernel(Tt* __restrict__ dtable, const Tg* __restrict__ dout,
                                        const uint32_t* __restrict__ keys,
                                        const int32_t* __restrict__ pos, int64_t n, int64_t ch,
                                        uint32_t sentinel) {
  constexpr int G = kGroup<Tg, kVec>;
  const int64_t col = (static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x) * G;
  const bool active = col < ch;
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const uint32_t key = keys[i];  // uniform across the block
    if (key == sentinel || (i > 0 && keys[i - 1] == key)) continue;
    // The run's end: the block tests blockDim.x keys at a time.
    int64_t end = i + 1;
    for (;;) {
      const int64_t j = end + threadIdx.x;
      const bool differs = j >= n || keys[j] != key;
      const unsigned any = __syncthreads_or(differs);
      if (!any) {
        end += blockDim.x;
        continue;
      }
      // The first differing index: smallest threadIdx.x with differs set.
      __shared__ int first;
      if (threadIdx.x == 0) first = blockDim.x;
      __syncthreads();
      if (differs) atomicMin(&first, static_cast<int>(threadIdx.x));
      __syncthreads();
      end += first;
      __syncthreads();  // `first` is rewritten by the next run's search
      break;
    }
    if (!active) continue;
    double acc[G];
#pragma unroll
    for (int k = 0; k < G; ++k) acc[k] = 0.0;
    // Σ in position order; eight rows' loads are issued before their adds.
    int64_t p = i;
    for (; p + 8 <= end; p += 8) {
      double x[8][G];
#pragma unroll
      for (int u = 0; u < 8; ++u)
        load_group<Tg, kVec>(dout + static_cast<int64_t>(pos[p + u]) * ch + col, x[u]);
#pragma unroll
      for (int u = 0; u < 8; ++u)
#pragma unroll
        for (int k = 0; k < G; ++k) acc[k] += x[u][k];
    }
    for (; p < end; ++p) {
      double x[G];
      load_group<Tg, kVec>(dout + static_cast<int64_t>(pos[p]) * ch + col, x);
#pragma unroll
      for (int k = 0; k < G; ++k) acc[k] += x[k];
    }
    Tt* row = dtable + static_cast<int64_t>(key) * ch + col;
    if constexpr (kVec && std::is_same_v<Tt, Tg>) {
      Pack<Tt> r = load_pack(row);
#pragma unroll
      for (int k = 0; k < G; ++k)
        r.v[k] = round_like_cpu<Tt>(static_cast<double>(to_acc(r.v[k])) + acc[k]);
      store_pack(row, r);
    } else {
#pragma unroll
      for (int k = 0; k < G; ++k)
        row[k] = round_like_cpu<Tt>(static_cast<double>(to_acc(row[k])) + acc[k]);
    }
  }
}

template <class Tt, class Tg>
void launch_accumulate(const TensorView& dtable, const TensorView& dout, const uint32_t* keys,
                       const int32_t* pos, int64_t n, Context& ctx) {
  const int64_t ch = dtable.shape[1];
  const auto sentinel = static_cast<uint32_t>(dtable.shape[0]);
  // Packs of dout (and of dtable when it has dout's dtype: both rows must then be aligned).
  const bool vec = ch % kPack<Tg> == 0 && rows_aligned16(dout.data, ch, sizeof(Tg)) &&
                   (!std::is_same_v<Tt, Tg> || rows_aligned16(dtable.data, ch, sizeof(Tt)));
  const int64_t groups = vec ? ch / kPack<Tg> : ch;
  int threads = 32;
  while (threads < 256 && threads < groups) threads <<= 1;
  const int64_t slices64 = (groups + threads - 1) / threads;
  R1_CHECK(slices64 <= 65535, "[embedding_backward] C = {} is too wide for one launch on CUDA", ch);
  const auto slices = static_cast<unsigned>(slices64);
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(sm_count(ctx)) * 32 / slices);
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(n, cap)), slices);
  if (vec) {
    embed_accumulate_kernel<Tt, Tg, true><<<grid, threads, 0, stream_of(ctx)>>>(
        dtable.ptr<Tt>(), dout.ptr<Tg>(), keys, pos, n, ch, sentinel);
  } else {
    embed_accumulate_kernel<Tt, Tg, false><<<grid, threads, 0, stream_of(ctx)>>>(
        dtable.ptr<Tt>(), dout.ptr<Tg>(), keys, pos, n, ch, sentinel);
  }
  R1_CUDA_CHECK_LAUNCH();
}

// Bits needed for keys in [0, v] (v itself is the sentinel).
int key_bits(int64_t v) {
  int b = 1;
  while (b < 32 && (int64_t{1} << b) <= v) ++b;
  return b;
}

}  // namespace

void embedding_forward(const TensorView& out, const TensorView& ids, const TensorView& table,
                       Context& ctx) {
  const int64_t n = ids.shape[0], ch = table.shape[1], vocab = table.shape[0];
  if (n == 0) return;
  const ErrorSink sink = error_sink(ctx, kFwdError);
  const int32_t* id = ids.ptr<int32_t>();
  if (ch == 0) {
    // No row data, but the ids are still checked (zero units per row: nothing is copied).
    launch_copy<uint8_t>(out.data, id, table.data, n, 0, vocab, sink, ctx);
    return;
  }
  if (table.dtype == out.dtype) {
    const size_t elem = dtype_size(table.dtype);
    const auto row_bytes = static_cast<int64_t>(ch * static_cast<int64_t>(elem));
    if (row_bytes % 16 == 0 && aligned16(out.data) && aligned16(table.data)) {
      launch_copy<uint4>(out.data, id, table.data, n, row_bytes / 16, vocab, sink, ctx);
    } else if (elem == 8) {
      launch_copy<uint64_t>(out.data, id, table.data, n, ch, vocab, sink, ctx);
    } else if (elem == 4) {
      launch_copy<uint32_t>(out.data, id, table.data, n, ch, vocab, sink, ctx);
    } else {
      launch_copy<uint16_t>(out.data, id, table.data, n, ch, vocab, sink, ctx);
    }
    return;
  }
  // Different dtypes (f32/bf16/f16: f64 only pairs with f64): convert through f32.
  dispatch_float(table.dtype, "embedding", [&](auto tin) {
    using Tin = decltype(tin);
    dispatch_float(out.dtype, "embedding", [&](auto tout) {
      using Tout = decltype(tout);
      if constexpr (!std::is_same_v<Tin, Tout> && !std::is_same_v<Tin, double> &&
                    !std::is_same_v<Tout, double>) {
        const dim3 block = row_block(ch);
        const unsigned grid = grid_for(ctx, n, static_cast<int>(block.y));
        embed_convert_kernel<Tin, Tout><<<grid, block, 0, stream_of(ctx)>>>(
            out.ptr<Tout>(), id, table.ptr<Tin>(), n, ch, vocab, sink);
        R1_CUDA_CHECK_LAUNCH();
      } else {
        R1_THROW("[embedding] table {} and out {}: f64 pairs only with f64", table.describe(),
                 out.describe());
      }
    });
  });
}

void embedding_backward(const TensorView& dtable, const TensorView& dout, const TensorView& ids,
                        Context& ctx) {
  const int64_t n = ids.shape[0], vocab = dtable.shape[0];
  if (n == 0) return;
  R1_CHECK(n <= INT32_MAX, "[embedding_backward] {} positions: at most 2^31 - 1 on CUDA", n);
  R1_CHECK(vocab < INT32_MAX, "[embedding_backward] V = {} too large on CUDA", vocab);
  cudaStream_t stream = stream_of(ctx);
  const int count = static_cast<int>(n);

  // (1) keys and positions
  Tensor keys_in = ctx.empty({n}, DType::u32), keys_out = ctx.empty({n}, DType::u32);
  Tensor pos_in = ctx.empty({n}, DType::i32), pos_out = ctx.empty({n}, DType::i32);
  {
    const int threads = 256;
    embed_keys_kernel<<<grid_for(ctx, n, threads), threads, 0, stream>>>(
        keys_in.ptr<uint32_t>(), pos_in.ptr<int32_t>(), ids.ptr<int32_t>(), n, vocab,
        error_sink(ctx, kBwdError));
    R1_CUDA_CHECK_LAUNCH();
  }
  // (2) stable sort of positions by id
  const int end_bit = key_bits(vocab);
  size_t temp_bytes = 0;
  R1_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in.ptr<uint32_t>(),
                                                keys_out.ptr<uint32_t>(), pos_in.ptr<int32_t>(),
                                                pos_out.ptr<int32_t>(), count, 0, end_bit, stream));
  Tensor temp = ctx.empty({static_cast<int64_t>(std::max<size_t>(temp_bytes, 1))}, DType::u8);
  R1_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, keys_in.ptr<uint32_t>(),
                                                keys_out.ptr<uint32_t>(), pos_in.ptr<int32_t>(),
                                                pos_out.ptr<int32_t>(), count, 0, end_bit, stream));
  if (dtable.shape[1] == 0) return;
  // (3) per-run sums in position order, added to the table rows
  dispatch_float(dtable.dtype, "embedding_backward", [&](auto tt) {
    using Tt = decltype(tt);
    dispatch_float(dout.dtype, "embedding_backward", [&](auto tg) {
      using Tg = decltype(tg);
      // f64 pairs only with f64 (the front-end's same_precision); no kernel for mixed pairs.
      if constexpr (std::is_same_v<Tt, double> == std::is_same_v<Tg, double>) {
        launch_accumulate<Tt, Tg>(dtable, dout, keys_out.ptr<uint32_t>(), pos_out.ptr<int32_t>(), n,
                                  ctx);
      } else {
        R1_THROW("[embedding_backward] dtable {} and dout {} mix f64 with another dtype",
                 dtable.describe(), dout.describe());
      }
    });
  });
}

}  // namespace r1kit::kernels::cuda
