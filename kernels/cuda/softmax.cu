// Softmax and log-softmax over the last dim of (N, V) on the GPU: one warp or block per row
// (kernels/cuda/vocab_rows.cuh), 16-byte packs, fp32 math (double for f64).
//   forward:  pass 1 folds the online max / sum-exp (keeping the row in shared memory when it
//             fits), pass 2 writes y from the cached (or re-read) row. y may be x (each element is
//             read and written by the same thread, read first).
//   backward: softmax: pass 1 Σ dy·y (dy and y cached), pass 2 dx = y·(dy − Σ);
//             log-softmax: pass 1 Σ dy (dy cached), pass 2 dx = dy − exp(y)·Σ. dx may be dy.
// Deterministic: fixed partition of each row over the threads and a fixed merge tree.
#include "kernels/cuda/vocab_rows.cuh"
#include "kernels/softmax.h"

namespace r1kit::kernels::cuda {
namespace {
using namespace vocab;

template <class T, bool kLog, bool kWarp>
__global__ void __launch_bounds__(kMaxThreads)
    softmax_fwd_kernel(T* y, const T* x, int64_t n, int v, bool vec, bool cache, int cap) {
  using A = acc_t<T>;
  using St = Stats<A, false>;
  constexpr int P = kPack<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ St red[32];
  const Group<kWarp> g;
  RowCache<T> rc;
  if (cache) rc = RowCache<T>(smem, g.slot, v, vec, cap);
  for (int64_t row = g.first_row(); row < n; row += g.row_stride()) {
    const T* xr = x + row * v;
    T* yr = y + row * v;
    const RowSpan sp = row_span(xr, v, vec);

    // Pass 1: m and s.
    St st = St::empty();
    walk<P>(
        sp, v, g.tid, g.nt,
        [&](int j, int slot) {
          const T xv = xr[j];
          if (cache) rc.scalars[slot] = xv;
          const A z[1] = {to_acc(xv)};
          st.add(z);
        },
        [&](int k0) {
          batches<kUnroll>(
              k0, g.nt, sp.npack,
              [&](int k) {
                // Cached packs are not read again from global memory; the others stay in L2.
                return cache && rc.has(k) ? load_pack_stream(xr + sp.head + k * P)
                                          : load_pack(xr + sp.head + k * P);
              },
              [&](int k, const Pack<T>& p) {
                if (cache && rc.has(k)) rc.packs[k] = p;
                A z[P];
                unpack(p, z);
                st.add(z);
              });
        });
    st = group_merge<kWarp>(st, red);
    st.finish(v);
    const A m = st.m, log_s = vlog(st.s), inv_s = A(1) / st.s;
    // y = exp(x − m) / s, or (x − m) − log s (subtracting m first keeps |y| accurate).
    auto f = [&](A xv) { return kLog ? (xv - m) - log_s : vexp(xv - m) * inv_s; };

    // Pass 2: y.
    walk<P>(
        sp, v, g.tid, g.nt,
        [&](int j, int slot) {
          const T xv = cache ? rc.scalars[slot] : xr[j];
          yr[j] = from_acc<T>(f(to_acc(xv)));
        },
        [&](int k0) {
          batches<kUnroll>(
              k0, g.nt, sp.npack,
              [&](int k) {
                return cache && rc.has(k) ? rc.packs[k] : load_pack_stream(xr + sp.head + k * P);
              },
              [&](int k, const Pack<T>& p) {
                A z[P];
                unpack(p, z);
#pragma unroll
                for (int i = 0; i < P; ++i) z[i] = f(z[i]);
                store_pack(yr + sp.head + k * P, pack<T>(z));
              });
        });
  }
}

// dx = y·(dy − Σ dy·y) (softmax) or dx = dy − exp(y)·Σ dy (log-softmax).
template <class T, bool kLog, bool kWarp>
__global__ void __launch_bounds__(kMaxThreads)
    softmax_bwd_kernel(T* dx, const T* dy, const T* __restrict__ y, int64_t n, int v, bool vec,
                       bool cache, int cap) {
  using A = acc_t<T>;
  constexpr int P = kPack<T>;
  // Packs of each array in flight together: pass 1 loads dy (and y), pass 2 dy and y.
  constexpr int kU1 = kLog ? kUnroll : kUnroll / 2, kU2 = kUnroll / 2;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ A red[32];
  const Group<kWarp> g;
  // Cached: dy (and y for the softmax), one region each.
  RowCache<T> cdy, cy;
  if (cache) {
    const int regions = kLog ? 1 : 2;
    cdy = RowCache<T>(smem, g.slot * regions, v, vec, cap);
    if (!kLog) cy = RowCache<T>(smem, g.slot * regions + 1, v, vec, cap);
  }
  struct Two {
    Pack<T> a, b;
  };
  for (int64_t row = g.first_row(); row < n; row += g.row_stride()) {
    const T* dyr = dy + row * v;
    const T* yr = y + row * v;
    T* dxr = dx + row * v;
    const RowSpan sp = row_span(dyr, v, vec);

    // Pass 1: Σ dy·y or Σ dy.
    A acc = A(0);
    walk<P>(
        sp, v, g.tid, g.nt,
        [&](int j, int slot) {
          const T d = dyr[j];
          if (cache) cdy.scalars[slot] = d;
          if constexpr (kLog) {
            acc += to_acc(d);
          } else {
            const T yv = yr[j];
            if (cache) cy.scalars[slot] = yv;
            acc += to_acc(d) * to_acc(yv);
          }
        },
        [&](int k0) {
          batches<kU1>(
              k0, g.nt, sp.npack,
              [&](int k) {
                Two t;
                t.a = load_pack(dyr + sp.head + k * P);
                if constexpr (!kLog) t.b = load_pack(yr + sp.head + k * P);
                return t;
              },
              [&](int k, const Two& t) {
                if (cache && cdy.has(k)) {
                  cdy.packs[k] = t.a;
                  if constexpr (!kLog) cy.packs[k] = t.b;
                }
                A d[P];
                unpack(t.a, d);
                if constexpr (kLog) {
#pragma unroll
                  for (int i = 0; i < P; ++i) acc += d[i];
                } else {
                  A yv[P];
                  unpack(t.b, yv);
#pragma unroll
                  for (int i = 0; i < P; ++i) acc += d[i] * yv[i];
                }
              });
        });
    const A sum = group_sum<kWarp>(acc, red);
    auto f = [&](A d, A yv) { return kLog ? d - vexp(yv) * sum : yv * (d - sum); };

    // Pass 2: dx (dy read before dx is written, by the same thread).
    walk<P>(
        sp, v, g.tid, g.nt,
        [&](int j, int slot) {
          const T d = cache ? cdy.scalars[slot] : dyr[j];
          const T yv = (cache && !kLog) ? cy.scalars[slot] : yr[j];
          dxr[j] = from_acc<T>(f(to_acc(d), to_acc(yv)));
        },
        [&](int k0) {
          batches<kU2>(
              k0, g.nt, sp.npack,
              [&](int k) {
                const bool c = cache && cdy.has(k);
                Two t;
                t.a = c ? cdy.packs[k] : load_pack_stream(dyr + sp.head + k * P);
                t.b = (c && !kLog) ? cy.packs[k] : load_pack_stream(yr + sp.head + k * P);
                return t;
              },
              [&](int k, const Two& t) {
                A d[P], yv[P];
                unpack(t.a, d);
                unpack(t.b, yv);
#pragma unroll
                for (int i = 0; i < P; ++i) d[i] = f(d[i], yv[i]);
                store_pack(dxr + sp.head + k * P, pack<T>(d));
              });
        });
  }
}

template <bool kLog>
void forward(const TensorView& y, const TensorView& x, Context& ctx) {
  if (x.numel() == 0) return;
  const int64_t n = x.shape[0];
  const int v = row_len(x.shape[1], kLog ? "log_softmax" : "softmax");
  dispatch_float(x.dtype, kLog ? "log_softmax" : "softmax", [&](auto tag) {
    using T = decltype(tag);
    const bool vec = same_alignment({x.data, y.data});
    const RowPlan p = plan_rows(ctx, n, v, sizeof(T), vec, 1);
    auto* kernel = p.warp ? softmax_fwd_kernel<T, kLog, true> : softmax_fwd_kernel<T, kLog, false>;
    allow_smem(kernel, p);
    kernel<<<p.blocks, p.threads, p.smem, stream_of(ctx)>>>(y.ptr<T>(), x.ptr<T>(), n, v, vec,
                                                            p.cache, p.cap);
    R1_CUDA_CHECK_LAUNCH();
  });
}

template <bool kLog>
void backward(const TensorView& dx, const TensorView& dy, const TensorView& y, Context& ctx) {
  if (y.numel() == 0) return;
  const int64_t n = y.shape[0];
  const int v = row_len(y.shape[1], kLog ? "log_softmax_backward" : "softmax_backward");
  dispatch_float(y.dtype, kLog ? "log_softmax_backward" : "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    const bool vec = same_alignment({dx.data, dy.data, y.data});
    const RowPlan p = plan_rows(ctx, n, v, sizeof(T), vec, kLog ? 1 : 2);
    auto* kernel = p.warp ? softmax_bwd_kernel<T, kLog, true> : softmax_bwd_kernel<T, kLog, false>;
    allow_smem(kernel, p);
    kernel<<<p.blocks, p.threads, p.smem, stream_of(ctx)>>>(dx.ptr<T>(), dy.ptr<T>(), y.ptr<T>(), n,
                                                            v, vec, p.cache, p.cap);
    R1_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

void softmax_forward(const TensorView& y, const TensorView& x, Context& ctx) {
  forward<false>(y, x, ctx);
}

void log_softmax_forward(const TensorView& y, const TensorView& x, Context& ctx) {
  forward<true>(y, x, ctx);
}

void softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                      Context& ctx) {
  backward<false>(dx, dy, y, ctx);
}

void log_softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                          Context& ctx) {
  backward<true>(dx, dy, y, ctx);
}

}  // namespace r1kit::kernels::cuda
