// GPU vs CPU for next-token sampling: the GPU must draw the CPU's token exactly (same kept prefix,
// same Philox Gumbel noise) for many rows, seeds and counters, under greedy, temperature, top-k,
// top-p and min-p and their combinations, with ties and −inf masks, f32 / bf16 / f16 / f64
// logits, up to a 152064-token vocabulary; and the same log-probs to rounding. Also the cut's
// slow paths (a bucket too large to sort: re-bucketing, and tie runs cut by id), more rows than
// one pipeline pass, and the device-side reports of NaN / +inf logits, masked rows and bad
// counters.
#include "kernels/sampling.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gpu_ctx;

std::string describe(const SamplingParams& p) {
  return fmt::format("tau {} top_k {} top_p {} min_p {}", p.temperature, p.top_k, p.top_p, p.min_p);
}

SamplingParams params(double tau, int64_t top_k, double top_p, double min_p) {
  SamplingParams p;
  p.temperature = tau;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  return p;
}

// Per-row (stream, position) counters spread over the whole range (streams above 2^32 too).
Tensor counters(int64_t rows, std::mt19937_64& rng) {
  Tensor c = cpu_ctx().empty({rows, 2}, DType::i64, "rng_counters");
  std::uniform_int_distribution<int64_t> stream(0, int64_t{1} << 40);
  std::uniform_int_distribution<int64_t> position(0, UINT32_MAX);
  for (int64_t r = 0; r < rows; ++r) {
    c.ptr<int64_t>()[2 * r] = stream(rng);
    c.ptr<int64_t>()[2 * r + 1] = position(rng);
  }
  return c;
}

// Samples on both backends and compares: tokens exactly, log-probs to rounding.
void expect_sampling_matches(const Tensor& logits, const Tensor& cnt, const SamplingParams& sp,
                             uint64_t seed, DType lp_dtype, const std::string& what) {
  SCOPED_TRACE(what + " " + describe(sp) + fmt::format(" seed {}", seed));
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  Tensor tok_ref = cpu.empty({rows}, DType::i32, "tokens");
  Tensor lp_ref = cpu.empty({rows}, lp_dtype, "token_logprob");
  sample_forward(tok_ref, lp_ref, logits, cnt, sp, seed, cpu);
  Tensor tok = testing::poisoned({rows}, DType::i32, "tokens");
  Tensor lp = testing::poisoned({rows}, lp_dtype, "token_logprob");
  sample_forward(tok, lp, testing::to_device(logits), testing::to_device(cnt), sp, seed, gpu);
  testing::expect_equal(tok, tok_ref, "tokens");
  const DType acc = lp_dtype == DType::f64 ? DType::f64 : DType::f32;
  testing::expect_close(lp, lp_ref, testing::tolerance(lp_dtype, vocab, acc), "token_logprob");
}

// Logits: continuous, or on a coarse grid (ties), with a fraction of −inf masks.
Tensor make_logits(int64_t rows, int64_t vocab, DType dt, bool ties, double masked,
                   std::mt19937_64& rng, double scale = 4) {
  std::uniform_real_distribution<double> u(-scale, scale), m(0, 1);
  std::vector<double> v(static_cast<size_t>(rows * vocab));
  for (double& x : v) {
    x = u(rng);
    if (ties) x = std::round(x * 2) / 2;
    if (m(rng) < masked) x = -INFINITY;
  }
  // Every row keeps at least one finite token.
  for (int64_t r = 0; r < rows; ++r)
    if (v[static_cast<size_t>(r * vocab + r % vocab)] == -INFINITY)
      v[static_cast<size_t>(r * vocab + r % vocab)] = 0;
  return testing::tensor_from(cpu_ctx(), {rows, vocab}, dt, v, "logits");
}

const SamplingParams kParamSets[] = {
    params(0, 0, 1, 0),                                    // greedy
    params(0, 5, 0.5, 0.1),                                // greedy ignores the filters
    params(1, 0, 1, 0),                                    // plain temperature 1
    params(0.7, 0, 1, 0),                                  // temperature
    params(1, 50, 1, 0),                                   // top-k
    params(1.3, 1, 1, 0),                                  // top-1
    params(1, 0, 0.9, 0),                                  // top-p
    params(0.8, 0, 1e-9, 0),                               // top-p keeping one token
    params(1, 0, 1, 0.05),                                 // min-p
    params(1, 0, 1, 1),                                    // min-p = 1: the max only
    params(0.9, 200, 0.8, 0),                              // top-k then top-p
    params(1.1, 40, 0.95, 0.02), params(2, 999, 0.99, 0),  // top-k just below V
};

TEST(GpuSample, TokensMatchCpuForEveryFilterDtypeAndMask) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64}) {
    for (bool ties : {false, true}) {
      for (double masked : {0.0, 0.3}) {
        Tensor logits = make_logits(67, 1000, dt, ties, masked, rng);
        Tensor cnt = counters(67, rng);
        for (const SamplingParams& sp : kParamSets)
          for (uint64_t seed : {uint64_t{7}, uint64_t{0x123456789abcdefull}})
            expect_sampling_matches(
                logits, cnt, sp, seed, dt == DType::f64 ? DType::f64 : DType::f32,
                fmt::format("{} ties {} masked {}", dtype_name(dt), ties, masked));
      }
    }
  }
}

TEST(GpuSample, LargeVocabularyMatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  // Qwen2's vocabulary; bf16 and f32, flat and peaked rows.
  for (DType dt : {DType::bf16, DType::f32}) {
    for (double scale : {5.0, 30.0}) {
      Tensor logits = make_logits(6, 152064, dt, false, 0.01, rng, scale);
      Tensor cnt = counters(6, rng);
      for (const SamplingParams& sp :
           {params(1, 0, 0.95, 0), params(1, 50, 1, 0), params(0.6, 0, 1, 0), params(0, 0, 1, 0),
            params(1, 20000, 0.9, 0.01)})
        expect_sampling_matches(logits, cnt, sp, 99, DType::f32,
                                fmt::format("{} scale {}", dtype_name(dt), scale));
    }
  }
}

TEST(GpuSample, CutInsideLargeBucketsAndTieRuns) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  auto& cpu = cpu_ctx();
  const int64_t vocab = 30011;
  std::uniform_real_distribution<double> u(0, 1);
  // Row 0: all equal (one tie run of V tokens). Row 1: a dense cluster of distinct values in
  // [0, 1e-3) and one outlier at 1000 (the cluster fills one bucket, so it is re-bucketed).
  // Row 2: two tie runs of 15000 with a few distinct values above.
  std::vector<double> v(static_cast<size_t>(3 * vocab));
  for (int64_t j = 0; j < vocab; ++j) {
    v[static_cast<size_t>(j)] = 0.5;
    v[static_cast<size_t>(vocab + j)] = j == 17 ? 1000 : 1e-3 * u(rng);
    v[static_cast<size_t>(2 * vocab + j)] = j < 11 ? 3 + j : (j % 2 ? 1.0 : -1.0);
  }
  Tensor cnt = counters(3, rng);
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor logits = testing::tensor_from(cpu, {3, vocab}, dt, v, "logits");
    for (const SamplingParams& sp :
         {params(1, 10000, 1, 0), params(1, 0, 0.4, 0), params(1000, 0, 0.5, 0),
          params(1000, 12345, 0.7, 0), params(1, 20000, 0.6, 0), params(3, 15005, 1, 0),
          params(1000, 25000, 0.999, 0)})
      expect_sampling_matches(logits, cnt, sp, 5, DType::f32, std::string(dtype_name(dt)));
  }
}

TEST(GpuSample, ManyRowsSpanSeveralPasses) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(4);
  Tensor logits = make_logits(1201, 97, DType::f32, true, 0.2, rng);
  Tensor cnt = counters(1201, rng);
  expect_sampling_matches(logits, cnt, params(1, 10, 0.9, 0), 3, DType::f32, "1201 rows");
  expect_sampling_matches(logits, cnt, params(0, 0, 1, 0), 3, DType::f64, "1201 rows greedy");
}

TEST(GpuSample, ReportsBadLogitsAndCounters) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  auto& gpu = gpu_ctx();
  auto run = [&](const Tensor& logits, const Tensor& cnt, const SamplingParams& sp) {
    Tensor tok = testing::poisoned({logits.size(0)}, DType::i32, "tokens");
    Tensor lp = testing::poisoned({logits.size(0)}, DType::f32, "token_logprob");
    sample_forward(tok, lp, testing::to_device(logits), testing::to_device(cnt), sp, 1, gpu);
  };
  for (const SamplingParams& sp : {params(1, 3, 0.9, 0), params(0, 0, 1, 0)}) {
    Tensor cnt = counters(4, rng);
    Tensor logits = make_logits(4, 50, DType::f32, false, 0, rng);
    logits.ptr<float>()[2 * 50 + 5] = NAN;
    run(logits, cnt, sp);
    testing::expect_error_contains([&] { gpu.synchronize(); },
                                   {"[sample]", "row 2 token 5 is nan", "finite logits"});
    logits.ptr<float>()[2 * 50 + 5] = INFINITY;
    run(logits, cnt, sp);
    testing::expect_error_contains([&] { gpu.synchronize(); },
                                   {"[sample]", "row 2 token 5 is inf"});
    logits.ptr<float>()[2 * 50 + 5] = 0;
    for (int64_t j = 0; j < 50; ++j) logits.ptr<float>()[50 + j] = -INFINITY;
    run(logits, cnt, sp);
    testing::expect_error_contains([&] { gpu.synchronize(); },
                                   {"[sample]", "row 1 has no finite entry"});
    Tensor good = make_logits(4, 50, DType::f32, false, 0, rng);
    cnt.ptr<int64_t>()[2 * 3] = -1;
    run(good, cnt, sp);
    testing::expect_error_contains([&] { gpu.synchronize(); },
                                   {"[sample]", "rng_counters", "row 3 has stream -1"});
    cnt.ptr<int64_t>()[2 * 3] = 0;
    cnt.ptr<int64_t>()[2 * 0 + 1] = int64_t{1} << 32;
    run(good, cnt, sp);
    testing::expect_error_contains([&] { gpu.synchronize(); },
                                   {"[sample]", "row 0 has position 4294967296", "[0, 2^32)"});
  }
}

TEST(GpuSample, EmptyBatchLaunchesNothing) {
  R1_REQUIRE_GPU();
  auto& gpu = gpu_ctx();
  Tensor logits = gpu.empty({0, 100}, DType::f32, "logits");
  Tensor cnt = gpu.empty({0, 2}, DType::i64, "rng_counters");
  Tensor tok = gpu.empty({0}, DType::i32, "tokens");
  Tensor lp = gpu.empty({0}, DType::f32, "token_logprob");
  for (const SamplingParams& sp : {params(1, 10, 0.9, 0.1), params(0, 0, 1, 0)})
    sample_forward(tok, lp, logits, cnt, sp, 1, gpu);
  gpu.synchronize();
}

}  // namespace
}  // namespace r1kit::kernels
