// Kernel benchmarks: one JSON line per (op, shape, device) with the median time, the achieved
// rate, the roofline floor from the ceilings measured on this machine at start-up, and the ratio.
// Usage: kernels_bench [--quick] [--filter SUBSTRING] [--device cpu|cuda] [--reps N]
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/logprob.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/random.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/sampling.h"
#include "kernels/softmax.h"
#include "kernels/swiglu.h"

namespace r1kit::bench {
namespace {
using namespace r1kit::kernels;

struct Options {
  bool quick = false;
  std::string filter;
  std::string device = "cpu";
  int reps = 5;
};

// A case: builds its inputs, then returns the function to time.
struct Case {
  std::string op, shape;
  double flops, bytes;
  std::function<std::function<void()>(Context&, std::vector<Tensor>&)> setup;
};

Tensor rand(Context& ctx, const Shape& s, DType t, uint64_t offset, double lo = -1, double hi = 1) {
  Tensor x = ctx.empty(s, t);
  random_uniform(x, lo, hi, 1, offset, ctx);
  return x;
}

Tensor ids(Context& ctx, const Shape& s, int hi) {
  // Integer tensors are filled on the host and copied (no device integer RNG needed).
  Tensor host = Tensor(s, DType::i32, ctx.host_allocator());
  for (int64_t i = 0; i < host.numel(); ++i)
    host.ptr<int32_t>()[i] = static_cast<int32_t>((i * 2654435761u) % static_cast<uint32_t>(hi));
  Tensor t = ctx.empty(s, DType::i32);
  ctx.copy(t, host);
  return t;
}

std::vector<Case> make_cases(bool quick) {
  std::vector<Case> cs;
  const DType f = DType::f32;
  const int64_t mm = quick ? 256 : 1024;
  cs.push_back({"matmul", fmt::format("{}x{}x{}", mm, mm, mm), 2.0 * mm * mm * mm,
                4.0 * 3 * mm * mm, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {mm, mm}, f, 1));
                  keep.push_back(rand(ctx, {mm, mm}, f, 2));
                  keep.push_back(ctx.empty({mm, mm}, f));
                  return std::function<void()>(
                      [&ctx, &keep] { matmul_forward(keep[2], keep[0], keep[1], {}, ctx); });
                }});
  const int64_t n = quick ? 512 : 4096, c = quick ? 256 : 1024;
  cs.push_back({"rmsnorm_forward", fmt::format("{}x{}", n, c), 4.0 * n * c,
                4.0 * (2 * n * c + c + n), [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, c}, f, 3));
                  keep.push_back(rand(ctx, {c}, f, 4));
                  keep.push_back(ctx.empty({n, c}, f));
                  keep.push_back(ctx.empty({n}, f));
                  return std::function<void()>([&ctx, &keep] {
                    rmsnorm_forward(keep[2], keep[3], keep[0], keep[1], 1e-6, ctx);
                  });
                }});
  const int64_t h = quick ? 256 : 2048;
  cs.push_back({"swiglu_forward", fmt::format("{}x{}", n, h), 6.0 * n * h, 4.0 * 3 * n * h,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, h}, f, 5));
                  keep.push_back(rand(ctx, {n, h}, f, 6));
                  keep.push_back(ctx.empty({n, h}, f));
                  return std::function<void()>(
                      [&ctx, &keep] { swiglu_forward(keep[2], keep[0], keep[1], ctx); });
                }});
  const int64_t vocab = quick ? 4096 : 32768, rows = quick ? 64 : 256;
  cs.push_back({"softmax_forward", fmt::format("{}x{}", rows, vocab), 5.0 * rows * vocab,
                4.0 * 2 * rows * vocab, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {rows, vocab}, f, 7));
                  keep.push_back(ctx.empty({rows, vocab}, f));
                  return std::function<void()>(
                      [&ctx, &keep] { softmax_forward(keep[1], keep[0], ctx); });
                }});
  cs.push_back({"cross_entropy_forward", fmt::format("{}x{}", rows, vocab), 4.0 * rows * vocab,
                4.0 * rows * vocab, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {rows, vocab}, f, 8));
                  keep.push_back(ids(ctx, {rows}, static_cast<int>(vocab)));
                  keep.push_back(ctx.empty({rows}, f));
                  keep.push_back(ctx.empty({rows}, f));
                  return std::function<void()>([&ctx, &keep] {
                    cross_entropy_forward(keep[2], keep[3], keep[0], keep[1], ctx);
                  });
                }});
  cs.push_back({"embedding_forward", fmt::format("{}x{}", n, c), 0, 4.0 * 2 * n * c,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {vocab, c}, f, 9));
                  keep.push_back(ids(ctx, {n}, static_cast<int>(vocab)));
                  keep.push_back(ctx.empty({n, c}, f));
                  return std::function<void()>(
                      [&ctx, &keep] { embedding_forward(keep[2], keep[1], keep[0], ctx); });
                }});
  // RoPE over (T, H, 64) in the interleaved layout MLA uses.
  const int64_t t = quick ? 256 : 2048, heads = quick ? 8 : 16;
  cs.push_back({"rope_forward", fmt::format("{}x{}x64", t, heads), 6.0 * t * heads * 64,
                4.0 * (2 * t * heads * 64 + t * 64), [=](Context& ctx, std::vector<Tensor>& keep) {
                  RopeConfig cfg;
                  cfg.dim = 64;
                  keep.push_back(rand(ctx, {t, heads, 64}, f, 10));
                  keep.push_back(ctx.empty({t, heads, 64}, f));
                  keep.push_back(ctx.empty({t, 32}, f));
                  keep.push_back(ctx.empty({t, 32}, f));
                  Tensor pos = Tensor({t}, DType::i32, ctx.host_allocator());
                  for (int64_t i = 0; i < t; ++i) pos.ptr<int32_t>()[i] = static_cast<int32_t>(i);
                  keep.push_back(ctx.empty({t}, DType::i32));
                  ctx.copy(keep[4], pos);
                  rope_tables(keep[2], keep[3], keep[4], cfg, ctx);
                  return std::function<void()>([&ctx, &keep] {
                    rope_forward(keep[1], keep[0], keep[2], keep[3], keep[4],
                                 RopeLayout::interleaved, ctx);
                  });
                }});
  // Causal attention, MLA head dims (q·k 192, v 128), one packed sequence.
  const int64_t at = quick ? 128 : 1024, ah = quick ? 4 : 16;
  const double attn_flops = 2.0 * ah * at * (at + 1) / 2.0 * (192 + 128);
  const double attn_bytes = 4.0 * at * ah * (192 * 2 + 128 * 2);
  auto attn_setup = [=](Context& ctx, std::vector<Tensor>& keep) {
    keep.push_back(rand(ctx, {at, ah, 192}, f, 11));
    keep.push_back(rand(ctx, {at, ah, 192}, f, 12));
    keep.push_back(rand(ctx, {at, ah, 128}, f, 13));
    keep.push_back(ctx.empty({at, ah, 128}, f));
    keep.push_back(ctx.empty({ah, at}, f));
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
  // The fused log-prob head: N tokens, hidden C, vocabulary V, in chunks of 64 tokens.
  const int64_t ln = quick ? 128 : 512, lc = quick ? 128 : 512, lv = quick ? 4096 : 32768;
  auto head_setup = [=](Context& ctx, std::vector<Tensor>& keep) {
    keep.push_back(rand(ctx, {ln, lc}, f, 15));
    keep.push_back(rand(ctx, {lv, lc}, f, 16, -0.05, 0.05));
    keep.push_back(ids(ctx, {ln}, static_cast<int>(lv)));
    keep.push_back(ctx.empty({ln}, f));
    keep.push_back(ctx.empty({ln}, f));
    keep.push_back(ctx.empty({ln}, f));
  };
  cs.push_back({"logprob_head_forward", fmt::format("{}x{}x{}", ln, lc, lv), 2.0 * ln * lc * lv,
                4.0 * (ln * lc + lv * lc), [=](Context& ctx, std::vector<Tensor>& keep) {
                  head_setup(ctx, keep);
                  return std::function<void()>([&ctx, &keep] {
                    logprob_head_forward(keep[3], keep[4], keep[5], keep[0], keep[1], keep[2], 1.0,
                                         64, ctx);
                  });
                }});
  cs.push_back({"logprob_head_backward", fmt::format("{}x{}x{}", ln, lc, lv), 6.0 * ln * lc * lv,
                4.0 * 2 * (ln * lc + lv * lc), [=](Context& ctx, std::vector<Tensor>& keep) {
                  head_setup(ctx, keep);
                  logprob_head_forward(keep[3], keep[4], keep[5], keep[0], keep[1], keep[2], 1.0,
                                       64, ctx);
                  keep.push_back(rand(ctx, {ln}, f, 17));  // 6: dlogprob
                  keep.push_back(rand(ctx, {ln}, f, 18));  // 7: dentropy
                  keep.push_back(ctx.empty({ln, lc}, f));  // 8: dh
                  keep.push_back(ctx.zeros({lv, lc}, f));  // 9: dw
                  return std::function<void()>([&ctx, &keep] {
                    logprob_head_backward(keep[8], keep[9], keep[6], keep[7], keep[0], keep[1],
                                          keep[2], keep[5], 1.0, 64, ctx);
                  });
                }});
  // DeepSeek-V3 routing: 256 experts, 8 groups, top-4 groups, top-8 experts, sigmoid + bias.
  const int64_t rn = quick ? 512 : 4096;
  cs.push_back({"moe_route_forward", fmt::format("{}x256", rn), 10.0 * rn * 256,
                4.0 * (2 * rn * 256 + rn * 16), [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {rn, 256}, f, 19));
                  keep.push_back(rand(ctx, {256}, f, 20, -0.01, 0.01));
                  keep.push_back(ctx.empty({rn, 8}, DType::i32));
                  keep.push_back(ctx.empty({rn, 8}, f));
                  keep.push_back(ctx.empty({rn, 256}, f));
                  return std::function<void()>([&ctx, &keep] {
                    MoeRouting r;
                    r.n_routed_experts = 256;
                    r.num_experts_per_tok = 8;
                    r.scoring = MoeScoring::sigmoid;
                    r.n_group = 8;
                    r.topk_group = 4;
                    r.topk_method = MoeTopkMethod::noaux_tc;
                    r.norm_topk_prob = true;
                    r.routed_scaling_factor = 2.5;
                    moe_route_forward(keep[2], keep[3], keep[4], keep[0], keep[1], r, ctx);
                  });
                }});
  const int64_t pc = quick ? 128 : 1024;
  cs.push_back({"moe_permute", fmt::format("{}x8x{}", rn, pc), 0, 4.0 * 2 * rn * 8 * pc,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {rn, pc}, f, 21));
                  keep.push_back(ids(ctx, {rn, 8}, 256));
                  keep.push_back(ctx.empty({rn * 8, pc}, f));
                  keep.push_back(ctx.empty({rn * 8}, DType::i32));
                  keep.push_back(ctx.empty({257}, DType::i32));
                  return std::function<void()>([&ctx, &keep] {
                    moe_permute(keep[2], keep[3], keep[4], keep[0], keep[1], ctx);
                  });
                }});
  const int64_t an = quick ? (1 << 20) : (1 << 24);
  cs.push_back({"adamw_update", fmt::format("{}", an), 12.0 * an, 4.0 * 7 * an,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {an}, f, 22));
                  keep.push_back(rand(ctx, {an}, f, 23));
                  keep.push_back(ctx.zeros({an}, f));
                  keep.push_back(ctx.zeros({an}, f));
                  return std::function<void()>([&ctx, &keep] {
                    AdamWParams hp;
                    adamw_update(keep[0], keep[1], keep[2], keep[3], TensorView{}, hp, ctx);
                  });
                }});
  const int64_t sb = quick ? 16 : 64, sv = quick ? 32000 : 152064;
  cs.push_back({"sample_forward", fmt::format("{}x{} top_p=0.95", sb, sv), 20.0 * sb * sv,
                4.0 * sb * sv, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {sb, sv}, f, 24, -5, 5));
                  keep.push_back(ctx.empty({sb}, DType::i32));
                  keep.push_back(ctx.empty({sb}, f));
                  Tensor cnt = Tensor({sb, 2}, DType::i64, ctx.host_allocator());
                  for (int64_t i = 0; i < sb * 2; ++i) cnt.ptr<int64_t>()[i] = i;
                  keep.push_back(ctx.empty({sb, 2}, DType::i64));
                  ctx.copy(keep[3], cnt);
                  return std::function<void()>([&ctx, &keep] {
                    SamplingParams p;
                    p.top_p = 0.95;
                    sample_forward(keep[1], keep[2], keep[0], keep[3], p, 7, ctx);
                  });
                }});
  const int64_t rnd = quick ? (1 << 22) : (1 << 28);
  cs.push_back({"random_uniform", fmt::format("{}", rnd), 0, 4.0 * rnd,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(ctx.empty({rnd}, f));
                  return std::function<void()>(
                      [&ctx, &keep] { random_uniform(keep[0], -1, 1, 3, 0, ctx); });
                }});
  return cs;
}

// Measures this device's ceilings: a large f32 GEMM and a large copy (bytes read + written).
Ceilings measure_ceilings(Context& ctx, bool quick) {
  Ceilings c;
  if (ctx.is_cuda()) {
    // Until the CUDA GEMM exists, use the ceilings measured on the H200 (DEVELOPERS guide, bf16).
    c.gflops = 785e3;
    c.gbps = 4300;
    return c;
  }
  const int64_t m = quick ? 512 : 1536;
  Tensor a = rand(ctx, {m, m}, DType::f32, 100), b = rand(ctx, {m, m}, DType::f32, 101);
  Tensor out = ctx.empty({m, m}, DType::f32);
  double ms = median_ms(
      ctx, [&] { matmul_forward(out, a, b, {}, ctx); }, 1, 3);
  c.gflops = 2.0 * m * m * m / (ms * 1e6);
  const int64_t n = quick ? (1 << 23) : (1 << 26);
  Tensor src = rand(ctx, {n}, DType::f32, 102), dst = ctx.empty({n}, DType::f32);
  // The copy runs on every pool thread, as the multi-threaded kernels do.
  ms = median_ms(
      ctx,
      [&] {
        ctx.pool().parallel_for(n, 1 << 16, [&](int64_t lo, int64_t hi) {
          std::memcpy(dst.ptr<float>() + lo, src.ptr<float>() + lo,
                      static_cast<size_t>(hi - lo) * sizeof(float));
        });
      },
      1, 5);
  c.gbps = 2.0 * 4 * n / (ms * 1e6);
  std::printf("{\"ceiling\":\"%s\",\"gemm_f32_gflops\":%.1f,\"copy_gbps\":%.1f,\"threads\":%d}\n",
              ctx.device().str().c_str(), c.gflops, c.gbps, ctx.pool().num_threads());
  return c;
}

int run(const Options& opt) {
  auto ctx = opt.device == "cuda" ? Context::cuda() : Context::cpu();
  Ceilings ceil = measure_ceilings(*ctx, opt.quick);
  for (const Case& cs : make_cases(opt.quick)) {
    if (!opt.filter.empty() && cs.op.find(opt.filter) == std::string::npos) continue;
    std::vector<Tensor> keep;
    keep.reserve(16);
    try {
      auto fn = cs.setup(*ctx, keep);
      double ms = median_ms(*ctx, fn, 1, opt.reps);
      report(cs.op, cs.shape, ctx->device().str(), "f32", ms, cs.flops, cs.bytes, ceil);
    } catch (const Error& e) {
      std::string msg = e.what();
      for (auto& ch : msg)
        if (ch == '"' || ch == '\n') ch = '\'';
      std::printf("{\"op\":\"%s\",\"shape\":\"%s\",\"device\":\"%s\",\"skipped\":\"%s\"}\n",
                  cs.op.c_str(), cs.shape.c_str(), ctx->device().str().c_str(), msg.c_str());
    }
  }
  return 0;
}

}  // namespace
}  // namespace r1kit::bench

int main(int argc, char** argv) {
  r1kit::bench::Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      opt.quick = true;
    } else if (a == "--filter" && i + 1 < argc) {
      opt.filter = argv[++i];
    } else if (a == "--device" && i + 1 < argc) {
      opt.device = argv[++i];
    } else if (a == "--reps" && i + 1 < argc) {
      opt.reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::cerr << "usage: kernels_bench [--quick] [--filter OP] [--device cpu|cuda] [--reps N]\n";
      return 2;
    }
  }
  try {
    return r1kit::bench::run(opt);
  } catch (const r1kit::Error& e) {
    std::cerr << "kernels_bench: " << e.what() << "\n";
    return 1;
  }
}
