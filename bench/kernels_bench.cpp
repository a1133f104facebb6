// Kernel benchmarks: one JSON line per (op, shape, device) with the median time, the achieved
// rate, the roofline floor from the ceilings measured on this machine at start-up, and the ratio.
// Cases live in bench/cases/ (one file per op group).
// Usage: kernels_bench [--quick] [--filter SUBSTRING] [--device cpu|cuda] [--dtype f32|bf16]
//                      [--reps N]
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#if defined(R1KIT_WITH_CUDA)
#include <cuda_runtime.h>

#include "core/cuda_check.h"
#endif

#include "bench/bench_util.h"
#include "bench/cases.h"
#include "kernels/matmul.h"

namespace r1kit::bench {
namespace {
using namespace r1kit::kernels;

struct Options {
  bool quick = false;
  std::string filter;
  std::string device = "cpu";
  std::string dtype;  // default: f32 on the CPU, bf16 on CUDA
  int reps = 5;
};

std::vector<Case> make_cases(const BenchConfig& cfg) {
  std::vector<Case> cs;
  add_gemm_cases(cs, cfg);
  add_pointwise_cases(cs, cfg);
  add_optim_cases(cs, cfg);
  add_loss_cases(cs, cfg);
  add_attention_cases(cs, cfg);
  add_moe_sampling_cases(cs, cfg);
  return cs;
}

// Measures this device's ceilings: a large f32 GEMM and a large copy (bytes read + written).
Ceilings measure_ceilings(Context& ctx, bool quick) {
  Ceilings c;
  if (ctx.is_cuda()) {
#if defined(R1KIT_WITH_CUDA)
    // A large bf16 GEMM (cuBLAS through matmul_forward) and a large device-to-device copy.
    const int64_t m = quick ? 2048 : 8192;
    Tensor a = rand(ctx, {m, m}, DType::bf16, 100), b = rand(ctx, {m, m}, DType::bf16, 101);
    Tensor out = ctx.empty({m, m}, DType::bf16);
    double ms = median_ms(
        ctx, [&] { matmul_forward(out, a, b, {}, ctx); }, 3, 10);
    c.gflops = 2.0 * m * m * m / (ms * 1e6);
    const int64_t n = quick ? (1 << 26) : (1 << 30);  // bytes per buffer
    Tensor src = rand(ctx, {n / 4}, DType::f32, 102), dst = ctx.empty({n / 4}, DType::f32);
    ms = median_ms(
        ctx,
        [&] {
          R1_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), static_cast<size_t>(n),
                                        cudaMemcpyDeviceToDevice,
                                        static_cast<cudaStream_t>(ctx.stream())));
        },
        3, 10);
    c.gbps = 2.0 * static_cast<double>(n) / (ms * 1e6);
    std::printf(
        "{\"ceiling\":\"%s\",\"gemm_bf16_gflops\":%.1f,\"copy_gbps\":%.1f,\"gemm_shape\":%lld}\n",
        ctx.device().str().c_str(), c.gflops, c.gbps, static_cast<long long>(m));
#endif
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
  BenchConfig cfg;
  cfg.quick = opt.quick;
  cfg.cuda = ctx->is_cuda();
  const std::string dt = opt.dtype.empty() ? (cfg.cuda ? "bf16" : "f32") : opt.dtype;
  R1_CHECK(dt == "f32" || dt == "bf16", "kernels_bench: --dtype must be f32 or bf16, got {}", dt);
  cfg.dtype = dt == "bf16" ? DType::bf16 : DType::f32;
  Ceilings ceil = measure_ceilings(*ctx, opt.quick);
  for (const Case& cs : make_cases(cfg)) {
    if (!opt.filter.empty() && cs.op.find(opt.filter) == std::string::npos) continue;
    std::vector<Tensor> keep;
    keep.reserve(16);
    try {
      auto fn = cs.setup(*ctx, keep);
      double ms = median_ms(*ctx, fn, 1, opt.reps);
      report(cs.op, cs.shape, ctx->device().str(), cs.dtype.empty() ? dt : cs.dtype, ms, cs.flops,
             cs.bytes, ceil);
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
    } else if (a == "--dtype" && i + 1 < argc) {
      opt.dtype = argv[++i];
    } else if (a == "--reps" && i + 1 < argc) {
      opt.reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::cerr
          << "usage: kernels_bench [--quick] [--filter OP] [--device cpu|cuda] [--dtype f32|bf16] "
             "[--reps N]\n";
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
