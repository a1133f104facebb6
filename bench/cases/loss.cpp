// Row-reduction cases over the vocabulary: softmax, cross-entropy, the token log-prob head.
#include "bench/cases.h"
#include "kernels/cross_entropy.h"
#include "kernels/logprob.h"
#include "kernels/softmax.h"

#include <fmt/format.h>

namespace r1kit::bench {
using namespace r1kit::kernels;

void add_loss_cases(std::vector<Case>& cs, const BenchConfig& cfg) {
  const DType f = cfg.dtype;
  const int64_t vocab = cfg.quick ? 4096 : 32768, rows = cfg.quick ? 64 : (cfg.cuda ? 4096 : 256);
  cs.push_back({"softmax_forward", fmt::format("{}x{}", rows, vocab), 5.0 * rows * vocab,
                dsize(f) * 2 * rows * vocab, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {rows, vocab}, f, 7));
                  keep.push_back(ctx.empty({rows, vocab}, f));
                  return std::function<void()>(
                      [&ctx, &keep] { softmax_forward(keep[1], keep[0], ctx); });
                }});
  cs.push_back({"cross_entropy_forward", fmt::format("{}x{}", rows, vocab), 4.0 * rows * vocab,
                dsize(f) * rows * vocab, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {rows, vocab}, f, 8));
                  keep.push_back(ids(ctx, {rows}, static_cast<int>(vocab)));
                  keep.push_back(ctx.empty({rows}, DType::f32));
                  keep.push_back(ctx.empty({rows}, DType::f32));
                  return std::function<void()>([&ctx, &keep] {
                    cross_entropy_forward(keep[2], keep[3], keep[0], keep[1], ctx);
                  });
                }});
  // The fused log-prob head: N tokens, hidden C, vocabulary V, in chunks of 64 tokens.
  const int64_t ln = cfg.quick ? 128 : (cfg.cuda ? 4096 : 512),
                lc = cfg.quick ? 128 : (cfg.cuda ? 2048 : 512), lv = cfg.quick ? 4096 : 32768;
  const int64_t chunk = cfg.cuda ? 1024 : 64;
  auto head_setup = [=](Context& ctx, std::vector<Tensor>& keep) {
    keep.push_back(rand(ctx, {ln, lc}, f, 15));
    keep.push_back(rand(ctx, {lv, lc}, f, 16, -0.05, 0.05));
    keep.push_back(ids(ctx, {ln}, static_cast<int>(lv)));
    keep.push_back(ctx.empty({ln}, DType::f32));
    keep.push_back(ctx.empty({ln}, DType::f32));
    keep.push_back(ctx.empty({ln}, DType::f32));
  };
  cs.push_back({"logprob_head_forward", fmt::format("{}x{}x{}", ln, lc, lv), 2.0 * ln * lc * lv,
                dsize(f) * (ln * lc + lv * lc), [=](Context& ctx, std::vector<Tensor>& keep) {
                  head_setup(ctx, keep);
                  return std::function<void()>([&ctx, &keep, chunk] {
                    logprob_head_forward(keep[3], keep[4], keep[5], keep[0], keep[1], keep[2], 1.0,
                                         chunk, ctx);
                  });
                }});
  cs.push_back({"logprob_head_backward", fmt::format("{}x{}x{}", ln, lc, lv), 6.0 * ln * lc * lv,
                dsize(f) * 2 * (ln * lc + lv * lc), [=](Context& ctx, std::vector<Tensor>& keep) {
                  head_setup(ctx, keep);
                  logprob_head_forward(keep[3], keep[4], keep[5], keep[0], keep[1], keep[2], 1.0,
                                       chunk, ctx);
                  keep.push_back(rand(ctx, {ln}, DType::f32, 17));  // 6: dlogprob
                  keep.push_back(rand(ctx, {ln}, DType::f32, 18));  // 7: dentropy
                  keep.push_back(ctx.empty({ln, lc}, f));           // 8: dh
                  keep.push_back(ctx.zeros({lv, lc}, f));           // 9: dw
                  return std::function<void()>([&ctx, &keep, chunk] {
                    logprob_head_backward(keep[8], keep[9], keep[6], keep[7], keep[0], keep[1],
                                          keep[2], keep[5], 1.0, chunk, ctx);
                  });
                }});
}

}  // namespace r1kit::bench
