// GEMM cases: matmul and the linear layer at LLM shapes.
#include "bench/cases.h"
#include "kernels/matmul.h"

#include <fmt/format.h>

namespace r1kit::bench {
using namespace r1kit::kernels;

void add_gemm_cases(std::vector<Case>& cs, const BenchConfig& cfg) {
  const DType t = cfg.dtype;
  const int64_t mm = cfg.quick ? 256 : (cfg.cuda ? 4096 : 1024);
  cs.push_back({"matmul", fmt::format("{}x{}x{}", mm, mm, mm), 2.0 * mm * mm * mm,
                dsize(t) * 3 * mm * mm, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {mm, mm}, t, 1));
                  keep.push_back(rand(ctx, {mm, mm}, t, 2));
                  keep.push_back(ctx.empty({mm, mm}, t));
                  return std::function<void()>(
                      [&ctx, &keep] { matmul_forward(keep[2], keep[0], keep[1], {}, ctx); });
                }});
}

}  // namespace r1kit::bench
