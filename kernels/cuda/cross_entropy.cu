// Token cross-entropy on the GPU: one warp or block per row (kernels/cuda/vocab_rows.cuh), 16-byte
// packs, fp32 math (double for f64), one pass over the logits each way.
//   forward:  the online max / sum-exp over the row; the row's first thread reads its target and
//             that logit up front (so the load overlaps the row), then writes lse and the loss.
//   backward: dlogits = (exp(x − lse) − [j = t])·dloss from the saved lse; ignored rows are
//             written 0 without reading the logits. dlogits may be logits (same thread reads each
//             element, then writes it).
// Targets live on the device, so the kernels check them: an out-of-range target (not the ignore
// index) is reported through the context's ErrorSink (thrown at the next synchronize) and its row
// gets a NaN loss / NaN gradient; nothing is read out of bounds. Deterministic.
#include "kernels/cross_entropy.h"
#include "kernels/cuda/vocab_rows.cuh"

namespace r1kit::kernels::cuda {
namespace {
using namespace vocab;

constexpr const char* kForwardBadTarget =
    "[cross_entropy] target {} at position {} of targets is out of range for logits (V = {}) and "
    "is not the ignore index";
constexpr const char* kBackwardBadTarget =
    "[cross_entropy_backward] target {} at position {} of targets is out of range for logits "
    "(V = {}) and is not the ignore index";

template <class T, bool kWarp>
__global__ void __launch_bounds__(kMaxThreads)
    ce_fwd_kernel(acc_t<T>* __restrict__ loss, acc_t<T>* __restrict__ lse, const T* __restrict__ x,
                  const int32_t* __restrict__ targets, int64_t n, int v, int32_t ignore, bool vec,
                  ErrorSink sink) {
  using A = acc_t<T>;
  using St = Stats<A, false>;
  constexpr int P = kPack<T>;
  __shared__ St red[32];
  const Group<kWarp> g;
  for (int64_t row = g.first_row(); row < n; row += g.row_stride()) {
    const T* xr = x + row * v;
    int32_t t = 0;
    A xt = A(0);
    if (g.tid == 0) {
      t = targets[row];
      if (t != ignore && t >= 0 && t < v) xt = to_acc(xr[t]);
    }
    const RowSpan sp = row_span(xr, v, vec);
    St st = St::empty();
    walk<P>(
        sp, v, g.tid, g.nt,
        [&](int j, int) {
          const A z[1] = {to_acc(xr[j])};
          st.add(z);
        },
        [&](int k0) {
          batches<kUnroll>(
              k0, g.nt, sp.npack, [&](int k) { return load_pack_stream(xr + sp.head + k * P); },
              [&](int, const Pack<T>& p) {
                A z[P];
                unpack(p, z);
                st.add(z);
              });
        });
    st = group_merge<kWarp>(st, red);
    st.finish(v);
    if (g.tid == 0) {
      // lse = m + log s;  loss = (m − x_t) + log s (accurate for large logits).
      const A log_s = vlog(st.s);
      lse[row] = st.m + log_s;
      A l;
      if (t == ignore) {
        l = A(0);
      } else if (t < 0 || t >= v) {
        sink.report(t, row, v);
        l = nan_of<A>();
      } else {
        l = (st.m - xt) + log_s;
      }
      loss[row] = l;
    }
  }
}

template <class T, bool kWarp>
__global__ void __launch_bounds__(kMaxThreads)
    ce_bwd_kernel(T* dx, const T* x, const void* __restrict__ dloss, DType dloss_dtype,
                  const acc_t<T>* __restrict__ lse, const int32_t* __restrict__ targets, int64_t n,
                  int v, int32_t ignore, bool vec, ErrorSink sink) {
  using A = acc_t<T>;
  constexpr int P = kPack<T>;
  const Group<kWarp> g;
  for (int64_t row = g.first_row(); row < n; row += g.row_stride()) {
    const T* xr = x + row * v;
    T* dxr = dx + row * v;
    const RowSpan sp = row_span(xr, v, vec);
    const int32_t t = targets[row];
    if (t == ignore) {  // no gradient: zeros, the logits unread
      walk<P>(
          sp, v, g.tid, g.nt, [&](int j, int) { dxr[j] = from_acc<T>(A(0)); },
          [&](int k0) {
#pragma unroll
            for (int u = 0; u < kUnroll; ++u) {
              const int k = k0 + u * g.nt;
              if (k < sp.npack) {
                A z[P];
#pragma unroll
                for (int i = 0; i < P; ++i) z[i] = A(0);
                store_pack(dxr + sp.head + k * P, pack<T>(z));
              }
            }
          });
      continue;
    }
    const bool bad = t < 0 || t >= v;
    if (bad && g.tid == 0) sink.report(t, row, v);
    const A gl = bad ? nan_of<A>() : load_stat<A>(dloss, dloss_dtype, row);
    const A l = lse[row];
    // dx_j = (exp(x_j − lse) − [j = t])·dloss
    walk<P>(
        sp, v, g.tid, g.nt,
        [&](int j, int) {
          const A p = vexp(to_acc(xr[j]) - l);
          dxr[j] = from_acc<T>((p - (j == t ? A(1) : A(0))) * gl);
        },
        [&](int k0) {
          batches<kUnroll>(
              k0, g.nt, sp.npack, [&](int k) { return load_pack_stream(xr + sp.head + k * P); },
              [&](int k, const Pack<T>& p) {
                const int j0 = sp.head + k * P;
                A z[P];
                unpack(p, z);
#pragma unroll
                for (int i = 0; i < P; ++i) {
                  const A pr = vexp(z[i] - l);
                  z[i] = (pr - (j0 + i == t ? A(1) : A(0))) * gl;
                }
                store_pack(dxr + j0, pack<T>(z));
              });
        });
  }
}

}  // namespace

void cross_entropy_forward(const TensorView& loss, const TensorView& lse, const TensorView& logits,
                           const TensorView& targets, int32_t ignore_index, Context& ctx) {
  const int64_t n = logits.shape[0];
  if (n == 0) return;  // V = 0 still writes every row (lse −inf, ignored loss 0)
  const int v = row_len(logits.shape[1], "cross_entropy");
  dispatch_float(logits.dtype, "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const bool vec = true;  // one array of rows
    const RowPlan p = plan_rows(ctx, n, v, sizeof(T), vec, 0);
    auto* kernel = p.warp ? ce_fwd_kernel<T, true> : ce_fwd_kernel<T, false>;
    kernel<<<p.blocks, p.threads, 0, stream_of(ctx)>>>(loss.ptr<A>(), lse.ptr<A>(), logits.ptr<T>(),
                                                       targets.ptr<int32_t>(), n, v, ignore_index,
                                                       vec, error_sink(ctx, kForwardBadTarget));
    R1_CUDA_CHECK_LAUNCH();
  });
}

void cross_entropy_backward(const TensorView& dlogits, const TensorView& dloss,
                            const TensorView& logits, const TensorView& targets,
                            const TensorView& lse, int32_t ignore_index, Context& ctx) {
  if (logits.numel() == 0) return;
  const int64_t n = logits.shape[0];
  const int v = row_len(logits.shape[1], "cross_entropy_backward");
  dispatch_float(logits.dtype, "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const bool vec = same_alignment({logits.data, dlogits.data});
    const RowPlan p = plan_rows(ctx, n, v, sizeof(T), vec, 0);
    auto* kernel = p.warp ? ce_bwd_kernel<T, true> : ce_bwd_kernel<T, false>;
    kernel<<<p.blocks, p.threads, 0, stream_of(ctx)>>>(
        dlogits.ptr<T>(), logits.ptr<T>(), dloss.data, dloss.dtype, lse.ptr<A>(),
        targets.ptr<int32_t>(), n, v, ignore_index, vec, error_sink(ctx, kBackwardBadTarget));
    R1_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace r1kit::kernels::cuda
