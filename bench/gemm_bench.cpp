// GEMM at LLM shapes (issue: "within 10% of the best cuBLAS algorithm for that shape"): our
// linear_forward / linear_backward / matmul_forward / grouped_linear_forward in bf16 against the
// best of every algorithm cublasLtMatmulAlgoGetHeuristic offers for the same problem (up to 32,
// each timed; with the reduction-scheme mask ours uses, so only algorithms ours may pick), on the
// same buffers. Ours runs twice: as by default (cuBLASLt's first heuristic choice, the same in
// every process) and in a context with R1KIT_GEMM_AUTOTUNE=1 (timed choice, kernels/matmul.h).
// One JSON line per shape:
//   {"op","shape","dtype","ours_ms","tuned_ms","heuristic_ms","best_ms","ratio_to_best",
//    "tuned_ratio_to_best","tflops","floor_ms","ratio","best_rank",...}
// heuristic_ms is the heuristic's first candidate timed by the bench itself (what ours_ms runs,
// without our host work); best_rank is the heuristic rank of the fastest candidate.
// floor_ms = flops / 785 TFLOP/s (the H200's measured bf16 GEMM rate); ratio = ours / floor.
// Times are medians of CUDA-event-timed runs after warm-up (ours includes the host work of each
// call: plan lookup, descriptor updates); inputs are uniform random; when one set of operands
// fits in L2 several sets are rotated. "first_call_ms" / "tuned_first_call_ms" are the first
// calls, which build (and, tuned, above the tuning threshold time) the plan. Without CUDA or a GPU
// it prints one skip line.
// Usage: gemm_bench [--quick] [--reps N] [--filter SUBSTRING]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "bench/cases.h"
#include "core/context.h"
#include "kernels/matmul.h"

#if defined(R1KIT_WITH_CUDA)
#include <cublasLt.h>
#include <cuda_runtime.h>

#include "core/cuda_check.h"
#endif

namespace r1kit::bench {
namespace {

struct Options {
  bool quick = false;
  int reps = 20;
  std::string filter;
};

#if defined(R1KIT_WITH_CUDA)
using namespace r1kit::kernels;

constexpr double kPeakFlops = 785e12;  // bf16 dense GEMM rate measured on an H200
constexpr size_t kWorkspace = size_t{32} << 20;
constexpr size_t kL2Bytes = size_t{50} << 20;

#define LT_CHECK(expr)                                                                            \
  do {                                                                                            \
    cublasStatus_t st_ = (expr);                                                                  \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                             \
      throw Error(fmt::format("gemm_bench: {} failed: {}", #expr, cublasLtGetStatusString(st_))); \
  } while (0)

// Median of `reps` event-timed runs of fn(run index) after `warmup` runs, in milliseconds.
double median_event_ms(cudaStream_t s, const std::function<void(int)>& fn, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) fn(i);
  std::vector<cudaEvent_t> ev(reps + 1);
  for (auto& e : ev) R1_CUDA_CHECK(cudaEventCreate(&e));
  R1_CUDA_CHECK(cudaEventRecord(ev[0], s));
  for (int i = 0; i < reps; ++i) {
    fn(warmup + i);
    R1_CUDA_CHECK(cudaEventRecord(ev[i + 1], s));
  }
  R1_CUDA_CHECK(cudaEventSynchronize(ev[reps]));
  std::vector<double> t(reps);
  for (int i = 0; i < reps; ++i) {
    float ms = 0;
    R1_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[i], ev[i + 1]));
    t[i] = ms;
  }
  for (auto& e : ev) R1_CUDA_CHECK(cudaEventDestroy(e));
  std::sort(t.begin(), t.end());
  return t[reps / 2];
}

// A row-major bf16 product C (m, n) = op(A)·op(B) + beta·C (+ bias), as kernels/cuda/matmul.cu
// states it; `groups` products at element offsets ga, gb, gc (the experts of a grouped linear).
struct Problem {
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  double beta = 0;
  bool bias = false;
  int64_t groups = 1, ga = 0, gb = 0, gc = 0;
  double flops() const { return 2.0 * m * n * k * batch * groups; }
};

// One set of operands (a, b, c, bias) for the problem, and the call of ours on it.
struct Buffers {
  std::vector<Tensor> keep;
  const void* a = nullptr;
  const void* b = nullptr;
  void* c = nullptr;
  const void* bias = nullptr;
};

// Ours on one operand set, run on the given context (the default or the tuning one; the operands
// live in the default context's memory, and the bench synchronises when it switches).
using Ours = std::function<void(Context&)>;

struct Case {
  std::string op, shape;
  Problem p;
  // Makes one operand set (random inputs) and returns ours on it.
  std::function<Ours(Context&, Buffers&, uint64_t)> setup;
};

// The same problem straight through cuBLASLt (row-major → column-major by swapping operands).
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

cublasLtMatrixLayout_t layout(int64_t rows, int64_t cols, int64_t batch, int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  LT_CHECK(cublasLtMatrixLayoutCreate(&l, CUDA_R_16BF, rows, cols, rows));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    LT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                              sizeof(count)));
    LT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                              &stride, sizeof(stride)));
  }
  return l;
}

void make_plan(LtPlan& lp, const Problem& p, const void* bias) {
  LT_CHECK(cublasLtMatmulDescCreate(&lp.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t opa = p.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opb = p.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  LT_CHECK(cublasLtMatmulDescSetAttribute(lp.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
  LT_CHECK(cublasLtMatmulDescSetAttribute(lp.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
  if (p.bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    LT_CHECK(
        cublasLtMatmulDescSetAttribute(lp.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    LT_CHECK(cublasLtMatmulDescSetAttribute(lp.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                            sizeof(bias)));
  }
  // Column-major A = our B, B = our A, C (n, m).
  lp.la = layout(p.tb ? p.k : p.n, p.tb ? p.n : p.k, p.batch, p.k * p.n);
  lp.lb = layout(p.ta ? p.m : p.k, p.ta ? p.k : p.m, p.batch, p.m * p.k);
  lp.lc = layout(p.n, p.m, p.batch, p.m * p.n);
}

struct Best {
  double ms = 0;
  int index = -1;  // heuristic rank of the fastest
  int tried = 0;
  double first_ms = 0;  // the heuristic's first candidate (0: it did not run)
};

Best best_of_all(Context& ctx, cublasLtHandle_t lt, void* ws, const Problem& p,
                 std::vector<Buffers>& bufs, int reps) {
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream());
  LtPlan lp;
  make_plan(lp, p, bufs[0].bias);
  cublasLtMatmulPreference_t pref = nullptr;
  LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t wsb = kWorkspace;
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &wsb, sizeof(wsb)));
  // As ours for a bf16 output: split-K partial sums in fp32 only.
  const uint32_t mask = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                &mask, sizeof(mask)));
  std::vector<cublasLtMatmulHeuristicResult_t> res(32);
  int returned = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(lt, lp.desc, lp.la, lp.lb, lp.lc, lp.lc,
                                                           pref, 32, res.data(), &returned);
  cublasLtMatmulPreferenceDestroy(pref);
  LT_CHECK(hs);
  const float alpha = 1.0f, beta = static_cast<float>(p.beta);
  Best best;
  for (int i = 0; i < returned; ++i) {
    if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
    bool ok = true;
    auto run = [&](int r) {
      const Buffers& bf = bufs[r % bufs.size()];
      if (p.bias)
        LT_CHECK(cublasLtMatmulDescSetAttribute(lp.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                &bf.bias, sizeof(bf.bias)));
      for (int64_t g = 0; g < p.groups && ok; ++g) {
        const auto* a = static_cast<const char*>(bf.a) + 2 * g * p.ga;
        const auto* b = static_cast<const char*>(bf.b) + 2 * g * p.gb;
        auto* c = static_cast<char*>(bf.c) + 2 * g * p.gc;
        ok = cublasLtMatmul(lt, lp.desc, &alpha, b, lp.la, a, lp.lb, &beta, c, lp.lc, c, lp.lc,
                            &res[i].algo, ws, kWorkspace, s) == CUBLAS_STATUS_SUCCESS;
      }
    };
    run(0);
    R1_CUDA_CHECK(cudaStreamSynchronize(s));
    if (!ok) continue;
    const double ms = median_event_ms(s, run, 2, std::max(3, reps / 2));
    if (!ok) continue;
    ++best.tried;
    if (i == 0) best.first_ms = ms;
    if (best.index < 0 || ms < best.ms) {
      best.ms = ms;
      best.index = i;
    }
  }
  return best;
}

std::vector<Case> make_cases(bool quick) {
  std::vector<Case> cs;
  const int64_t tok = quick ? 2048 : 8192;
  // linear_forward y (N, OC) = x (N, C)·wᵀ (+ bias).
  auto linear = [&](const std::string& label, int64_t n, int64_t ch, int64_t oc, bool with_bias) {
    Problem p{.ta = false, .tb = true, .m = n, .n = oc, .k = ch, .bias = with_bias};
    cs.push_back({label, fmt::format("{}x{}->{}", n, ch, oc), p,
                  [=](Context& ctx, Buffers& b, uint64_t seed) {
                    b.keep.push_back(rand(ctx, {n, ch}, DType::bf16, seed));
                    b.keep.push_back(rand(ctx, {oc, ch}, DType::bf16, seed + 1));
                    b.keep.push_back(ctx.empty({n, oc}, DType::bf16));
                    if (with_bias) b.keep.push_back(rand(ctx, {oc}, DType::bf16, seed + 2));
                    b.a = b.keep[0].data();
                    b.b = b.keep[1].data();
                    b.c = b.keep[2].data();
                    b.bias = with_bias ? b.keep[3].data() : nullptr;
                    const Tensor *x = &b.keep[0], *w = &b.keep[1], *y = &b.keep[2];
                    const Tensor* bias = with_bias ? &b.keep[3] : nullptr;
                    return Ours([x, w, y, bias](Context& c) {
                      linear_forward(*y, *x, *w, bias ? bias->view() : TensorView{}, c);
                    });
                  }});
  };
  linear("linear_fwd", tok, 7168, 2048, false);      // DeepSeek-V3-style q/kv projection
  linear("linear_fwd_bias", tok, 3584, 4608, true);  // Qwen2.5-7B fused qkv (with bias)
  linear("linear_fwd", tok, 3584, 18944, false);     // Qwen2.5-7B MLP up
  linear("linear_fwd", tok, 18944, 3584, false);     // Qwen2.5-7B MLP down
  {
    // linear_backward dx (N, C) = dy (N, OC)·w (OC, C) for the MLP up projection.
    const int64_t n = tok, ch = 3584, oc = 18944;
    Problem p{.ta = false, .tb = false, .m = n, .n = ch, .k = oc};
    cs.push_back(
        {"linear_bwd_dx", fmt::format("{}x{}->{}", n, ch, oc), p,
         [=](Context& ctx, Buffers& b, uint64_t seed) {
           b.keep.push_back(rand(ctx, {n, oc}, DType::bf16, seed));       // dy
           b.keep.push_back(rand(ctx, {oc, ch}, DType::bf16, seed + 1));  // w
           b.keep.push_back(ctx.empty({n, ch}, DType::bf16));             // dx
           b.keep.push_back(ctx.empty({n, ch}, DType::bf16));             // x (unused)
           b.a = b.keep[0].data();
           b.b = b.keep[1].data();
           b.c = b.keep[2].data();
           const Tensor *dy = &b.keep[0], *w = &b.keep[1], *dx = &b.keep[2], *x = &b.keep[3];
           return Ours([dy, w, dx, x](Context& c) {
             linear_backward(*dx, TensorView{}, TensorView{}, *dy, *x, *w, GradWrite::overwrite, c);
           });
         }});
    // linear_backward dw (OC, C) += dyᵀ (OC, N)·x (N, C).
    Problem q{.ta = true, .tb = false, .m = oc, .n = ch, .k = n, .beta = 1.0};
    cs.push_back(
        {"linear_bwd_dw", fmt::format("{}x{}->{}", n, ch, oc), q,
         [=](Context& ctx, Buffers& b, uint64_t seed) {
           b.keep.push_back(rand(ctx, {n, oc}, DType::bf16, seed));       // dy
           b.keep.push_back(rand(ctx, {n, ch}, DType::bf16, seed + 1));   // x
           b.keep.push_back(rand(ctx, {oc, ch}, DType::bf16, seed + 2));  // dw
           b.keep.push_back(ctx.empty({oc, ch}, DType::bf16));            // w (unused)
           b.a = b.keep[0].data();
           b.b = b.keep[1].data();
           b.c = b.keep[2].data();
           const Tensor *dy = &b.keep[0], *x = &b.keep[1], *dw = &b.keep[2], *w = &b.keep[3];
           return Ours([dy, x, dw, w](Context& c) {
             linear_backward(TensorView{}, *dw, TensorView{}, *dy, *x, *w, GradWrite::overwrite, c);
           });
         }});
  }
  {
    // Batched attention scores S (H, T, T) = Q (H, T, D)·Kᵀ.
    const int64_t h = 32, t = quick ? 1024 : 4096, d = 128;
    Problem p{.ta = false, .tb = true, .m = t, .n = t, .k = d, .batch = h};
    cs.push_back(
        {"matmul_batched", fmt::format("{}x{}x{}x{}", h, t, t, d), p,
         [=](Context& ctx, Buffers& b, uint64_t seed) {
           b.keep.push_back(rand(ctx, {h, t, d}, DType::bf16, seed));
           b.keep.push_back(rand(ctx, {h, t, d}, DType::bf16, seed + 1));
           b.keep.push_back(ctx.empty({h, t, t}, DType::bf16));
           b.a = b.keep[0].data();
           b.b = b.keep[1].data();
           b.c = b.keep[2].data();
           const Tensor *q = &b.keep[0], *k = &b.keep[1], *s = &b.keep[2];
           return Ours([q, k, s](Context& c) { matmul_forward(*s, *q, *k, {.trans_b = true}, c); });
         }});
  }
  // grouped_linear_forward with balanced experts: x (M, C), w (E, OC, C), y (M, OC).
  auto grouped = [&](int64_t e, int64_t m, int64_t ch, int64_t oc) {
    const int64_t rows = m / e;
    Problem p{.ta = false,
              .tb = true,
              .m = rows,
              .n = oc,
              .k = ch,
              .groups = e,
              .ga = rows * ch,
              .gb = oc * ch,
              .gc = rows * oc};
    cs.push_back({"grouped_linear", fmt::format("E{}:{}x{}->{}", e, m, ch, oc), p,
                  [=](Context& ctx, Buffers& b, uint64_t seed) {
                    b.keep.push_back(rand(ctx, {m, ch}, DType::bf16, seed));
                    b.keep.push_back(rand(ctx, {e, oc, ch}, DType::bf16, seed + 1));
                    b.keep.push_back(ctx.empty({m, oc}, DType::bf16));
                    Tensor off(Shape{e + 1}, DType::i32, ctx.host_allocator(), "expert_offsets");
                    for (int64_t i = 0; i <= e; ++i)
                      off.ptr<int32_t>()[i] = static_cast<int32_t>(i * rows);
                    b.keep.push_back(std::move(off));
                    b.a = b.keep[0].data();
                    b.b = b.keep[1].data();
                    b.c = b.keep[2].data();
                    const Tensor *x = &b.keep[0], *w = &b.keep[1], *y = &b.keep[2], *o = &b.keep[3];
                    return Ours(
                        [x, w, y, o](Context& c) { grouped_linear_forward(*y, *x, *w, *o, c); });
                  }});
  };
  // DeepSeek-V3 routed experts' gate_up (C 7168 -> 2·2048), 32 local experts of 256 rows each.
  grouped(32, tok, 7168, 4096);
  // Mixtral-style: 8 experts, top-2 of the tokens (2048 rows each at 8192 tokens), 4096 -> 2·14336.
  grouped(8, 2 * tok, 4096, quick ? 8192 : 28672);
  return cs;
}

void print_skip(const std::string& op, const std::string& shape, const std::string& why) {
  std::string msg = why;
  for (auto& ch : msg)
    if (ch == '"' || ch == '\n') ch = '\'';
  std::printf("{\"op\":\"%s\",\"shape\":\"%s\",\"skipped\":\"%s\"}\n", op.c_str(), shape.c_str(),
              msg.c_str());
  std::fflush(stdout);
}

// Sets R1KIT_GEMM_AUTOTUNE to value (nullptr: unset) while ctx first uses cuBLASLt, then restores
// it (each context reads the variable once, on first use).
void first_use_with_autotune(Context& ctx, const char* value) {
  const char* prev = std::getenv("R1KIT_GEMM_AUTOTUNE");
  const bool had = prev != nullptr;
  const std::string saved = had ? prev : "";
  if (value) {
    ::setenv("R1KIT_GEMM_AUTOTUNE", value, 1);
  } else {
    ::unsetenv("R1KIT_GEMM_AUTOTUNE");
  }
  Tensor a = ctx.zeros({1, 1}, DType::f32), b = ctx.zeros({1, 1}, DType::f32);
  Tensor c = ctx.empty({1, 1}, DType::f32);
  matmul_forward(c, a, b, {}, ctx);
  ctx.synchronize();
  if (had) {
    ::setenv("R1KIT_GEMM_AUTOTUNE", saved.c_str(), 1);
  } else {
    ::unsetenv("R1KIT_GEMM_AUTOTUNE");
  }
}

// Wall time of ours' first call on ctx (plan building, and tuning where enabled), then the median
// of event-timed calls on ctx's stream, rotating the operand sets.
std::pair<double, double> time_ours(Context& ctx, std::vector<Ours>& ours, int reps) {
  ctx.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  ours[0](ctx);
  ctx.synchronize();
  const double first_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const double ms = median_event_ms(
      static_cast<cudaStream_t>(ctx.stream()), [&](int r) { ours[r % ours.size()](ctx); }, 3, reps);
  ctx.synchronize();
  return {first_ms, ms};
}

int run(const Options& opt) {
  auto ctx = Context::cuda();
  auto tuned = Context::cuda();  // same device, its own stream and cuBLASLt state
  first_use_with_autotune(*ctx, nullptr);
  first_use_with_autotune(*tuned, "1");
  cublasLtHandle_t lt = nullptr;
  LT_CHECK(cublasLtCreate(&lt));
  void* ws = nullptr;
  R1_CUDA_CHECK(cudaMalloc(&ws, kWorkspace));
  uint64_t seed = 1;
  for (const Case& cs : make_cases(opt.quick)) {
    if (!opt.filter.empty() && cs.op.find(opt.filter) == std::string::npos) continue;
    try {
      const Problem& p = cs.p;
      // Operand sets: enough that the rotation does not run out of L2.
      const double set_bytes = 2.0 *
                               (static_cast<double>(p.m) * p.k + static_cast<double>(p.k) * p.n +
                                static_cast<double>(p.m) * p.n) *
                               p.batch * p.groups;
      const int nbuf = set_bytes < 3.0 * kL2Bytes
                           ? static_cast<int>(std::min(8.0, 1 + 4.0 * kL2Bytes / set_bytes))
                           : 1;
      std::vector<Buffers> bufs(nbuf);
      std::vector<Ours> ours;
      for (auto& b : bufs) {
        ours.push_back(cs.setup(*ctx, b, seed));
        seed += 10;
      }
      ctx->synchronize();
      const auto [first_ms, ours_ms] = time_ours(*ctx, ours, opt.reps);
      const auto [tuned_first_ms, tuned_ms] = time_ours(*tuned, ours, opt.reps);
      const Best best = best_of_all(*ctx, lt, ws, p, bufs, opt.reps);
      ctx->synchronize();
      const double flops = p.flops();
      const double floor_ms = flops / kPeakFlops * 1e3;
      const double best_ms = best.index >= 0 ? best.ms : 0.0;
      std::printf(
          "{\"op\":\"%s\",\"shape\":\"%s\",\"dtype\":\"bf16\",\"ours_ms\":%.4f,"
          "\"tuned_ms\":%.4f,\"heuristic_ms\":%.4f,\"best_ms\":%.4f,\"ratio_to_best\":%.3f,"
          "\"tuned_ratio_to_best\":%.3f,\"tflops\":%.1f,\"floor_ms\":%.4f,\"ratio\":%.2f,"
          "\"best_rank\":%d,\"algos_timed\":%d,\"first_call_ms\":%.2f,"
          "\"tuned_first_call_ms\":%.2f,\"buffers\":%d}\n",
          cs.op.c_str(), cs.shape.c_str(), ours_ms, tuned_ms, best.first_ms, best_ms,
          best_ms > 0 ? ours_ms / best_ms : 0.0, best_ms > 0 ? tuned_ms / best_ms : 0.0,
          flops / (ours_ms * 1e9), floor_ms, ours_ms / floor_ms, best.index, best.tried, first_ms,
          tuned_first_ms, nbuf);
      std::fflush(stdout);
    } catch (const Error& e) {
      print_skip(cs.op, cs.shape, e.what());
    }
  }
  R1_CUDA_CHECK(cudaFree(ws));
  cublasLtDestroy(lt);
  return 0;
}
#endif

}  // namespace
}  // namespace r1kit::bench

int main(int argc, char** argv) {
  r1kit::bench::Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      opt.quick = true;
    } else if (a == "--reps" && i + 1 < argc) {
      opt.reps = std::max(3, std::atoi(argv[++i]));
    } else if (a == "--filter" && i + 1 < argc) {
      opt.filter = argv[++i];
    } else {
      std::fprintf(stderr, "usage: gemm_bench [--quick] [--reps N] [--filter OP]\n");
      return 2;
    }
  }
#if defined(R1KIT_WITH_CUDA)
  if (!r1kit::cuda_available()) {
    std::printf("{\"skipped\":\"gemm_bench: no GPU (%s)\"}\n", r1kit::cuda_describe().c_str());
    return 0;
  }
  try {
    return r1kit::bench::run(opt);
  } catch (const r1kit::Error& e) {
    std::fprintf(stderr, "gemm_bench: %s\n", e.what());
    return 1;
  }
#else
  (void)opt;
  std::printf("{\"skipped\":\"gemm_bench: built without CUDA\"}\n");
  return 0;
#endif
}
