// Attention cases: causal, one sequence of T tokens, H heads, head dims 128/128 (plain MHA) and
// 192/128 (MLA's q·k / v dims), forward and backward.
//
// Flops, counted causal (the T·(T+1)/2 query-key pairs at or below the diagonal, not the square):
//   forward  = 2 · H · T(T+1)/2 · (Dqk + Dv)   (S = Q·Kᵀ and O = P·V)
//   backward = 2.5 · forward                   (S again, dP = dO·Vᵀ, dV, dQ, dK: 5 products of
//                                                which the forward has 2, FlashAttention-2's rule)
// Bytes, the least the op moves: forward reads q, k, v and writes out and lse; backward reads q, k,
// v, out, dout, lse and writes dq, dk, dv. The timed call includes the front-end's copy of
// cu_seqlens to the host (B+1 ints; a few microseconds next to milliseconds of kernel).
#include "kernels/attention.h"
#include "bench/cases.h"

#include <fmt/format.h>

#include <cmath>

namespace r1kit::bench {
using namespace r1kit::kernels;

namespace {

void add_dims(std::vector<Case>& cs, const BenchConfig& cfg, int64_t dqk, int64_t dv) {
  const DType f = cfg.dtype;
  const int64_t t = cfg.quick ? 128 : (cfg.cuda ? 4096 : 1024), h = cfg.quick ? 4 : 16;
  const double pairs = static_cast<double>(t) * static_cast<double>(t + 1) / 2.0;
  const double fwd_flops = 2.0 * static_cast<double>(h) * pairs * static_cast<double>(dqk + dv);
  const double lse_bytes = 4.0 * static_cast<double>(h * t);
  const double qkv = dsize(f) * static_cast<double>(t * h * (2 * dqk + dv));
  const double o = dsize(f) * static_cast<double>(t * h * dv);
  const double scale = 1.0 / std::sqrt(static_cast<double>(dqk));
  const std::string shape = fmt::format("T{}xH{}x{}/{}", t, h, dqk, dv);
  // keep: 0 q, 1 k, 2 v, 3 out, 4 lse, 5 cu_seqlens; backward adds 6 dout, 7 dq, 8 dk, 9 dv.
  auto setup = [=](Context& ctx, std::vector<Tensor>& keep) {
    keep.push_back(rand(ctx, {t, h, dqk}, f, 11));
    keep.push_back(rand(ctx, {t, h, dqk}, f, 12));
    keep.push_back(rand(ctx, {t, h, dv}, f, 13));
    keep.push_back(ctx.empty({t, h, dv}, f));
    keep.push_back(ctx.empty({h, t}, f == DType::f64 ? DType::f64 : DType::f32));
    Tensor cu = Tensor({2}, DType::i32, ctx.host_allocator());
    cu.ptr<int32_t>()[0] = 0;
    cu.ptr<int32_t>()[1] = static_cast<int32_t>(t);
    keep.push_back(ctx.empty({2}, DType::i32));
    ctx.copy(keep[5], cu);
  };
  cs.push_back({"attention_forward", shape, fwd_flops, qkv + o + lse_bytes,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  setup(ctx, keep);
                  return std::function<void()>([&ctx, &keep, scale] {
                    attention_forward(keep[3], keep[4], keep[0], keep[1], keep[2], keep[5], scale,
                                      ctx);
                  });
                }});
  cs.push_back({"attention_backward", shape, 2.5 * fwd_flops, 2.0 * qkv + 2.0 * o + lse_bytes,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  setup(ctx, keep);
                  attention_forward(keep[3], keep[4], keep[0], keep[1], keep[2], keep[5], scale,
                                    ctx);
                  keep.push_back(rand(ctx, {t, h, dv}, f, 14));  // 6: dout
                  keep.push_back(ctx.empty({t, h, dqk}, f));     // 7: dq
                  keep.push_back(ctx.empty({t, h, dqk}, f));     // 8: dk
                  keep.push_back(ctx.empty({t, h, dv}, f));      // 9: dv
                  return std::function<void()>([&ctx, &keep, scale] {
                    attention_backward(keep[7], keep[8], keep[9], keep[6], keep[0], keep[1],
                                       keep[2], keep[3], keep[4], keep[5], scale, ctx);
                  });
                }});
}

}  // namespace

void add_attention_cases(std::vector<Case>& cs, const BenchConfig& cfg) {
  add_dims(cs, cfg, 128, 128);
  add_dims(cs, cfg, 192, 128);
}

}  // namespace r1kit::bench
