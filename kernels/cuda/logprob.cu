// Token log-prob / entropy head on the GPU: one warp or block per row of logits
// (kernels/cuda/vocab_rows.cuh), 16-byte packs, fp32 math (double for f64).
//   forward:  one pass over the logits: the online max / sum-exp of z = x/τ (in log2 units,
//             z2 = x·log2(e)/τ, so each exp is one ex2), with sd = Σ e_j·(z_j − m) for the
//             entropy when it is asked for; the row's first thread
//             reads its target and that logit up front, then writes lse, logprob, entropy.
//   backward: without dentropy one pass from the saved lse (read the logits once, write dlogits
//             once); with dentropy pass 1 computes H = −Σ p_j log p_j (the row kept in shared
//             memory when it fits, else re-read, mostly from L2), pass 2 writes dlogits. The row
//             kernel works in place too (the fused head turns its logits scratch into dlogits).
//   fused head: per chunk of chunk_tokens rows, logits = h_c · wᵀ through linear_forward into a
//             (chunk, V) scratch of h's dtype, then the row kernels; the backward recomputes the
//             chunk's logits, turns them into dlogits in place, then linear_backward gives
//             dh_c (=) = dlogits · w and dw += dlogitsᵀ · h_c. (N, V) never exists.
// Targets live on the device, so the kernels check them: a target outside [0, V) is reported
// through the context's ErrorSink (thrown at the next synchronize) and its row gets NaN outputs;
// nothing is read out of bounds. Entropy terms with p = 0 (a −inf logit) count 0 (the limit of
// p log p), as in the CPU reference. Deterministic.
#include <algorithm>

#include "kernels/cuda/vocab_rows.cuh"
#include "kernels/logprob.h"
#include "kernels/matmul.h"

namespace r1kit::kernels::cuda {
namespace {
using namespace vocab;

// What a bad target reports (position, value, V), per entry point.
struct BadTarget {
  const char* forward;
  const char* backward;
};
constexpr BadTarget kLogitsBadTarget{
    "[logprob] targets at position {} holds {}, outside [0, {}) set by the logits",
    "[logprob_backward] targets at position {} holds {}, outside [0, {}) set by the logits"};
constexpr BadTarget kHeadBadTarget{
    "[logprob_head] targets at position {} holds {}, outside [0, {}) set by w",
    "[logprob_head_backward] targets at position {} holds {}, outside [0, {}) set by w"};

// Rows of one call: logits row r is token row0 + r (row0: the chunk's first token, for messages).
template <class T, bool kEnt, bool kWarp>
__global__ void __launch_bounds__(kMaxThreads)
    lp_fwd_kernel(acc_t<T>* __restrict__ logprob, acc_t<T>* __restrict__ entropy,
                  acc_t<T>* __restrict__ lse, const T* __restrict__ x,
                  const int32_t* __restrict__ targets, int64_t n, int v, acc_t<T> scale2, bool vec,
                  ErrorSink sink, int64_t row0) {
  using A = acc_t<T>;
  using St = Stats<A, kEnt, true>;  // in log2 units: z2 = x·log2(e)/τ
  constexpr A kLn2 = A(0.693147180559945309417232121458176568);
  constexpr int P = kPack<T>;
  __shared__ St red[32];
  const Group<kWarp> g;
  for (int64_t row = g.first_row(); row < n; row += g.row_stride()) {
    const T* xr = x + row * v;
    int32_t t = 0;
    A xt = A(0);
    if (g.tid == 0) {
      t = targets[row];
      if (t >= 0 && t < v) xt = to_acc(xr[t]);
    }
    const RowSpan sp = row_span(xr, v, vec);
    St st = St::empty();
    walk<P>(
        sp, v, g.tid, g.nt,
        [&](int j, int) {
          const A z[1] = {mul_rn(to_acc(xr[j]), scale2)};
          st.add(z);
        },
        [&](int k0) {
          batches<kUnroll>(
              k0, g.nt, sp.npack, [&](int k) { return load_pack_stream(xr + sp.head + k * P); },
              [&](int, const Pack<T>& p) {
                A z[P];
                unpack(p, z);
#pragma unroll
                for (int i = 0; i < P; ++i) z[i] = mul_rn(z[i], scale2);
                st.add(z);
              });
        });
    st = group_merge<kWarp>(st, red);
    st.finish(v);
    if (g.tid == 0) {
      // In natural units z = ln2·z2: lse = ln2·m2 + log s; logprob = ln2·(z2_t − m2) − log s
      // (accurate for large logits; exactly 0 for a one-entry row); H = log s − ln2·sd2 / s.
      const A log_s = vlog(st.s);
      lse[row] = kLn2 * st.m + log_s;
      if (t < 0 || t >= v) {
        sink.report(row0 + row, t, v);
        logprob[row] = nan_of<A>();
      } else {
        logprob[row] = kLn2 * (mul_rn(xt, scale2) - st.m) - log_s;
      }
      if constexpr (kEnt) entropy[row] = log_s - kLn2 * st.sd / st.s;
    }
  }
}

// dz_j = dlogprob·([j = t] − p_j) − dentropy·p_j·(log p_j + H),  dlogits_j = dz_j / τ, with
// log p_j = z_j − lse from the saved lse. dx may be x (in place).
template <class T, bool kEnt, bool kWarp>
__global__ void __launch_bounds__(kMaxThreads)
    lp_bwd_kernel(T* dx, const T* x, const int32_t* __restrict__ targets,
                  const acc_t<T>* __restrict__ lse, const acc_t<T>* __restrict__ dlogprob,
                  const acc_t<T>* __restrict__ dentropy, int64_t n, int v, acc_t<T> inv_tau,
                  bool vec, bool cache, int cap, ErrorSink sink, int64_t row0) {
  using A = acc_t<T>;
  constexpr int P = kPack<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ A red[32];
  const Group<kWarp> g;
  RowCache<T> rc;
  if (kEnt && cache) rc = RowCache<T>(smem, g.slot, v, vec, cap);
  for (int64_t row = g.first_row(); row < n; row += g.row_stride()) {
    const T* xr = x + row * v;
    T* dxr = dx + row * v;
    const RowSpan sp = row_span(xr, v, vec);
    const int32_t t = targets[row];
    const bool bad = t < 0 || t >= v;
    if (bad && g.tid == 0) sink.report(row0 + row, t, v);
    const A l = lse[row];
    const A glp = bad ? nan_of<A>() : dlogprob[row];
    const A gent = kEnt ? dentropy[row] : A(0);

    // Pass 1 (entropy only): H = −Σ p_j log p_j.
    A ent = A(0);
    if constexpr (kEnt) {
      auto term = [&](A xv) {
        const A lp = mul_rn(xv, inv_tau) - l;
        const A p = vexp(lp);
        return p > A(0) ? p * lp : A(0);
      };
      A acc = A(0);
      walk<P>(
          sp, v, g.tid, g.nt,
          [&](int j, int slot) {
            const T xv = xr[j];
            if (cache) rc.scalars[slot] = xv;
            acc += term(to_acc(xv));
          },
          [&](int k0) {
            batches<kUnroll>(
                k0, g.nt, sp.npack,
                [&](int k) {
                  // Kept in L2 (plain load) when pass 2 reads it again from global memory.
                  return cache && rc.has(k) ? load_pack_stream(xr + sp.head + k * P)
                                            : load_pack(xr + sp.head + k * P);
                },
                [&](int k, const Pack<T>& p) {
                  if (cache && rc.has(k)) rc.packs[k] = p;
                  A z[P];
                  unpack(p, z);
#pragma unroll
                  for (int i = 0; i < P; ++i) acc += term(z[i]);
                });
          });
      ent = -group_sum<kWarp>(acc, red);
    }

    auto grad = [&](A xv, bool is_t) {
      const A lp = mul_rn(xv, inv_tau) - l;
      const A p = vexp(lp);
      A dz = glp * ((is_t ? A(1) : A(0)) - p);
      if constexpr (kEnt) dz -= gent * (p > A(0) ? p * (lp + ent) : A(0));
      return dz * inv_tau;
    };
    // Pass 2: dlogits.
    walk<P>(
        sp, v, g.tid, g.nt,
        [&](int j, int slot) {
          const T xv = (kEnt && cache) ? rc.scalars[slot] : xr[j];
          dxr[j] = from_acc<T>(grad(to_acc(xv), j == t));
        },
        [&](int k0) {
          batches<kUnroll>(
              k0, g.nt, sp.npack,
              [&](int k) {
                return (kEnt && cache && rc.has(k)) ? rc.packs[k]
                                                    : load_pack_stream(xr + sp.head + k * P);
              },
              [&](int k, const Pack<T>& p) {
                const int j0 = sp.head + k * P;
                A z[P];
                unpack(p, z);
#pragma unroll
                for (int i = 0; i < P; ++i) z[i] = grad(z[i], j0 + i == t);
                store_pack(dxr + j0, pack<T>(z));
              });
        });
  }
}

// The row kernels over (rows, V) logits whose row r is token row0 + r; the statistics views are
// the rows' own (already offset). entropy / dentropy may be undefined.
void launch_forward(const TensorView& logprob, const TensorView& entropy, const TensorView& lse,
                    const TensorView& logits, const TensorView& targets, double temperature,
                    int64_t row0, const char* what, Context& ctx) {
  const int64_t n = logits.shape[0];
  if (n == 0) return;
  const int v = row_len(logits.shape[1], "logprob");
  dispatch_float(logits.dtype, "logprob", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const bool vec = true;  // one array of rows
    const RowPlan p = plan_rows(ctx, n, v, sizeof(T), vec, 0);
    const bool ent = entropy.defined();
    auto* kernel = ent ? (p.warp ? lp_fwd_kernel<T, true, true> : lp_fwd_kernel<T, true, false>)
                       : (p.warp ? lp_fwd_kernel<T, false, true> : lp_fwd_kernel<T, false, false>);
    kernel<<<p.blocks, p.threads, 0, stream_of(ctx)>>>(
        logprob.ptr<A>(), ent ? entropy.ptr<A>() : nullptr, lse.ptr<A>(), logits.ptr<T>(),
        targets.ptr<int32_t>(), n, v,
        static_cast<A>(1.4426950408889634073599246810018921 / temperature), vec,
        error_sink(ctx, what), row0);
    R1_CUDA_CHECK_LAUNCH();
  });
}

void launch_backward(const TensorView& dlogits, const TensorView& dlogprob,
                     const TensorView& dentropy, const TensorView& logits,
                     const TensorView& targets, const TensorView& lse, double temperature,
                     int64_t row0, const char* what, Context& ctx) {
  const int64_t n = logits.shape[0];
  if (n == 0) return;
  const int v = row_len(logits.shape[1], "logprob_backward");
  dispatch_float(logits.dtype, "logprob_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const bool vec = same_alignment({logits.data, dlogits.data});
    const bool ent = dentropy.defined();
    const RowPlan p = plan_rows(ctx, n, v, sizeof(T), vec, ent ? 1 : 0);
    auto* kernel = ent ? (p.warp ? lp_bwd_kernel<T, true, true> : lp_bwd_kernel<T, true, false>)
                       : (p.warp ? lp_bwd_kernel<T, false, true> : lp_bwd_kernel<T, false, false>);
    allow_smem(kernel, p);
    kernel<<<p.blocks, p.threads, p.smem, stream_of(ctx)>>>(
        dlogits.ptr<T>(), logits.ptr<T>(), targets.ptr<int32_t>(), lse.ptr<A>(), dlogprob.ptr<A>(),
        ent ? dentropy.ptr<A>() : nullptr, n, v, static_cast<A>(1.0 / temperature), vec, p.cache,
        p.cap, error_sink(ctx, what), row0);
    R1_CUDA_CHECK_LAUNCH();
  });
}

// Rows [r0, r0 + rows) of an optional (N) view.
TensorView rows_of(const TensorView& v, int64_t r0, int64_t rows) {
  return v.defined() ? v.slice(r0, r0 + rows) : TensorView{};
}

}  // namespace

void logprob_forward(const TensorView& logprob, const TensorView& entropy, const TensorView& lse,
                     const TensorView& logits, const TensorView& targets, double temperature,
                     Context& ctx) {
  launch_forward(logprob, entropy, lse, logits, targets, temperature, 0, kLogitsBadTarget.forward,
                 ctx);
}

void logprob_backward(const TensorView& dlogits, const TensorView& dlogprob,
                      const TensorView& dentropy, const TensorView& logits,
                      const TensorView& targets, const TensorView& lse, double temperature,
                      Context& ctx) {
  launch_backward(dlogits, dlogprob, dentropy, logits, targets, lse, temperature, 0,
                  kLogitsBadTarget.backward, ctx);
}

void logprob_head_forward(const TensorView& logprob, const TensorView& entropy,
                          const TensorView& lse, const TensorView& h, const TensorView& w,
                          const TensorView& targets, double temperature, int64_t chunk_tokens,
                          Context& ctx) {
  const int64_t n = h.shape[0], vocab = w.shape[0];
  if (n == 0) return;
  const int64_t chunk = std::min(chunk_tokens, n);
  // (chunk, V) logits of one chunk of tokens, in h's dtype: the only vocabulary-wide buffer.
  Tensor scratch = ctx.empty({chunk, vocab}, h.dtype, "logprob_head.logits");
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    const TensorView logits = scratch.view().slice(0, rows);
    kernels::linear_forward(logits, h.slice(r0, r0 + rows), w, TensorView{}, ctx);
    launch_forward(logprob.slice(r0, r0 + rows), rows_of(entropy, r0, rows),
                   lse.slice(r0, r0 + rows), logits, targets.slice(r0, r0 + rows), temperature, r0,
                   kHeadBadTarget.forward, ctx);
  }
}

void logprob_head_backward(const TensorView& dh, const TensorView& dw, const TensorView& dlogprob,
                           const TensorView& dentropy, const TensorView& h, const TensorView& w,
                           const TensorView& targets, const TensorView& lse, double temperature,
                           int64_t chunk_tokens, Context& ctx) {
  const int64_t n = h.shape[0], vocab = w.shape[0];
  if (n == 0) return;
  const int64_t chunk = std::min(chunk_tokens, n);
  // (chunk, V): one chunk's logits, turned into its dlogits in place.
  Tensor scratch = ctx.empty({chunk, vocab}, h.dtype, "logprob_head.dlogits");
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    const TensorView dl = scratch.view().slice(0, rows);
    const TensorView hc = h.slice(r0, r0 + rows);
    kernels::linear_forward(dl, hc, w, TensorView{},
                            ctx);  // the logits, recomputed rather than saved
    launch_backward(dl, dlogprob.slice(r0, r0 + rows), rows_of(dentropy, r0, rows), dl,
                    targets.slice(r0, r0 + rows), lse.slice(r0, r0 + rows), temperature, r0,
                    kHeadBadTarget.backward, ctx);
    // dh_c (rows, C) = dlogits · w (=);  dw (V, C) += dlogitsᵀ · h_c.
    kernels::linear_backward(dh.slice(r0, r0 + rows), dw, TensorView{}, dl, hc, w,
                             GradWrite::overwrite, ctx);
  }
}

}  // namespace r1kit::kernels::cuda
