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
  // Per-row statistics (loss, lse, logprob, ...): f64 with f64 logits, f32 otherwise (the ops
  // require all-f64 or no f64).
  const DType st = f == DType::f64 ? DType::f64 : DType::f32;
  const double ssz = dsize(st);
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
                  keep.push_back(ctx.empty({rows}, st));
                  keep.push_back(ctx.empty({rows}, st));
                  return std::function<void()>([&ctx, &keep] {
                    cross_entropy_forward(keep[2], keep[3], keep[0], keep[1], ctx);
                  });
                }});
  cs.push_back({"softmax_backward", fmt::format("{}x{}", rows, vocab), 4.0 * rows * vocab,
                dsize(f) * 3 * rows * vocab, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {rows, vocab}, f, 9, 0, 1.0 / vocab));  // y
                  keep.push_back(rand(ctx, {rows, vocab}, f, 10));                 // dy
                  keep.push_back(ctx.empty({rows, vocab}, f));                     // dx
                  return std::function<void()>(
                      [&ctx, &keep] { softmax_backward(keep[2], keep[1], keep[0], ctx); });
                }});
  cs.push_back({"log_softmax_forward", fmt::format("{}x{}", rows, vocab), 4.0 * rows * vocab,
                dsize(f) * 2 * rows * vocab, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {rows, vocab}, f, 11));
                  keep.push_back(ctx.empty({rows, vocab}, f));
                  return std::function<void()>(
                      [&ctx, &keep] { log_softmax_forward(keep[1], keep[0], ctx); });
                }});
  // dlogits over the logits (in place, as a training step does): read once, written once.
  cs.push_back({"cross_entropy_backward", fmt::format("{}x{}", rows, vocab), 4.0 * rows * vocab,
                dsize(f) * 2 * rows * vocab, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {rows, vocab}, f, 12));
                  keep.push_back(ids(ctx, {rows}, static_cast<int>(vocab)));
                  keep.push_back(ctx.empty({rows}, st));  // loss
                  keep.push_back(ctx.empty({rows}, st));  // lse
                  cross_entropy_forward(keep[2], keep[3], keep[0], keep[1], ctx);
                  keep.push_back(rand(ctx, {rows}, st, 13));  // dloss
                  return std::function<void()>([&ctx, &keep] {
                    cross_entropy_backward(keep[0], keep[4], keep[0], keep[1], keep[3], ctx);
                  });
                }});

  // The log-prob head from logits at an LLM's vocabulary (Qwen2.5: 152064): 4096 tokens of bf16
  // logits are 1.2 GB, far past the L2. The forward reads the logits once (with the entropy); the
  // backward reads them once and writes dlogits once (without dentropy a single pass; with it,
  // the minimum is the same bytes, the kernel re-reads each row, mostly from L2).
  const int64_t tn = cfg.quick ? 64 : (cfg.cuda ? 4096 : 128),
                tv = cfg.quick ? 4096 : (cfg.cuda ? 152064 : 32768);
  auto logits_setup = [=](Context& ctx, std::vector<Tensor>& keep) {
    keep.push_back(rand(ctx, {tn, tv}, f, 19, -8, 8));     // 0: logits
    keep.push_back(ids(ctx, {tn}, static_cast<int>(tv)));  // 1: targets
    keep.push_back(ctx.empty({tn}, st));                   // 2: logprob
    keep.push_back(ctx.empty({tn}, st));                   // 3: entropy
    keep.push_back(ctx.empty({tn}, st));                   // 4: lse
    logprob_forward(keep[2], keep[3], keep[4], keep[0], keep[1], 0.9, ctx);
  };
  cs.push_back({"logprob_forward", fmt::format("{}x{}", tn, tv), 8.0 * tn * tv,
                dsize(f) * tn * tv + ssz * 4 * tn, [=](Context& ctx, std::vector<Tensor>& keep) {
                  logits_setup(ctx, keep);
                  return std::function<void()>([&ctx, &keep] {
                    logprob_forward(keep[2], keep[3], keep[4], keep[0], keep[1], 0.9, ctx);
                  });
                }});
  for (bool with_entropy : {false, true}) {
    cs.push_back(
        {with_entropy ? "logprob_backward_entropy" : "logprob_backward",
         fmt::format("{}x{}", tn, tv), (with_entropy ? 12.0 : 6.0) * tn * tv,
         dsize(f) * 2 * tn * tv + ssz * 4 * tn, [=](Context& ctx, std::vector<Tensor>& keep) {
           logits_setup(ctx, keep);
           keep.push_back(rand(ctx, {tn}, st, 20));  // 5: dlogprob
           keep.push_back(rand(ctx, {tn}, st, 21));  // 6: dentropy
           keep.push_back(ctx.empty({tn, tv}, f));   // 7: dlogits
           return std::function<void()>([&ctx, &keep, with_entropy] {
             logprob_backward(keep[7], keep[5], with_entropy ? keep[6].view() : TensorView{},
                              keep[0], keep[1], keep[4], 0.9, ctx);
           });
         }});
  }

  // The fused log-prob head: N tokens, hidden C, vocabulary V, in chunks of 1024 tokens on CUDA
  // (64 on the CPU).
  const int64_t ln = cfg.quick ? 128 : (cfg.cuda ? 4096 : 512),
                lc = cfg.quick ? 128 : (cfg.cuda ? 2048 : 512), lv = cfg.quick ? 4096 : 32768;
  const int64_t chunk = cfg.cuda ? 1024 : 64;
  auto head_setup = [=](Context& ctx, std::vector<Tensor>& keep) {
    keep.push_back(rand(ctx, {ln, lc}, f, 15));
    keep.push_back(rand(ctx, {lv, lc}, f, 16, -0.05, 0.05));
    keep.push_back(ids(ctx, {ln}, static_cast<int>(lv)));
    keep.push_back(ctx.empty({ln}, st));
    keep.push_back(ctx.empty({ln}, st));
    keep.push_back(ctx.empty({ln}, st));
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
                  keep.push_back(rand(ctx, {ln}, st, 17));  // 6: dlogprob
                  keep.push_back(rand(ctx, {ln}, st, 18));  // 7: dentropy
                  keep.push_back(ctx.empty({ln, lc}, f));   // 8: dh
                  keep.push_back(ctx.zeros({lv, lc}, f));   // 9: dw
                  return std::function<void()>([&ctx, &keep, chunk] {
                    logprob_head_backward(keep[8], keep[9], keep[6], keep[7], keep[0], keep[1],
                                          keep[2], keep[5], 1.0, chunk, ctx);
                  });
                }});
}

}  // namespace r1kit::bench
