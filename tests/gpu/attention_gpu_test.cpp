// attention on the GPU vs the CPU reference (the public front-end on both contexts): forward (out,
// lse) and backward (dq, dk, dv) for one sequence and packed odd lengths (with a length-1 and an
// empty sequence), MHA, GQA (6/2), MQA, MLA head dims 192/128, small and odd head dims (40/24,
// 37/19: the masked tails of the 64 bucket, and the scalar loads), the 256 bucket, lengths that are
// whole tiles, q/k/v and dq/dk/dv as column slices of fused buffers (row and head strides;
// misaligned rows for the scalar loads, 16-byte aligned ones for the vector / cp.async loads), f32,
// bf16, f16, f64.
//
// Tolerances (testing::tolerance). bf16/f16 run on tensor cores: the forward rounds P to the
// storage dtype before O += P·V, the backward (head dims up to 192/128) rounds P and dS before
// dV, dK and dQ, so those outputs have internal = that dtype. Everything else (lse, f32 and f64,
// the CUDA-core backward of the 256 bucket) computes in fp32 (f64 for f64) from the stored inputs
// and rounds only the outputs: no internal term. Reduction length: the longest sequence times the
// larger head dim (times the GQA group for dk/dv, which also sum over the group's query heads).
#include "kernels/attention.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tests/gpu/gpu_util.h"
#include "tests/kernels/head_views.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gpu_ctx;
using testing::tolerance;

struct Case {
  std::vector<int32_t> cu;  // packed sequence offsets
  int64_t hq, hkv, dqk, dv;
  DType dtype = DType::f32;
  bool strided = false;  // q/k/v, out, dq/dk/dv as misaligned slices of wider buffers
  bool aligned = false;  // with strided: the slices and row strides 16-byte aligned instead
};

// Column of the first slice and padding of the row of a fused buffer: misaligned slices start at
// an odd column; aligned ones at column 8 with the row padded to a multiple of 8 elements plus 8
// more (16-byte aligned rows and heads for every dtype, a row stride wider than the heads).
int64_t first_col(const Case& cs, int64_t odd) {
  return cs.aligned ? 8 : odd;
}
int64_t fused_width(const Case& cs, int64_t used) {
  return cs.aligned ? (used + 7) / 8 * 8 + 8 : used;
}

Tensor cu_tensor(Context& ctx, const std::vector<int32_t>& cu) {
  std::vector<double> d(cu.begin(), cu.end());
  return testing::tensor_from(ctx, {static_cast<int64_t>(cu.size())}, DType::i32, d, "cu_seqlens");
}

// The same view moved from one storage tensor to another (same offset and strides).
TensorView rebase(const TensorView& v, const Tensor& from, const Tensor& to) {
  TensorView r = v;
  r.data = static_cast<char*>(to.data()) +
           (static_cast<char*>(v.data) - static_cast<char*>(from.data()));
  r.device = to.device();
  return r;
}

// Three (T, H, D) views and the tensors that hold them: separate contiguous tensors, or column
// slices of one fused (T, 1 + Hq·Dq + Hkv·Dq + Hkv·Dv) buffer starting at column 1 (so rows are
// not 16-byte aligned and the kernels take their scalar loads), or with cs.aligned at column 8 of
// a padded row (the 16-byte / cp.async loads with a row stride other than H·D).
struct Triple {
  std::vector<Tensor> store;
  TensorView a, b, c;
};

Triple make_triple(Context& ctx, const Case& cs, int64_t t, int64_t hb, int64_t db, int64_t hc,
                   int64_t dc, std::mt19937_64* rng, const std::string& prefix) {
  const std::string na = prefix + "q", nb = prefix + "k", nc = prefix + "v";
  Triple r;
  auto make = [&](const Shape& s, const std::string& name) {
    if (rng) return testing::random_tensor(ctx, s, cs.dtype, *rng, -1, 1, name);
    if (ctx.is_cuda()) return testing::poisoned(s, cs.dtype, name, ctx);
    Tensor x = ctx.empty(s, cs.dtype, name);
    testing::fill_constant(x, std::nan(""));
    return x;
  };
  if (!cs.strided) {
    r.store.push_back(make({t, cs.hq, cs.dqk}, na));
    r.store.push_back(make({t, hb, db}, nb));
    r.store.push_back(make({t, hc, dc}, nc));
    r.a = r.store[0];
    r.b = r.store[1];
    r.c = r.store[2];
    return r;
  }
  const int64_t c0 = first_col(cs, 1);
  const int64_t width = fused_width(cs, c0 + cs.hq * cs.dqk + hb * db + hc * dc);
  r.store.push_back(make({t, width}, prefix + "fused"));
  const TensorView base = r.store[0];
  r.a = testing::head_view(base, c0, cs.hq, cs.dqk, na);
  r.b = testing::head_view(base, c0 + cs.hq * cs.dqk, hb, db, nb);
  r.c = testing::head_view(base, c0 + cs.hq * cs.dqk + hb * db, hc, dc, nc);
  return r;
}

Triple to_device(const Triple& h) {
  Triple d;
  for (const Tensor& s : h.store) d.store.push_back(testing::to_device(s));
  auto moved = [&](const TensorView& v) {
    for (size_t i = 0; i < h.store.size(); ++i) {
      const char* p = static_cast<const char*>(v.data);
      const char* s = static_cast<const char*>(h.store[i].data());
      if (p >= s && p < s + h.store[i].nbytes()) return rebase(v, h.store[i], d.store[i]);
    }
    ADD_FAILURE() << "view outside its storage";
    return v;
  };
  d.a = moved(h.a);
  d.b = moved(h.b);
  d.c = moved(h.c);
  return d;
}

// A device (T, H, D) view inside `base` as a contiguous host tensor.
Tensor gathered(const TensorView& dev, const Tensor& dev_base) {
  Tensor host = testing::to_host(dev_base);
  const TensorView hv = rebase(dev, dev_base, host);
  return testing::tensor_from(cpu_ctx(), dev.dims(), dev.dtype, testing::gather_heads(hv),
                              dev.name);
}

// Every element of the host copy of a device buffer outside the given views is still NaN (the
// poison): the kernels wrote nothing else.
void expect_only_views_written(const Tensor& dev_base, const std::vector<TensorView>& views,
                               const std::string& what) {
  Tensor host = testing::to_host(dev_base);
  std::vector<bool> inside(static_cast<size_t>(host.numel()), false);
  for (const TensorView& v : views) {
    const int64_t off =
        (static_cast<const char*>(v.data) - static_cast<const char*>(dev_base.data())) /
        static_cast<int64_t>(dtype_size(v.dtype));
    for (int64_t t = 0; t < v.shape[0]; ++t)
      for (int64_t h = 0; h < v.shape[1]; ++h)
        for (int64_t d = 0; d < v.shape[2]; ++d)
          inside[static_cast<size_t>(off + t * v.stride[0] + h * v.stride[1] + d)] = true;
  }
  const std::vector<double> vals = testing::to_double(host);
  for (size_t i = 0; i < vals.size(); ++i)
    if (!inside[i]) {
      ASSERT_TRUE(std::isnan(vals[i])) << what << ": element " << i << " written";
    }
}

int64_t max_len(const std::vector<int32_t>& cu) {
  int64_t m = 1;
  for (size_t b = 0; b + 1 < cu.size(); ++b) m = std::max<int64_t>(m, cu[b + 1] - cu[b]);
  return m;
}

DType acc_of(DType t) {
  return t == DType::f64 ? DType::f64 : DType::f32;
}

// Forward and backward of one case on both contexts; every output compared.
void check_case(const Case& cs, uint64_t seed) {
  Context& cpu = cpu_ctx();
  Context& gpu = gpu_ctx();
  std::mt19937_64 rng(seed);
  const int64_t t = cs.cu.back(), len = max_len(cs.cu), group = cs.hq / cs.hkv;
  const DType ld = acc_of(cs.dtype), acc = acc_of(cs.dtype);
  const double scale = 1.0 / std::sqrt(static_cast<double>(cs.dqk));
  const std::string name = fmt::format("T{} Hq{} Hkv{} {}/{} {}{}", t, cs.hq, cs.hkv, cs.dqk, cs.dv,
                                       dtype_name(cs.dtype),
                                       !cs.strided  ? ""
                                       : cs.aligned ? " strided aligned"
                                                    : " strided");
  SCOPED_TRACE(name);

  const Triple qkv = make_triple(cpu, cs, t, cs.hkv, cs.dqk, cs.hkv, cs.dv, &rng, "");
  const Triple qkv_d = to_device(qkv);
  const Tensor cu = cu_tensor(cpu, cs.cu);
  const Tensor cu_d = testing::to_device(cu);

  // Forward. out: a slice at column 3 of a wider (T, Hq·Dv + 5) buffer when strided (column 8 of a
  // padded row when aligned).
  Tensor out_ref = cpu.empty({t, cs.hq, cs.dv}, cs.dtype, "out");
  Tensor lse_ref = cpu.empty({cs.hq, t}, ld, "lse");
  attention_forward(out_ref, lse_ref, qkv.a, qkv.b, qkv.c, cu, scale, cpu);

  const int64_t out_col = first_col(cs, 3);
  Tensor out_base =
      cs.strided
          ? testing::poisoned({t, fused_width(cs, out_col + cs.hq * cs.dv + 2)}, cs.dtype, "wide")
          : testing::poisoned({t, cs.hq, cs.dv}, cs.dtype, "out");
  const TensorView out_d =
      cs.strided ? testing::head_view(out_base, out_col, cs.hq, cs.dv, "out") : out_base.view();
  Tensor lse_d = testing::poisoned({cs.hq, t}, ld, "lse");
  attention_forward(out_d, lse_d, qkv_d.a, qkv_d.b, qkv_d.c, cu_d, scale, gpu);
  const Tensor out_got = gathered(out_d, out_base);
  const bool tensor_cores = cs.dtype == DType::bf16 || cs.dtype == DType::f16;
  testing::expect_close(out_got, out_ref,
                        tolerance(cs.dtype, len * std::max(cs.dqk, cs.dv), acc,
                                  tensor_cores ? cs.dtype : DType::boolean),
                        "out");
  testing::expect_close(lse_d, lse_ref, tolerance(ld, len * cs.dqk, acc), "lse");
  if (cs.strided) expect_only_views_written(out_base, {out_d}, "out");

  // Backward from the reference's out and lse (the same values on both sides).
  const Tensor dout = testing::random_tensor(cpu, {t, cs.hq, cs.dv}, cs.dtype, rng, -1, 1, "dout");
  const Triple g_ref = make_triple(cpu, cs, t, cs.hkv, cs.dqk, cs.hkv, cs.dv, nullptr, "d");
  attention_backward(g_ref.a, g_ref.b, g_ref.c, dout, qkv.a, qkv.b, qkv.c, out_ref, lse_ref, cu,
                     scale, cpu);
  const Triple g_d = make_triple(gpu, cs, t, cs.hkv, cs.dqk, cs.hkv, cs.dv, nullptr, "d");
  const Tensor dout_d = testing::to_device(dout), out_rd = testing::to_device(out_ref);
  const Tensor lse_rd = testing::to_device(lse_ref);
  attention_backward(g_d.a, g_d.b, g_d.c, dout_d, qkv_d.a, qkv_d.b, qkv_d.c, out_rd, lse_rd, cu_d,
                     scale, gpu);
  auto ref_of = [&](const TensorView& v) {
    return testing::tensor_from(cpu, v.dims(), v.dtype, testing::gather_heads(v), v.name);
  };
  const int64_t kq = len * std::max(cs.dqk, cs.dv), kkv = group * kq;
  const bool tc_backward = tensor_cores && cs.dqk <= 192 && cs.dv <= 128;
  const DType internal = tc_backward ? cs.dtype : DType::boolean;
  const Tensor dq_ref = ref_of(g_ref.a), dk_ref = ref_of(g_ref.b), dv_ref = ref_of(g_ref.c);
  const size_t ib = cs.strided ? 0 : 1, ic = cs.strided ? 0 : 2;
  testing::expect_close(gathered(g_d.a, g_d.store[0]), dq_ref,
                        tolerance(cs.dtype, kq, acc, internal), "dq");
  testing::expect_close(gathered(g_d.b, g_d.store[ib]), dk_ref,
                        tolerance(cs.dtype, kkv, acc, internal), "dk");
  testing::expect_close(gathered(g_d.c, g_d.store[ic]), dv_ref,
                        tolerance(cs.dtype, kkv, acc, internal), "dv");
  if (cs.strided) expect_only_views_written(g_d.store[0], {g_d.a, g_d.b, g_d.c}, "dq/dk/dv");
}

const std::vector<int32_t> kPacked = {0, 1, 1, 130, 131, 600};  // lengths 1, 0, 129, 1, 469

TEST(GpuAttention, SingleSequenceMha) {
  R1_REQUIRE_GPU();
  check_case({{0, 333}, 4, 4, 64, 64, DType::f32}, 1);
  check_case({{0, 333}, 4, 4, 64, 64, DType::bf16}, 2);
}

TEST(GpuAttention, PackedGqa) {
  R1_REQUIRE_GPU();
  check_case({kPacked, 6, 2, 128, 128, DType::f32}, 3);
  check_case({kPacked, 6, 2, 128, 128, DType::bf16}, 4);
}

TEST(GpuAttention, PackedMqa) {
  R1_REQUIRE_GPU();
  check_case({{0, 65, 65, 365}, 4, 1, 64, 64, DType::bf16}, 5);
  check_case({{0, 65, 65, 365}, 4, 1, 64, 64, DType::f32}, 6);
}

TEST(GpuAttention, MlaHeadDims) {
  R1_REQUIRE_GPU();
  check_case({{0, 257, 700}, 4, 2, 192, 128, DType::f32}, 7);
  check_case({{0, 257, 700}, 4, 2, 192, 128, DType::bf16}, 8);
}

TEST(GpuAttention, LongSequence) {
  R1_REQUIRE_GPU();
  check_case({{0, 2047}, 8, 2, 192, 128, DType::bf16}, 20);  // 32 query tiles deep
}

TEST(GpuAttention, SmallAndOddHeadDims) {
  R1_REQUIRE_GPU();
  check_case({{0, 7, 8, 208, 208, 395}, 3, 3, 40, 24, DType::f32}, 9);
  check_case({{0, 7, 8, 208, 208, 395}, 6, 2, 40, 24, DType::bf16}, 10);
  check_case({{0, 100, 301}, 2, 1, 37, 19, DType::f32}, 11);  // not a multiple of any pack
}

TEST(GpuAttention, LargestBucket) {
  R1_REQUIRE_GPU();
  // The 256/256 bucket; bf16 takes the tensor-core forward and the CUDA-core backward there.
  check_case({{0, 90, 211}, 2, 1, 200, 136, DType::f32}, 12);
  check_case({{0, 90, 211}, 4, 2, 200, 136, DType::bf16}, 21);
}

TEST(GpuAttention, StridedViewsOfFusedBuffers) {
  R1_REQUIRE_GPU();
  check_case({kPacked, 6, 2, 64, 64, DType::f32, true}, 13);
  check_case({kPacked, 6, 2, 64, 64, DType::bf16, true}, 14);
  check_case({{0, 50, 311}, 4, 2, 192, 128, DType::bf16, true}, 15);
  // 16-byte aligned slices with row strides other than H·D: the vector / cp.async loads.
  check_case({kPacked, 6, 2, 64, 64, DType::f32, true, true}, 22);
  check_case({kPacked, 6, 2, 64, 64, DType::bf16, true, true}, 23);
  check_case({{0, 50, 311}, 4, 2, 192, 128, DType::bf16, true, true}, 24);
  check_case({{0, 90, 211}, 4, 2, 256, 256, DType::bf16, true, true}, 25);
}

// Sequence lengths that are exact multiples of the tile sizes (32, 64, 128): no partial tile.
TEST(GpuAttention, TileAlignedLengths) {
  R1_REQUIRE_GPU();
  const std::vector<int32_t> cu = {0, 64, 192, 224};  // lengths 64, 128, 32
  check_case({cu, 4, 2, 128, 128, DType::bf16}, 26);
  check_case({cu, 4, 2, 128, 128, DType::f32}, 27);
  check_case({cu, 2, 1, 256, 256, DType::bf16}, 28);
}

TEST(GpuAttention, HalfAndDouble) {
  R1_REQUIRE_GPU();
  check_case({{0, 70, 71, 260}, 4, 2, 64, 64, DType::f16}, 16);
  check_case({{0, 50, 117}, 2, 1, 40, 24, DType::f64}, 17);
  check_case({{0, 40, 81}, 2, 2, 192, 128, DType::f64}, 18);
}

// Empty batches launch nothing and write nothing; the backward is bit-for-bit repeatable (no
// atomics), and the entry point without the front-end's host copy of cu_seqlens agrees.
TEST(GpuAttention, EmptyDeterministicAndDirectEntry) {
  R1_REQUIRE_GPU();
  Context& gpu = gpu_ctx();
  {
    const Tensor cu = testing::to_device(cu_tensor(cpu_ctx(), {0}));
    Tensor q = gpu.empty({0, 2, 64}, DType::bf16), k = gpu.empty({0, 1, 64}, DType::bf16);
    Tensor v = gpu.empty({0, 1, 64}, DType::bf16), out = gpu.empty({0, 2, 64}, DType::bf16);
    Tensor lse = gpu.empty({2, 0}, DType::f32);
    attention_forward(out, lse, q, k, v, cu, 0.125, gpu);
    Tensor dq = gpu.empty({0, 2, 64}, DType::bf16), dk = gpu.empty({0, 1, 64}, DType::bf16);
    Tensor dv = gpu.empty({0, 1, 64}, DType::bf16);
    attention_backward(dq, dk, dv, out, q, k, v, out, lse, cu, 0.125, gpu);
    gpu.synchronize();
  }
  std::mt19937_64 rng(19);
  const std::vector<int32_t> cuv = {0, 200, 201, 520};
  const int64_t t = 520, hq = 6, hkv = 2, d = 128;
  const double scale = 0.088;
  auto rnd = [&](const Shape& s, const char* n) {
    return testing::to_device(testing::random_tensor(cpu_ctx(), s, DType::bf16, rng, -1, 1, n));
  };
  const Tensor q = rnd({t, hq, d}, "q"), k = rnd({t, hkv, d}, "k"), v = rnd({t, hkv, d}, "v");
  const Tensor dout = rnd({t, hq, d}, "dout");
  const Tensor cu = testing::to_device(cu_tensor(cpu_ctx(), cuv));
  Tensor out = testing::poisoned({t, hq, d}, DType::bf16),
         lse = testing::poisoned({hq, t}, DType::f32);
  attention_forward(out, lse, q, k, v, cu, scale, gpu);
  Tensor out2 = testing::poisoned({t, hq, d}, DType::bf16),
         lse2 = testing::poisoned({hq, t}, DType::f32);
  cuda::attention_forward(out2, lse2, q, k, v, cu, scale, gpu);
  testing::expect_equal(out2, testing::to_host(out), "out (direct entry)");
  testing::expect_equal(lse2, testing::to_host(lse), "lse (direct entry)");
  // Host offsets on a GPU context: the same result without the front-end's device copy.
  const Tensor cu_host = cu_tensor(cpu_ctx(), cuv);
  Tensor out3 = testing::poisoned({t, hq, d}, DType::bf16),
         lse3 = testing::poisoned({hq, t}, DType::f32);
  attention_forward(out3, lse3, q, k, v, cu_host, scale, gpu);
  testing::expect_equal(out3, testing::to_host(out), "out (host cu_seqlens)");
  testing::expect_equal(lse3, testing::to_host(lse), "lse (host cu_seqlens)");
  Tensor g1[3], g2[3];
  for (Tensor* g : {g1, g2}) {
    g[0] = testing::poisoned({t, hq, d}, DType::bf16, "dq");
    g[1] = testing::poisoned({t, hkv, d}, DType::bf16, "dk");
    g[2] = testing::poisoned({t, hkv, d}, DType::bf16, "dv");
  }
  attention_backward(g1[0], g1[1], g1[2], dout, q, k, v, out, lse, cu, scale, gpu);
  cuda::attention_backward(g2[0], g2[1], g2[2], dout, q, k, v, out, lse, cu, scale, gpu);
  for (int i = 0; i < 3; ++i) testing::expect_equal(g2[i], testing::to_host(g1[i]), g1[i].name());
}

}  // namespace
}  // namespace r1kit::kernels
