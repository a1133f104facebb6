// Memory-bound cases: rmsnorm, swiglu, rope, elementwise (residual add/axpy, cast), random. GPU
// shapes are DeepSeek-V3 sized (16384 tokens, hidden 7168, MoE-free MLP 18432, 128 MLA heads) so
// every case moves several times the 50 MB L2. Bytes are what the op must read + write.
#include "bench/cases.h"
#include "kernels/elementwise.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

#include <fmt/format.h>

namespace r1kit::bench {
using namespace r1kit::kernels;

namespace {

// cos/sin tables for positions 0..t−1 and the positions themselves: keep[first..first+2].
void rope_inputs(Context& ctx, std::vector<Tensor>& keep, int64_t t, int64_t d) {
  RopeConfig rc;
  rc.dim = d;
  keep.push_back(ctx.empty({t, d / 2}, DType::f32));
  keep.push_back(ctx.empty({t, d / 2}, DType::f32));
  Tensor pos = Tensor({t}, DType::i32, ctx.host_allocator());
  for (int64_t i = 0; i < t; ++i) pos.ptr<int32_t>()[i] = static_cast<int32_t>(i);
  keep.push_back(ctx.empty({t}, DType::i32));
  ctx.copy(keep.back(), pos);
  const size_t n = keep.size();
  rope_tables(keep[n - 3], keep[n - 2], keep[n - 1], rc, ctx);
}

// A (T, H, D) view of dims [col, col + D) of each head of width w in a (T, H·w) buffer.
TensorView heads_view(const TensorView& base, int64_t heads, int64_t w, int64_t col, int64_t d) {
  TensorView v = base;
  v.data = static_cast<char*>(base.data) + col * static_cast<int64_t>(dtype_size(base.dtype));
  v.ndim = 3;
  v.shape = {base.shape[0], heads, d, 0};
  v.stride = {base.shape[1], w, 1, 0};
  return v;
}

}  // namespace

void add_pointwise_cases(std::vector<Case>& cs, const BenchConfig& cfg) {
  const DType f = cfg.dtype;
  const bool big = cfg.cuda && !cfg.quick;
  const int64_t n = cfg.quick ? 512 : (big ? 16384 : 4096),
                c = cfg.quick ? 256 : (big ? 7168 : 1024);
  const double nc = static_cast<double>(n) * static_cast<double>(c);

  // rmsnorm: bf16 activations and weights, f32 rstd.
  cs.push_back({"rmsnorm_forward", fmt::format("{}x{}", n, c), 4.0 * nc,
                dsize(f) * (2 * nc + c) + 4.0 * n, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, c}, f, 3));
                  keep.push_back(rand(ctx, {c}, f, 4));
                  keep.push_back(ctx.empty({n, c}, f));
                  keep.push_back(ctx.empty({n}, DType::f32));
                  return std::function<void()>([&ctx, &keep] {
                    rmsnorm_forward(keep[2], keep[3], keep[0], keep[1], 1e-6, ctx);
                  });
                }});
  // Backward into the residual stream (dx +=) and dw (+=): reads x, dy, dx, w, dw, rstd.
  cs.push_back({"rmsnorm_backward", fmt::format("{}x{} dx+=", n, c), 8.0 * nc,
                dsize(f) * (4 * nc + 3.0 * c) + 4.0 * n,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, c}, f, 3));                // x
                  keep.push_back(rand(ctx, {c}, f, 4));                   // w
                  keep.push_back(rand(ctx, {n, c}, f, 5));                // dy
                  keep.push_back(rand(ctx, {n}, DType::f32, 6, 0.5, 2));  // rstd
                  keep.push_back(rand(ctx, {n, c}, f, 7));                // dx (residual)
                  keep.push_back(ctx.zeros({c}, f));                      // dw
                  return std::function<void()>([&ctx, &keep] {
                    rmsnorm_backward(keep[4], keep[5], keep[2], keep[0], keep[1], keep[3],
                                     GradWrite::accumulate, ctx);
                  });
                }});

  // swiglu over the two halves of a packed (N, 2H) gate_up GEMM output.
  const int64_t h = cfg.quick ? 256 : (big ? 18432 : 2048);
  const double nh = static_cast<double>(n) * static_cast<double>(h);
  cs.push_back({"swiglu_forward", fmt::format("{}x{} packed", n, h), 6.0 * nh, dsize(f) * 3 * nh,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, 2 * h}, f, 5));
                  keep.push_back(ctx.empty({n, h}, f));
                  return std::function<void()>([&ctx, &keep, h] {
                    swiglu_forward(keep[1], column_slice(keep[0], 0, h),
                                   column_slice(keep[0], h, 2 * h), ctx);
                  });
                }});
  cs.push_back({"swiglu_backward", fmt::format("{}x{} packed", n, h), 12.0 * nh, dsize(f) * 5 * nh,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, 2 * h}, f, 5));  // gate_up
                  keep.push_back(rand(ctx, {n, h}, f, 6));      // dout
                  keep.push_back(ctx.empty({n, 2 * h}, f));     // dgate_up
                  return std::function<void()>([&ctx, &keep, h] {
                    swiglu_backward(column_slice(keep[2], 0, h), column_slice(keep[2], h, 2 * h),
                                    keep[1], column_slice(keep[0], 0, h),
                                    column_slice(keep[0], h, 2 * h), ctx);
                  });
                }});

  // RoPE over (T, H, 64) in the interleaved layout MLA uses: separate tensors, then the rope part
  // of 192-wide q heads rotated in place; and half-split 128-dim heads (Llama/Qwen).
  const int64_t t = cfg.quick ? 256 : (big ? 16384 : 2048),
                heads = cfg.quick ? 8 : (big ? 128 : 16);
  const double thd = static_cast<double>(t) * static_cast<double>(heads) * 64;
  const double tables64 = 4.0 * (t * 64 + t);  // cos + sin rows (t · 32 each) and positions
  cs.push_back({"rope_forward", fmt::format("{}x{}x64 interleaved", t, heads), 6.0 * thd,
                dsize(f) * 2 * thd + tables64, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {t, heads, 64}, f, 10));
                  keep.push_back(ctx.empty({t, heads, 64}, f));
                  rope_inputs(ctx, keep, t, 64);
                  return std::function<void()>([&ctx, &keep] {
                    rope_forward(keep[1], keep[0], keep[2], keep[3], keep[4],
                                 RopeLayout::interleaved, ctx);
                  });
                }});
  cs.push_back({"rope_forward", fmt::format("{}x{}x64 of 192 interleaved in place", t, heads),
                6.0 * thd, dsize(f) * 2 * thd + tables64,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {t, heads * 192}, f, 11));
                  rope_inputs(ctx, keep, t, 64);
                  return std::function<void()>([&ctx, &keep, heads] {
                    const TensorView q = heads_view(keep[0], heads, 192, 128, 64);
                    rope_forward(q, q, keep[1], keep[2], keep[3], RopeLayout::interleaved, ctx);
                  });
                }});
  const int64_t hh = heads / 4;  // 128-dim heads: the same bytes per token as above
  const double thd128 = static_cast<double>(t) * static_cast<double>(hh) * 128;
  cs.push_back(
      {"rope_forward", fmt::format("{}x{}x128 half_split", t, hh), 6.0 * thd128,
       dsize(f) * 2 * thd128 + 4.0 * (t * 128 + t), [=](Context& ctx, std::vector<Tensor>& keep) {
         keep.push_back(rand(ctx, {t, hh, 128}, f, 12));
         keep.push_back(ctx.empty({t, hh, 128}, f));
         rope_inputs(ctx, keep, t, 128);
         return std::function<void()>([&ctx, &keep] {
           rope_forward(keep[1], keep[0], keep[2], keep[3], keep[4], RopeLayout::half_split, ctx);
         });
       }});

  // The residual stream: h = h + f(h) (add) and h += alpha · f(h) (axpy), and the f32 → bf16
  // cast of a master copy.
  cs.push_back({"add_forward", fmt::format("{}x{}", n, c), nc, dsize(f) * 3 * nc,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, c}, f, 13));
                  keep.push_back(rand(ctx, {n, c}, f, 14));
                  keep.push_back(ctx.empty({n, c}, f));
                  return std::function<void()>(
                      [&ctx, &keep] { add_forward(keep[2], keep[0], keep[1], ctx); });
                }});
  cs.push_back({"axpy", fmt::format("{}x{}", n, c), 2.0 * nc, dsize(f) * 3 * nc,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, c}, f, 15));
                  keep.push_back(rand(ctx, {n, c}, f, 16));
                  return std::function<void()>([&ctx, &keep] { axpy(keep[0], 0.5, keep[1], ctx); });
                }});
  cs.push_back({"cast", fmt::format("{}x{} f32->bf16", n, c), 0, 6.0 * nc,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, c}, DType::f32, 17));
                  keep.push_back(ctx.empty({n, c}, DType::bf16));
                  return std::function<void()>([&ctx, &keep] { cast(keep[1], keep[0], ctx); });
                },
                "f32"});

  const int64_t rnd = cfg.quick ? (1 << 22) : (1 << 28);
  cs.push_back({"random_uniform", fmt::format("{}", rnd), 0, 4.0 * rnd,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(ctx.empty({rnd}, DType::f32));
                  return std::function<void()>(
                      [&ctx, &keep] { random_uniform(keep[0], -1, 1, 3, 0, ctx); });
                },
                "f32"});
}

}  // namespace r1kit::bench
