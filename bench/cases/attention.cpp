// Attention cases: causal, packed, MLA head dims (q·k 192, v 128) and the plain 128 head.
#include "kernels/attention.h"
#include "bench/cases.h"

#include <fmt/format.h>

namespace r1kit::bench {
using namespace r1kit::kernels;

void add_attention_cases(std::vector<Case>& cs, const BenchConfig& cfg) {
  const DType f = cfg.dtype;
  const int64_t at = cfg.quick ? 128 : (cfg.cuda ? 4096 : 1024), ah = cfg.quick ? 4 : 16;
  const double attn_flops = 2.0 * ah * at * (at + 1) / 2.0 * (192 + 128);
  const double attn_bytes = dsize(f) * at * ah * (192 * 2 + 128 * 2);
  auto attn_setup = [=](Context& ctx, std::vector<Tensor>& keep) {
    keep.push_back(rand(ctx, {at, ah, 192}, f, 11));
    keep.push_back(rand(ctx, {at, ah, 192}, f, 12));
    keep.push_back(rand(ctx, {at, ah, 128}, f, 13));
    keep.push_back(ctx.empty({at, ah, 128}, f));
    keep.push_back(ctx.empty({ah, at}, DType::f32));
    Tensor cu = Tensor({2}, DType::i32, ctx.host_allocator());
    cu.ptr<int32_t>()[0] = 0;
    cu.ptr<int32_t>()[1] = static_cast<int32_t>(at);
    keep.push_back(ctx.empty({2}, DType::i32));
    ctx.copy(keep[5], cu);
  };
  cs.push_back({"attention_forward", fmt::format("T{}xH{}x192/128", at, ah), attn_flops, attn_bytes,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  attn_setup(ctx, keep);
                  return std::function<void()>([&ctx, &keep] {
                    attention_forward(keep[3], keep[4], keep[0], keep[1], keep[2], keep[5], 0.0721,
                                      ctx);
                  });
                }});
  cs.push_back({"attention_backward", fmt::format("T{}xH{}x192/128", at, ah), 2.5 * attn_flops,
                2.0 * attn_bytes, [=](Context& ctx, std::vector<Tensor>& keep) {
                  attn_setup(ctx, keep);
                  attention_forward(keep[3], keep[4], keep[0], keep[1], keep[2], keep[5], 0.0721,
                                    ctx);
                  keep.push_back(rand(ctx, {at, ah, 128}, f, 14));  // 6: dout
                  keep.push_back(ctx.empty({at, ah, 192}, f));      // 7: dq
                  keep.push_back(ctx.empty({at, ah, 192}, f));      // 8: dk
                  keep.push_back(ctx.empty({at, ah, 128}, f));      // 9: dv
                  return std::function<void()>([&ctx, &keep] {
                    attention_backward(keep[7], keep[8], keep[9], keep[6], keep[0], keep[1],
                                       keep[2], keep[3], keep[4], keep[5], 0.0721, ctx);
                  });
                }});
}

}  // namespace r1kit::bench
