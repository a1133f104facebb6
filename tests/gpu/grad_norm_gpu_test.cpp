// GPU vs CPU for the global gradient norm (mixed dtypes, many small tensors across launch batches,
// an unaligned view, one large flat buffer), its run-to-run determinism, the scaling primitive
// (bit-identical to the CPU), clip_grad_norm end to end, and non-finite gradients (the norm is
// returned as is and every gradient is left untouched, kernels/grad_norm.h).
#include "kernels/grad_norm.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gpu_ctx;

// The same gradients on the host and on the device.
struct Grads {
  std::vector<Tensor> host, dev_bufs;
  std::vector<TensorView> dev;
  std::vector<TensorView> host_views() const {
    std::vector<TensorView> v;
    for (const auto& t : host) v.push_back(t.view());
    return v;
  }
  int64_t count() const {
    int64_t n = 0;
    for (const auto& t : host) n += t.numel();
    return n;
  }
  // Adds a host tensor and its device copy, `offset` elements into a larger device buffer.
  void add(Tensor h, int64_t offset = 0) {
    auto& gpu = gpu_ctx();
    const DType dt = h.view().dtype;
    dev_bufs.push_back(gpu.empty({h.numel() + offset}, dt, h.view().name));
    char* base =
        static_cast<char*>(dev_bufs.back().data()) + offset * static_cast<int64_t>(dtype_size(dt));
    TensorView d(base, dt, dev_bufs.back().view().device, h.view().dims(), h.view().name);
    gpu.copy(d, h);
    dev.push_back(d);
    host.push_back(std::move(h));
  }
};

// Mixed dtypes and odd shapes: tiny tensors, an empty one, one unaligned view, one spanning many
// 16384-element chunks, and enough tensors (> 112) to need several launches.
Grads mixed_grads(std::mt19937_64& rng, int64_t big = 300007) {
  auto& cpu = cpu_ctx();
  Grads g;
  g.add(testing::random_tensor(cpu, {5, 7}, DType::f32, rng, -1, 1, "a.grad"));
  g.add(testing::random_tensor(cpu, {13}, DType::f64, rng, -3, 3, "b.grad"));
  g.add(testing::random_tensor(cpu, {3, 3, 3}, DType::bf16, rng, -1, 1, "c.grad"));
  g.add(testing::random_tensor(cpu, {17}, DType::f16, rng, -1, 1, "d.grad"));
  g.add(cpu.empty({0, 4}, DType::f32, "e.grad"));
  g.add(testing::random_tensor(cpu, {37, 1001}, DType::bf16, rng, -0.5, 0.5, "f.grad"), 1);
  g.add(testing::random_tensor(cpu, {big}, DType::f32, rng, -0.1, 0.1, "flat.grad"));
  const DType cycle[] = {DType::f32, DType::bf16, DType::f16, DType::f64};
  for (int i = 0; i < 150; ++i)
    g.add(testing::random_tensor(cpu, {1 + (i * 37) % 301}, cycle[i % 4], rng, -1, 1,
                                 fmt::format("small{}.grad", i)));
  return g;
}

// |gpu − cpu| / cpu within the tolerance of a double sum of `count` terms.
void expect_norm_close(double gpu, double cpu, int64_t count, const std::string& what) {
  const double tol = testing::tolerance(DType::f64, count, DType::f64);
  EXPECT_GT(cpu, 0.0) << what;
  EXPECT_LT(std::abs(gpu - cpu) / cpu, tol) << what << ": gpu " << gpu << " cpu " << cpu;
}

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

TEST(GpuGradNorm, GlobalNormMatchesCpuAndIsDeterministic) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(41);
  Grads g = mixed_grads(rng);
  const double want = grad_global_norm(g.host_views(), cpu_ctx());
  const double got = grad_global_norm(g.dev, gpu_ctx());
  expect_norm_close(got, want, g.count(), "grad_global_norm");
  EXPECT_TRUE(same_bits(grad_global_norm(g.dev, gpu_ctx()), got)) << "second run differs";
  // The single-tensor overload and the empty list.
  expect_norm_close(grad_global_norm(g.dev[6], gpu_ctx()),
                    grad_global_norm(g.host[6].view(), cpu_ctx()), g.host[6].numel(), "one");
  EXPECT_EQ(grad_global_norm(std::vector<TensorView>{}, gpu_ctx()), 0.0);
  EXPECT_EQ(grad_global_norm(std::vector<TensorView>{g.dev[4]}, gpu_ctx()), 0.0);
}

TEST(GpuGradNorm, SumOfSquaresOverLargeFlatBuffer) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(42);
  auto& cpu = cpu_ctx();
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    Grads g;
    g.add(testing::random_tensor(cpu, {(int64_t{1} << 24) + 5}, dt, rng, -1, 1, "flat"));
    const double want = cpu::grad_sum_squares(g.host_views(), cpu);
    const double got = cuda::grad_sum_squares(g.dev, gpu_ctx());
    expect_norm_close(got, want, g.count(), "grad_sum_squares");
    EXPECT_TRUE(same_bits(cuda::grad_sum_squares(g.dev, gpu_ctx()), got)) << "second run differs";
  }
}

TEST(GpuGradNorm, ScaleIsBitIdenticalToCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(43);
  Grads g = mixed_grads(rng);
  const double coef = 0.3719;
  cpu::grad_scale(g.host_views(), coef, cpu_ctx());
  cuda::grad_scale(g.dev, coef, gpu_ctx());
  for (size_t t = 0; t < g.host.size(); ++t)
    testing::expect_equal(g.dev[t], g.host[t], g.host[t].view().describe());
}

TEST(GpuGradNorm, ClipGradNormEndToEnd) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(44);
  Grads g = mixed_grads(rng);
  const double norm = grad_global_norm(g.host_views(), cpu_ctx());
  const double max_norm = norm / 3;
  const double want = clip_grad_norm(g.host_views(), max_norm, cpu_ctx());
  const double got = clip_grad_norm(g.dev, max_norm, gpu_ctx());
  expect_norm_close(got, want, g.count(), "clip_grad_norm's pre-clip norm");
  // The two coefficients differ by the norms' difference (relative, within the norm tolerance);
  // on top of that each element is rounded once to its dtype.
  const double norm_tol = testing::tolerance(DType::f64, g.count(), DType::f64);
  for (size_t t = 0; t < g.host.size(); ++t) {
    const DType dt = g.host[t].view().dtype;
    const double tol =
        testing::tolerance(dt, 1, dt == DType::f64 ? DType::f64 : DType::f32) + norm_tol;
    testing::expect_close(g.dev[t], g.host[t], tol, g.host[t].view().describe());
  }
  // The clipped norm is max_norm (to the rounding of each element to its dtype, bf16 the
  // coarsest), and far below 2·max_norm: clipping to that changes nothing.
  std::vector<std::vector<double>> before;
  for (const auto& d : g.dev) before.push_back(testing::to_double(testing::to_host(d)));
  const double clipped = clip_grad_norm(g.dev, 2 * max_norm, gpu_ctx());
  EXPECT_NEAR(clipped, max_norm, max_norm * testing::tolerance(DType::bf16, 1));
  for (size_t t = 0; t < g.dev.size(); ++t)
    EXPECT_EQ(testing::to_double(testing::to_host(g.dev[t])), before[t]) << t;
}

TEST(GpuGradNorm, NonFiniteGradientLeavesGradsUntouched) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(45);
  for (double poison : {double{NAN}, double{INFINITY}, -double{INFINITY}}) {
    SCOPED_TRACE(fmt::format("poison {}", poison));
    Grads g = mixed_grads(rng, 40000);
    // One element of the big f32 gradient, on both sides.
    g.host[6].ptr<float>()[12345] = static_cast<float>(poison);
    gpu_ctx().copy(g.dev[6], g.host[6]);
    EXPECT_EQ(std::isnan(grad_global_norm(g.dev, gpu_ctx())), std::isnan(poison));
    const double norm = clip_grad_norm(g.dev, 1e-3, gpu_ctx());
    EXPECT_FALSE(std::isfinite(norm));
    EXPECT_EQ(std::isnan(norm), std::isnan(poison)) << norm;  // ±inf gives +inf
    if (!std::isnan(poison)) {
      EXPECT_GT(norm, 0.0);
    }
    for (size_t t = 0; t < g.dev.size(); ++t) {
      const auto after = testing::to_double(testing::to_host(g.dev[t]));
      const auto orig = testing::to_double(g.host[t]);
      ASSERT_EQ(after.size(), orig.size());
      for (size_t i = 0; i < after.size(); ++i)
        ASSERT_TRUE(after[i] == orig[i] || (std::isnan(after[i]) && std::isnan(orig[i])))
            << t << " " << i;
    }
  }
}

}  // namespace
}  // namespace r1kit::kernels
