// GPU vs CPU for MoE routing (every top-k method × scoring × masked fill, ties, E = 64 / 256, K = 1
// / 6 / 8, odd N, f32 / bf16 / f16 / f64 logits: topk_idx exactly, weights and scores to rounding),
// its backward, the expert counts, the stable permutation (perm_index, expert_offsets and the row
// copy exactly, several chunks, every word width) and the permutation backward / unpermute /
// unpermute backward (to rounding, same and mixed dtypes, packed and element paths), and the
// device-side reports of bad expert ids and of a perm_index that is not a permutation.
#include "kernels/moe.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gpu_ctx;

// The accumulator dtype the tolerance assumes: f64 for f64 data, f32 otherwise.
DType acc_of(DType t) {
  return t == DType::f64 ? DType::f64 : DType::f32;
}

struct Routed {
  Tensor idx, weight, scores;
};

Routed route(Context& ctx, const TensorView& logits, const TensorView& bias, const MoeRouting& cfg,
             DType out, bool poison) {
  const int64_t n = logits.shape[0];
  const Shape ik{n, cfg.num_experts_per_tok}, ie{n, cfg.n_routed_experts};
  Routed r;
  if (poison) {
    r = {testing::poisoned(ik, DType::i32, "topk_idx"), testing::poisoned(ik, out, "topk_weight"),
         testing::poisoned(ie, out, "scores")};
  } else {
    r = {ctx.empty(ik, DType::i32, "topk_idx"), ctx.empty(ik, out, "topk_weight"),
         ctx.empty(ie, out, "scores")};
  }
  moe_route_forward(r.idx, r.weight, r.scores, logits, bias, cfg, ctx);
  return r;
}

// Routes the same logits on both backends and compares: indices exactly, scores and weights to
// the rounding of the dtype.
void expect_route_matches(const Tensor& logits, const Tensor* bias, const MoeRouting& cfg,
                          const std::string& what) {
  SCOPED_TRACE(what);
  const DType out = logits.dtype() == DType::f64 ? DType::f64 : DType::f32;
  Routed ref = route(cpu_ctx(), logits, bias ? bias->view() : TensorView(), cfg, out, false);
  Tensor logits_d = testing::to_device(logits);
  Tensor bias_d = bias ? testing::to_device(*bias) : Tensor();
  Routed got = route(gpu_ctx(), logits_d, bias ? bias_d.view() : TensorView(), cfg, out, true);
  testing::expect_equal(got.idx, ref.idx, "topk_idx");
  testing::expect_close(got.scores, ref.scores, testing::tolerance(out, cfg.n_routed_experts, out),
                        "scores");
  testing::expect_close(got.weight, ref.weight,
                        testing::tolerance(out, cfg.num_experts_per_tok, out), "topk_weight");
}

MoeRouting config(int64_t e, int64_t k, MoeScoring scoring, MoeTopkMethod method, int64_t groups,
                  int64_t topk_group, MoeGroupMaskFill fill, bool renorm) {
  MoeRouting c;
  c.n_routed_experts = e;
  c.num_experts_per_tok = k;
  c.scoring = scoring;
  c.topk_method = method;
  c.n_group = groups;
  c.topk_group = topk_group;
  c.masked_fill = fill;
  c.norm_topk_prob = renorm;
  c.routed_scaling_factor = 2.5;
  return c;
}

// Logits on a coarse grid (many exact ties in scores, choices and group scores) or continuous.
Tensor router_logits(int64_t n, int64_t e, DType dt, bool ties, std::mt19937_64& rng) {
  auto& cpu = cpu_ctx();
  if (!ties) return testing::random_tensor(cpu, {n, e}, dt, rng, -4, 4, "router_logits");
  std::uniform_int_distribution<int> q(-4, 4);
  std::vector<double> v(static_cast<size_t>(n * e));
  for (double& x : v) x = 0.5 * q(rng);
  return testing::tensor_from(cpu, {n, e}, dt, v, "router_logits");
}

TEST(GpuMoeRoute, EveryMethodScoringAndFillMatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  auto& cpu = cpu_ctx();
  struct Size {
    int64_t n, e, k, groups, topk_group;
  };
  // DeepSeek-V3-like (256 experts, 8 groups, top-4 groups, K = 8) and a smaller odd case.
  for (const Size s : {Size{1001, 256, 8, 8, 4}, Size{37, 64, 6, 8, 3}}) {
    for (MoeTopkMethod method :
         {MoeTopkMethod::greedy, MoeTopkMethod::group_limited_greedy, MoeTopkMethod::noaux_tc}) {
      for (MoeScoring scoring : {MoeScoring::softmax, MoeScoring::sigmoid}) {
        for (MoeGroupMaskFill fill : {MoeGroupMaskFill::zero, MoeGroupMaskFill::neg_inf}) {
          for (bool ties : {false, true}) {
            const MoeRouting cfg =
                config(s.e, s.k, scoring, method, s.groups, s.topk_group, fill, !ties);
            const std::string what = fmt::format(
                "E {} K {} {} {} fill {} ties {}", s.e, s.k, moe_topk_method_name(method),
                moe_scoring_name(scoring), fill == MoeGroupMaskFill::zero ? "0" : "-inf", ties);
            Tensor logits = router_logits(s.n, s.e, DType::f32, ties, rng);
            // A bias around −s (negative choices) makes the masked fill matter.
            Tensor bias = testing::random_tensor(cpu, {s.e}, DType::f32, rng, -0.6, 0.1, "bias");
            expect_route_matches(logits, &bias, cfg, what + " bias");
            expect_route_matches(logits, nullptr, cfg, what + " no bias");
          }
        }
      }
    }
  }
}

TEST(GpuMoeRoute, LogitDtypesAndTopOneMatchCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  auto& cpu = cpu_ctx();
  for (DType dt : {DType::bf16, DType::f16, DType::f64}) {
    for (int64_t k : {1, 6}) {
      const MoeRouting cfg = config(64, k, MoeScoring::sigmoid, MoeTopkMethod::noaux_tc, 8, 4,
                                    MoeGroupMaskFill::neg_inf, true);
      Tensor logits = router_logits(333, 64, dt, false, rng);
      Tensor bias = testing::random_tensor(cpu, {64}, dt, rng, -0.1, 0.1, "bias");
      expect_route_matches(logits, &bias, cfg, fmt::format("{} K {}", dtype_name(dt), k));
      const MoeRouting soft = config(64, k, MoeScoring::softmax, MoeTopkMethod::greedy, 1, 1,
                                     MoeGroupMaskFill::zero, true);
      expect_route_matches(router_logits(333, 64, dt, true, rng), nullptr, soft,
                           fmt::format("{} K {} softmax ties", dtype_name(dt), k));
    }
  }
}

TEST(GpuMoeRoute, AllEqualChoicesPickTheLowestIndices) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  // Every logit equal and bias −1: every choice is s − 1 < 0, so with fill 0 the masked experts
  // (0) outrank the kept ones and the lowest masked indices win; with −inf the kept ones win.
  for (MoeGroupMaskFill fill : {MoeGroupMaskFill::zero, MoeGroupMaskFill::neg_inf}) {
    const MoeRouting cfg =
        config(64, 8, MoeScoring::sigmoid, MoeTopkMethod::noaux_tc, 8, 3, fill, true);
    Tensor logits = testing::tensor_from(cpu, {5, 64}, DType::f32, std::vector<double>(320, 0.25),
                                         "router_logits");
    Tensor bias = testing::tensor_from(cpu, {64}, DType::f32, std::vector<double>(64, -1), "bias");
    expect_route_matches(logits, &bias, cfg, "all equal");
  }
}

// Sizes the warp-per-token kernels must walk in strides: E not a multiple of 32 with K > 32 (the
// slot loops take two passes), more groups than lanes (40 groups of 2), and K = E (every expert).
TEST(GpuMoeRoute, OddSizesMatchCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(11);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  struct Size {
    int64_t n, e, k, groups, topk_group;
  };
  for (const Size s : {Size{77, 100, 34, 4, 2}, Size{53, 80, 6, 40, 20}, Size{41, 40, 40, 5, 5}}) {
    for (MoeTopkMethod method :
         {MoeTopkMethod::greedy, MoeTopkMethod::group_limited_greedy, MoeTopkMethod::noaux_tc}) {
      for (MoeScoring scoring : {MoeScoring::softmax, MoeScoring::sigmoid}) {
        for (bool ties : {false, true}) {
          const MoeGroupMaskFill fill = ties ? MoeGroupMaskFill::zero : MoeGroupMaskFill::neg_inf;
          const MoeRouting cfg =
              config(s.e, s.k, scoring, method, s.groups, s.topk_group, fill, !ties);
          const std::string what =
              fmt::format("E {} K {} groups {} {} {} ties {}", s.e, s.k, s.groups,
                          moe_topk_method_name(method), moe_scoring_name(scoring), ties);
          Tensor logits = router_logits(s.n, s.e, DType::f32, ties, rng);
          Tensor bias = testing::random_tensor(cpu, {s.e}, DType::f32, rng, -0.6, 0.1, "bias");
          expect_route_matches(logits, &bias, cfg, what + " bias");
          expect_route_matches(logits, nullptr, cfg, what + " no bias");
        }
      }
    }
  }
  // The backward with K = 34 > 32 slots per token.
  for (MoeScoring scoring : {MoeScoring::softmax, MoeScoring::sigmoid}) {
    for (bool renorm : {false, true}) {
      SCOPED_TRACE(
          fmt::format("backward E 100 K 34 {} renorm {}", moe_scoring_name(scoring), renorm));
      const MoeRouting cfg =
          config(100, 34, scoring, MoeTopkMethod::greedy, 1, 1, MoeGroupMaskFill::zero, renorm);
      Tensor logits = router_logits(77, 100, DType::f32, false, rng);
      Routed r = route(cpu, logits, TensorView(), cfg, DType::f32, false);
      Tensor dw = testing::random_tensor(cpu, {77, 34}, DType::f32, rng, -1, 1, "dtopk_weight");
      Tensor ref = cpu.empty({77, 100}, DType::f32, "dlogits");
      moe_route_backward(ref, dw, r.idx, r.scores, cfg, cpu);
      Tensor got = testing::poisoned({77, 100}, DType::f32, "dlogits");
      moe_route_backward(got, testing::to_device(dw), testing::to_device(r.idx),
                         testing::to_device(r.scores), cfg, gpu);
      testing::expect_close(got, ref, testing::tolerance(DType::f32, 34), "dlogits");
    }
  }
}

TEST(GpuMoeRoute, BackwardMatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    for (MoeScoring scoring : {MoeScoring::softmax, MoeScoring::sigmoid}) {
      for (bool renorm : {false, true}) {
        for (int64_t k : {1, 8}) {
          SCOPED_TRACE(fmt::format("{} {} renorm {} K {}", dtype_name(dt),
                                   moe_scoring_name(scoring), renorm, k));
          const MoeRouting cfg = config(256, k, scoring, MoeTopkMethod::noaux_tc, 8, 4,
                                        MoeGroupMaskFill::zero, renorm);
          const int64_t n = 517;
          const DType st = dt == DType::f64 ? DType::f64 : DType::f32;
          Tensor logits = router_logits(n, 256, dt, false, rng);
          Routed r = route(cpu, logits, TensorView(), cfg, st, false);
          Tensor dw = testing::random_tensor(cpu, {n, k}, dt, rng, -1, 1, "dtopk_weight");
          Tensor ref = cpu.empty({n, 256}, dt, "dlogits");
          moe_route_backward(ref, dw, r.idx, r.scores, cfg, cpu);
          Tensor got = testing::poisoned({n, 256}, dt, "dlogits");
          moe_route_backward(got, testing::to_device(dw), testing::to_device(r.idx),
                             testing::to_device(r.scores), cfg, gpu);
          testing::expect_close(got, ref, testing::tolerance(dt, k, acc_of(dt)), "dlogits");
        }
      }
    }
  }
  // Arbitrary (repeated) ids are summed like the CPU sums them.
  const MoeRouting cfg =
      config(64, 6, MoeScoring::softmax, MoeTopkMethod::greedy, 1, 1, MoeGroupMaskFill::zero, true);
  Tensor ids = testing::random_ints(cpu, {99, 6}, rng, 0, 7);
  Tensor scores = testing::random_tensor(cpu, {99, 64}, DType::f32, rng, 0, 0.1, "scores");
  Tensor dw = testing::random_tensor(cpu, {99, 6}, DType::f32, rng, -1, 1, "dtopk_weight");
  Tensor ref = cpu.empty({99, 64}, DType::f32, "dlogits");
  moe_route_backward(ref, dw, ids, scores, cfg, cpu);
  Tensor got = testing::poisoned({99, 64}, DType::f32, "dlogits");
  moe_route_backward(got, testing::to_device(dw), testing::to_device(ids),
                     testing::to_device(scores), cfg, gpu);
  testing::expect_close(got, ref, testing::tolerance(DType::f32, 6), "dlogits, repeated ids");
}

TEST(GpuMoeRoute, BackwardReportsBadExpertIds) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(4);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const MoeRouting cfg = config(64, 6, MoeScoring::sigmoid, MoeTopkMethod::greedy, 1, 1,
                                MoeGroupMaskFill::zero, false);
  Tensor ids = testing::random_ints(cpu, {9, 6}, rng, 0, 63);
  ids.ptr<int32_t>()[3 * 6 + 1] = 99;
  Tensor scores = testing::random_tensor(cpu, {9, 64}, DType::f32, rng, 0, 1, "scores");
  Tensor dw = testing::random_tensor(cpu, {9, 6}, DType::f32, rng, -1, 1, "dtopk_weight");
  Tensor got = testing::poisoned({9, 64}, DType::f32, "dlogits");
  moe_route_backward(got, testing::to_device(dw), testing::to_device(ids),
                     testing::to_device(scores), cfg, gpu);
  testing::expect_error_contains(
      [&] { gpu.synchronize(); },
      {"[moe_route_backward]", "entry [3, 1] is expert 99", "outside [0, 64)"});
}

TEST(GpuMoeExpertCounts, MatchCpuAndReportBadIds) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  for (DType ct : {DType::i32, DType::i64}) {
    for (int hi : {63, 0}) {  // spread, and every entry on expert 0 (one contended counter)
      Tensor ids = testing::random_ints(cpu, {1001, 6}, rng, 0, hi);
      Tensor ref = cpu.empty({64}, ct, "counts");
      moe_expert_counts(ref, ids, cpu);
      Tensor got = testing::poisoned({64}, ct, "counts");
      moe_expert_counts(got, testing::to_device(ids), gpu);
      testing::expect_equal(got, ref, fmt::format("counts {} hi {}", dtype_name(ct), hi));
    }
  }
  Tensor ids = testing::random_ints(cpu, {10, 4}, rng, 0, 63);
  ids.ptr<int32_t>()[7 * 4 + 2] = 64;
  Tensor got = testing::poisoned({64}, DType::i32, "counts");
  moe_expert_counts(got, testing::to_device(ids), gpu);
  testing::expect_error_contains(
      [&] { gpu.synchronize(); },
      {"[moe_expert_counts]", "entry [7, 2] is expert 64", "outside [0, 64)"});
}

struct Permuted {
  Tensor x_perm, perm, offsets;
};

Permuted permute(Context& ctx, const TensorView& x, const TensorView& ids, int64_t e, bool poison) {
  const int64_t m = ids.numel();
  const Shape xs{m, x.shape[1]};
  Permuted p;
  if (poison) {
    p = {testing::poisoned(xs, x.dtype, "x_perm"), testing::poisoned({m}, DType::i32, "perm"),
         testing::poisoned({e + 1}, DType::i32, "offsets")};
  } else {
    p = {ctx.empty(xs, x.dtype, "x_perm"), ctx.empty({m}, DType::i32, "perm"),
         ctx.empty({e + 1}, DType::i32, "offsets")};
  }
  moe_permute(p.x_perm, p.perm, p.offsets, x, ids, ctx);
  return p;
}

// Random expert ids, or skewed: half the entries on expert 1 (long runs of one expert across
// many chunks).
Tensor expert_ids(int64_t n, int64_t k, int64_t e, bool skewed, std::mt19937_64& rng) {
  Tensor ids = testing::random_ints(cpu_ctx(), {n, k}, rng, 0, static_cast<int>(e - 1));
  if (skewed)
    for (int64_t f = 0; f < ids.numel(); f += 2) ids.ptr<int32_t>()[f] = 1;
  return ids;
}

TEST(GpuMoePermute, StableSortAndRowCopyMatchCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(6);
  auto& cpu = cpu_ctx();
  struct Case {
    int64_t n, k, e, c;
    DType dt;
  };
  // Row bytes: 14336 (16-byte words), 40 (8), 148 (4), 74 (2), 37 (1); one to several hundred
  // chunks of the counting sort. E = 6500 and 9000: the running ranks no longer fit in shared
  // memory (the global-memory path), and the offsets scan takes several 1024-expert passes.
  for (const Case s : {Case{301, 8, 256, 7168, DType::bf16}, Case{1001, 6, 64, 5, DType::f64},
                       Case{37, 1, 64, 37, DType::f32}, Case{4097, 8, 256, 37, DType::bf16},
                       Case{40001, 8, 256, 8, DType::bf16}, Case{999, 6, 64, 37, DType::i8},
                       Case{513, 8, 64, 16, DType::i32}, Case{301, 4, 6500, 3, DType::f32},
                       Case{2000, 8, 9000, 16, DType::bf16}}) {
    for (bool skewed : {false, true}) {
      SCOPED_TRACE(fmt::format("N {} K {} E {} C {} {} skewed {}", s.n, s.k, s.e, s.c,
                               dtype_name(s.dt), skewed));
      Tensor ids = expert_ids(s.n, s.k, s.e, skewed, rng);
      Tensor x = testing::random_tensor(cpu, {s.n, s.c}, s.dt, rng, -100, 100, "x");
      Permuted ref = permute(cpu, x, ids, s.e, false);
      Permuted got = permute(gpu_ctx(), testing::to_device(x), testing::to_device(ids), s.e, true);
      testing::expect_equal(got.offsets, ref.offsets, "expert_offsets");
      testing::expect_equal(got.perm, ref.perm, "perm_index");
      testing::expect_equal(got.x_perm, ref.x_perm, "x_perm");
    }
  }
}

TEST(GpuMoePermute, ReportsBadExpertIds) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(7);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  Tensor ids = expert_ids(20, 4, 64, false, rng);
  ids.ptr<int32_t>()[2 * 4 + 3] = -1;
  Tensor x = testing::random_tensor(cpu, {20, 16}, DType::f32, rng);
  Permuted got = permute(gpu, testing::to_device(x), testing::to_device(ids), 64, true);
  testing::expect_error_contains([&] { gpu.synchronize(); },
                                 {"[moe_permute]", "entry [2, 3] is expert -1", "outside [0, 64)"});
}

// A routed layout on the CPU: ids, perm_index from the CPU permutation, weights.
struct Layout {
  Tensor ids, perm, weight;
};
Layout layout(int64_t n, int64_t k, int64_t e, DType wt, std::mt19937_64& rng) {
  auto& cpu = cpu_ctx();
  Layout l;
  l.ids = expert_ids(n, k, e, false, rng);
  Tensor x = cpu.empty({n, 0}, DType::f32);
  Permuted p = permute(cpu, x, l.ids, e, false);
  l.perm = std::move(p.perm);
  l.weight = testing::random_tensor(cpu, {n, k}, wt, rng, 0, 1, "topk_weight");
  return l;
}

struct RowCase {
  int64_t n, k, c;
  DType out, in;  // the (N, C) tensor and the (N·K, C) tensor
};
// Packed (C a multiple of the pack), element path (C = 37), mixed dtypes.
const RowCase kRowCases[] = {
    {301, 8, 7168, DType::bf16, DType::bf16}, {1001, 6, 37, DType::f32, DType::f32},
    {129, 8, 64, DType::f64, DType::f64},     {77, 1, 128, DType::f16, DType::f16},
    {65, 6, 40, DType::f32, DType::bf16},     {65, 6, 37, DType::bf16, DType::f32}};

TEST(GpuMoePermute, BackwardMatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(8);
  auto& cpu = cpu_ctx();
  for (const RowCase s : kRowCases) {
    SCOPED_TRACE(fmt::format("N {} K {} C {} dx {} dx_perm {}", s.n, s.k, s.c, dtype_name(s.out),
                             dtype_name(s.in)));
    Layout l = layout(s.n, s.k, 64, s.out, rng);
    Tensor dxp = testing::random_tensor(cpu, {s.n * s.k, s.c}, s.in, rng, -1, 1, "dx_perm");
    Tensor ref = cpu.empty({s.n, s.c}, s.out, "dx");
    moe_permute_backward(ref, dxp, l.perm, cpu);
    Tensor got = testing::poisoned({s.n, s.c}, s.out, "dx");
    moe_permute_backward(got, testing::to_device(dxp), testing::to_device(l.perm), gpu_ctx());
    testing::expect_close(got, ref, testing::tolerance(s.out, s.k, acc_of(s.out)), "dx");
  }
}

TEST(GpuMoeUnpermute, ForwardAndBackwardMatchCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(9);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  for (const RowCase s : kRowCases) {
    SCOPED_TRACE(fmt::format("N {} K {} C {} y {} y_perm {}", s.n, s.k, s.c, dtype_name(s.out),
                             dtype_name(s.in)));
    Layout l = layout(s.n, s.k, 64, s.out, rng);
    Tensor yp = testing::random_tensor(cpu, {s.n * s.k, s.c}, s.in, rng, -1, 1, "y_perm");
    Tensor perm_d = testing::to_device(l.perm), w_d = testing::to_device(l.weight);
    Tensor yp_d = testing::to_device(yp);
    // Forward: y = Σ_k w · y_perm[pos].
    Tensor ref = cpu.empty({s.n, s.c}, s.out, "y");
    moe_unpermute(ref, yp, l.perm, l.weight, cpu);
    Tensor got = testing::poisoned({s.n, s.c}, s.out, "y");
    moe_unpermute(got, yp_d, perm_d, w_d, gpu);
    testing::expect_close(got, ref, testing::tolerance(s.out, s.k, acc_of(s.out)), "y");
    // Backward: dy_perm = w · dy (one product per element), dtopk_weight = y_perm · dy (C terms).
    Tensor dy = testing::random_tensor(cpu, {s.n, s.c}, s.out, rng, -1, 1, "dy");
    Tensor dyp_ref = cpu.empty({s.n * s.k, s.c}, s.in, "dy_perm");
    Tensor dw_ref = cpu.empty({s.n, s.k}, s.out, "dtopk_weight");
    moe_unpermute_backward(dyp_ref, dw_ref, dy, yp, l.perm, l.weight, cpu);
    Tensor dyp = testing::poisoned({s.n * s.k, s.c}, s.in, "dy_perm");
    Tensor dw = testing::poisoned({s.n, s.k}, s.out, "dtopk_weight");
    moe_unpermute_backward(dyp, dw, testing::to_device(dy), yp_d, perm_d, w_d, gpu);
    testing::expect_close(dyp, dyp_ref, testing::tolerance(s.in, 1, acc_of(s.in)), "dy_perm");
    testing::expect_close(dw, dw_ref, testing::tolerance(s.out, s.c, acc_of(s.out)),
                          "dtopk_weight");
  }
}

TEST(GpuMoeUnpermute, ReportPermIndexThatIsNotAPermutation) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(10);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const int64_t n = 15, k = 4, c = 8, m = n * k;
  Layout l = layout(n, k, 16, DType::f32, rng);
  Tensor yp_d = testing::to_device(testing::random_tensor(cpu, {m, c}, DType::f32, rng));
  Tensor w_d = testing::to_device(l.weight);
  // Out of range: entry 7 becomes M + 5.
  Tensor bad = testing::tensor_from(cpu, {m}, DType::i32, testing::to_double(l.perm), "perm");
  bad.ptr<int32_t>()[7] = static_cast<int32_t>(m + 5);
  Tensor bad_d = testing::to_device(bad);
  Tensor y = testing::poisoned({n, c}, DType::f32, "y");
  moe_unpermute(y, yp_d, bad_d, w_d, gpu);
  testing::expect_error_contains(
      [&] { gpu.synchronize(); },
      {"[moe_unpermute]", "is not a permutation of [0, 60)", "entry 7 is 65"});
  Tensor dx = testing::poisoned({n, c}, DType::f32, "dx");
  moe_permute_backward(dx, yp_d, bad_d, gpu);
  testing::expect_error_contains([&] { gpu.synchronize(); },
                                 {"[moe_permute_backward]", "entry 7 is 65"});
  // Repeated: entry 9 repeats entry 3's value (which of the two is named may differ).
  bad.ptr<int32_t>()[7] = l.perm.ptr<int32_t>()[7];
  bad.ptr<int32_t>()[9] = l.perm.ptr<int32_t>()[3];
  bad_d = testing::to_device(bad);
  Tensor dyp = testing::poisoned({m, c}, DType::f32, "dy_perm");
  Tensor dw = testing::poisoned({n, k}, DType::f32, "dtopk_weight");
  moe_unpermute_backward(dyp, dw,
                         testing::to_device(testing::random_tensor(cpu, {n, c}, DType::f32, rng)),
                         yp_d, bad_d, w_d, gpu);
  testing::expect_error_contains(
      [&] { gpu.synchronize(); },
      {"[moe_unpermute_backward]", "is not a permutation of [0, 60)", " again"});
}

// N = 0 everywhere launches nothing (and still zeroes counts and expert_offsets); K = 0 slots
// per token makes y and dx zero as on the CPU.
TEST(GpuMoe, EmptyInputsLaunchNothing) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const MoeRouting cfg = config(64, 6, MoeScoring::sigmoid, MoeTopkMethod::noaux_tc, 8, 4,
                                MoeGroupMaskFill::zero, true);
  Tensor logits = gpu.empty({0, 64}, DType::f32, "router_logits");
  Tensor idx = gpu.empty({0, 6}, DType::i32, "topk_idx");
  Tensor w = gpu.empty({0, 6}, DType::f32, "topk_weight");
  Tensor scores = gpu.empty({0, 64}, DType::f32, "scores");
  moe_route_forward(idx, w, scores, logits, TensorView(), cfg, gpu);
  Tensor dlogits = gpu.empty({0, 64}, DType::f32, "dlogits");
  moe_route_backward(dlogits, w, idx, scores, cfg, gpu);
  Tensor counts = testing::poisoned({64}, DType::i64, "counts");
  moe_expert_counts(counts, idx, gpu);
  testing::expect_equal(counts, cpu.zeros({64}, DType::i64), "counts of no tokens");
  Tensor x = gpu.empty({0, 16}, DType::bf16, "x"), x_perm = gpu.empty({0, 16}, DType::bf16);
  Tensor ids = gpu.empty({0, 4}, DType::i32, "topk_idx"), perm = gpu.empty({0}, DType::i32);
  Tensor offsets = testing::poisoned({65}, DType::i32, "expert_offsets");
  moe_permute(x_perm, perm, offsets, x, ids, gpu);
  testing::expect_equal(offsets, cpu.zeros({65}, DType::i32), "expert_offsets of no tokens");
  Tensor dx = gpu.empty({0, 16}, DType::bf16, "dx");
  moe_permute_backward(dx, x_perm, perm, gpu);
  Tensor w4 = gpu.empty({0, 4}, DType::f32, "topk_weight");
  moe_unpermute(dx, x_perm, perm, w4, gpu);
  Tensor dw4 = gpu.empty({0, 4}, DType::f32, "dtopk_weight");
  Tensor dx_perm = gpu.empty({0, 16}, DType::bf16, "dy_perm");
  moe_unpermute_backward(dx_perm, dw4, dx, x_perm, perm, w4, gpu);
  // K = 0: y = Σ over no slots = 0 (the CPU writes zeros too); the backward has nothing to write.
  Tensor y = testing::poisoned({3, 16}, DType::f32, "y");
  Tensor yp0 = gpu.empty({0, 16}, DType::f32, "y_perm"), w0 = gpu.empty({3, 0}, DType::f32);
  moe_unpermute(y, yp0, perm, w0, gpu);
  testing::expect_equal(y, cpu.zeros({3, 16}, DType::f32), "y over zero slots");
  Tensor dyp0 = gpu.empty({0, 16}, DType::f32, "dy_perm"), dw0 = gpu.empty({3, 0}, DType::f32);
  moe_unpermute_backward(dyp0, dw0, y, yp0, perm, w0, gpu);
  gpu.synchronize();
}

}  // namespace
}  // namespace r1kit::kernels
