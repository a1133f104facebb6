// GEMM cases: matmul, the linear layer (forward and backward) and the grouped expert linear at LLM
// shapes (Qwen2.5-7B's MLP up projection on CUDA; smaller on the CPU). bench/gemm_bench compares
// the CUDA ones with the best cuBLASLt algorithm per shape.
#include <fmt/format.h>

#include "bench/cases.h"
#include "kernels/matmul.h"

namespace r1kit::bench {
using namespace r1kit::kernels;

void add_gemm_cases(std::vector<Case>& cs, const BenchConfig& cfg) {
  const DType t = cfg.dtype;
  const double sz = dsize(t);
  const int64_t mm = cfg.quick ? 256 : (cfg.cuda ? 4096 : 1024);
  cs.push_back({"matmul", fmt::format("{}x{}x{}", mm, mm, mm), 2.0 * mm * mm * mm, sz * 3 * mm * mm,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {mm, mm}, t, 1));
                  keep.push_back(rand(ctx, {mm, mm}, t, 2));
                  keep.push_back(ctx.empty({mm, mm}, t));
                  return std::function<void()>(
                      [&ctx, &keep] { matmul_forward(keep[2], keep[0], keep[1], {}, ctx); });
                }});

  // Linear x (N, C) -> (N, OC): 8192 tokens through 3584 -> 18944 on CUDA.
  const int64_t n = cfg.quick ? 128 : (cfg.cuda ? 8192 : 512);
  const int64_t ch = cfg.quick ? 256 : (cfg.cuda ? 3584 : 1024);
  const int64_t oc = cfg.quick ? 512 : (cfg.cuda ? 18944 : 2048);
  const double lin_flops = 2.0 * n * ch * oc;
  cs.push_back({"linear", fmt::format("{}x{}->{}", n, ch, oc), lin_flops,
                sz * (n * ch + oc * ch + n * oc), [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, ch}, t, 3));
                  keep.push_back(rand(ctx, {oc, ch}, t, 4));
                  keep.push_back(ctx.empty({n, oc}, t));
                  return std::function<void()>([&ctx, &keep] {
                    linear_forward(keep[2], keep[0], keep[1], TensorView{}, ctx);
                  });
                }});
  // Backward: dx = dy·w and dw += dyᵀ·x (two GEMMs), plus dbias += Σ dy.
  cs.push_back({"linear_backward", fmt::format("{}x{}->{}", n, ch, oc), 2 * lin_flops,
                sz * (2 * n * oc + 2 * n * ch + 3 * oc * ch + 2 * oc),
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, ch}, t, 5));   // x
                  keep.push_back(rand(ctx, {oc, ch}, t, 6));  // w
                  keep.push_back(rand(ctx, {n, oc}, t, 7));   // dy
                  keep.push_back(ctx.empty({n, ch}, t));      // dx
                  keep.push_back(ctx.zeros({oc, ch}, t));     // dw
                  keep.push_back(ctx.zeros({oc}, t));         // dbias
                  return std::function<void()>([&ctx, &keep] {
                    linear_backward(keep[3], keep[4], keep[5], keep[2], keep[0], keep[1],
                                    GradWrite::overwrite, ctx);
                  });
                }});

  // Grouped expert linear: E experts of balanced rows (DeepSeek-V3 gate_up, 32 local experts).
  const int64_t e = cfg.quick ? 4 : (cfg.cuda ? 32 : 8);
  const int64_t gm = cfg.quick ? 256 : (cfg.cuda ? 8192 : 1024);
  const int64_t gc = cfg.quick ? 128 : (cfg.cuda ? 7168 : 512);
  const int64_t goc = cfg.quick ? 256 : (cfg.cuda ? 4096 : 1024);
  cs.push_back({"grouped_linear", fmt::format("E{}:{}x{}->{}", e, gm, gc, goc), 2.0 * gm * gc * goc,
                sz * (gm * gc + e * goc * gc + gm * goc),
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {gm, gc}, t, 8));
                  keep.push_back(rand(ctx, {e, goc, gc}, t, 9));
                  keep.push_back(ctx.empty({gm, goc}, t));
                  Tensor off(Shape{e + 1}, DType::i32, ctx.host_allocator(), "expert_offsets");
                  for (int64_t i = 0; i <= e; ++i)
                    off.ptr<int32_t>()[i] = static_cast<int32_t>(i * (gm / e));
                  keep.push_back(std::move(off));
                  return std::function<void()>([&ctx, &keep] {
                    grouped_linear_forward(keep[2], keep[0], keep[1], keep[3], ctx);
                  });
                }});
}

}  // namespace r1kit::bench
