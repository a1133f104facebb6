// GPU vs CPU for the embedding lookup (an exact row copy, any dtype pair, packed and scalar paths)
// and its backward (deterministic position-order sums with heavily repeated ids, accumulating
// into a non-zero table gradient), and the device-side report of out-of-range ids.
#include "kernels/embedding.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gpu_ctx;

// A device view of `shape` whose data starts `offset_elems` elements into `buf` (to reach the
// unaligned, scalar paths with shapes whose rows would otherwise be 16-byte aligned).
TensorView offset_view(const Tensor& buf, int64_t offset_elems, const Shape& shape, DType dt,
                       const std::string& name) {
  char* base = static_cast<char*>(buf.data()) + offset_elems * static_cast<int64_t>(dtype_size(dt));
  return TensorView(base, dt, buf.view().device, shape, name);
}

// The most positions that share one id (the longest sum the backward does).
int64_t max_repeats(const Tensor& ids) {
  std::map<int32_t, int64_t> count;
  int64_t most = 0;
  for (int64_t i = 0; i < ids.numel(); ++i) most = std::max(most, ++count[ids.ptr<int32_t>()[i]]);
  return most;
}

struct Shape2 {
  int64_t n, v, ch;
};

TEST(GpuEmbedding, ForwardCopiesRowsExactly) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(11);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  // C = 37: rows not a multiple of 16 bytes (element path); C = 7168: packed path.
  for (const Shape2 s : {Shape2{301, 1001, 37}, Shape2{257, 1001, 7168}}) {
    auto ids = testing::random_ints(cpu, {s.n}, rng, 0, static_cast<int>(s.v - 1));
    auto ids_d = testing::to_device(ids);
    for (DType td : {DType::f32, DType::bf16, DType::f16, DType::f64}) {
      for (DType od : {td, DType::f32, DType::bf16}) {
        if ((td == DType::f64) != (od == DType::f64)) continue;
        SCOPED_TRACE(fmt::format("C {} table {} out {}", s.ch, dtype_name(td), dtype_name(od)));
        auto table = testing::random_tensor(cpu, {s.v, s.ch}, td, rng, -2, 2, "table");
        auto ref = cpu.empty({s.n, s.ch}, od, "ref");
        embedding_forward(ref, ids, table, cpu);
        auto table_d = testing::to_device(table);
        auto out = testing::poisoned({s.n, s.ch}, od);
        embedding_forward(out, ids_d, table_d, gpu);
        testing::expect_equal(out, ref, "embedding forward");
      }
    }
  }
}

TEST(GpuEmbedding, ForwardUnalignedRowsUseTheElementPath) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(12);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const int64_t n = 129, v = 50, ch = 8;  // 16-byte bf16 rows, but the table starts 2 bytes in
  auto ids = testing::random_ints(cpu, {n}, rng, 0, static_cast<int>(v - 1));
  auto table = testing::random_tensor(cpu, {v, ch}, DType::bf16, rng, -1, 1, "table");
  auto ref = cpu.empty({n, ch}, DType::bf16);
  embedding_forward(ref, ids, table, cpu);
  Tensor buf = gpu.empty({v * ch + 1}, DType::bf16);
  TensorView table_d = offset_view(buf, 1, {v, ch}, DType::bf16, "table");
  gpu.copy(table_d, table);
  auto out = testing::poisoned({n, ch}, DType::bf16);
  embedding_forward(out, testing::to_device(ids), table_d, gpu);
  testing::expect_equal(out, ref, "embedding forward, unaligned table");
}

// More rows than one pass of the grid covers, so every block takes several grid-stride steps: one
// 16-byte pack per row (256 rows per block), 12-byte rows (the element path) and a conversion.
TEST(GpuEmbedding, ForwardGridStrideOverManyRows) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(18);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const int64_t n = (int64_t{1} << 20) + 3, v = 1001;
  auto ids = testing::random_ints(cpu, {n}, rng, 0, static_cast<int>(v - 1));
  auto ids_d = testing::to_device(ids);
  struct Case {
    int64_t ch;
    DType table, out;
  };
  for (const Case c : {Case{8, DType::bf16, DType::bf16}, Case{3, DType::f32, DType::f32},
                       Case{3, DType::f32, DType::bf16}}) {
    SCOPED_TRACE(fmt::format("C {} table {} out {}", c.ch, dtype_name(c.table), dtype_name(c.out)));
    auto table = testing::random_tensor(cpu, {v, c.ch}, c.table, rng, -2, 2, "table");
    auto ref = cpu.empty({n, c.ch}, c.out, "ref");
    embedding_forward(ref, ids, table, cpu);
    auto out = testing::poisoned({n, c.ch}, c.out);
    embedding_forward(out, ids_d, testing::to_device(table), gpu);
    testing::expect_equal(out, ref, "embedding forward, many rows");
  }
}

// With C = 0 there is nothing to copy or add, but the ids are still checked on the device.
TEST(GpuEmbedding, ZeroWidthTableStillChecksIds) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(19);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const int64_t n = 20, v = 6;
  auto ids = testing::random_ints(cpu, {n}, rng, 0, static_cast<int>(v - 1));
  ids.ptr<int32_t>()[3] = 6;
  auto ids_d = testing::to_device(ids);
  auto table = gpu.empty({v, 0}, DType::f32, "table");
  auto out = gpu.empty({n, 0}, DType::f32, "out");
  embedding_forward(out, ids_d, table, gpu);
  testing::expect_error_contains([&] { gpu.synchronize(); },
                                 {"[embedding]", "id 6", "position 3", "V = 6"});
  embedding_backward(table, out, ids_d, gpu);
  testing::expect_error_contains([&] { gpu.synchronize(); },
                                 {"[embedding_backward]", "id 6", "position 3", "V = 6"});
}

TEST(GpuEmbedding, ForwardReportsOutOfRangeIdAndZeroesItsRow) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(13);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const int64_t n = 40, v = 7, ch = 16;
  for (int32_t bad : {7, -1, 1 << 30}) {
    SCOPED_TRACE(bad);
    auto ids = testing::random_ints(cpu, {n}, rng, 0, static_cast<int>(v - 1), "input_ids");
    ids.ptr<int32_t>()[23] = bad;
    auto table = testing::random_tensor(cpu, {v, ch}, DType::f32, rng, -1, 1, "table");
    auto table_d = testing::to_device(table);
    auto ids_d = testing::to_device(ids);
    auto out = testing::poisoned({n, ch}, DType::f32);
    embedding_forward(out, ids_d, table_d, gpu);
    testing::expect_error_contains(
        [&] { gpu.synchronize(); },
        {"[embedding]", fmt::format("id {}", bad), "position 23", fmt::format("V = {}", v)});
    // The bad row reads nothing from the table and holds zeros; every other row is the lookup.
    auto host = testing::to_host(out);
    const auto got = testing::to_double(host), t = testing::to_double(table);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < ch; ++j) {
        const double want = i == 23 ? 0.0 : t[ids.ptr<int32_t>()[i] * ch + j];
        ASSERT_EQ(got[i * ch + j], want) << i << "," << j;
      }
  }
}

// ids for the backward: uniform over V, a few ids repeated many times, every position the same id.
std::vector<Tensor> backward_ids(int64_t n, int64_t v, std::mt19937_64& rng) {
  auto& cpu = cpu_ctx();
  std::vector<Tensor> out;
  out.push_back(testing::random_ints(cpu, {n}, rng, 0, static_cast<int>(v - 1)));
  out.push_back(testing::random_ints(cpu, {n}, rng, 3, 12));
  Tensor same = cpu.empty({n}, DType::i32, "ids");
  for (int64_t i = 0; i < n; ++i) same.ptr<int32_t>()[i] = static_cast<int32_t>(v - 1);
  out.push_back(std::move(same));
  return out;
}

TEST(GpuEmbedding, BackwardMatchesCpuWithRepeatedIds) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(14);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  struct Types {
    DType table, dout;
  };
  for (const Shape2 s : {Shape2{2000, 1001, 37}, Shape2{300, 1001, 7168}}) {
    for (const Types ty : {Types{DType::f32, DType::f32}, Types{DType::bf16, DType::bf16},
                           Types{DType::f64, DType::f64}, Types{DType::f32, DType::bf16},
                           Types{DType::f16, DType::f16}}) {
      for (const Tensor& ids : backward_ids(s.n, s.v, rng)) {
        SCOPED_TRACE(fmt::format("C {} dtable {} dout {} repeats {}", s.ch, dtype_name(ty.table),
                                 dtype_name(ty.dout), max_repeats(ids)));
        auto dout = testing::random_tensor(cpu, {s.n, s.ch}, ty.dout, rng, -1, 1, "dout");
        // A parameter gradient accumulates: both sides start from the same non-zero values.
        auto dtable = testing::random_tensor(cpu, {s.v, s.ch}, ty.table, rng, -1, 1, "dtable");
        auto dtable_d = testing::to_device(dtable);
        embedding_backward(dtable, dout, ids, cpu);
        embedding_backward(dtable_d, testing::to_device(dout), testing::to_device(ids), gpu);
        // Both sum each id's rows in double: the tolerance of the table dtype for that many terms.
        testing::expect_close(dtable_d, dtable,
                              testing::tolerance(ty.table, max_repeats(ids), DType::f64),
                              "embedding backward");
      }
    }
  }
}

// The same positions summed in the same (position) order in double, and the same final rounding
// as the CPU: the table gradient is bit-identical, and identical from run to run.
TEST(GpuEmbedding, BackwardIsBitIdenticalToCpuAndDeterministic) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(15);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const int64_t n = 4099, v = 1001, ch = 7168 / 4;
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    auto ids = testing::random_ints(cpu, {n}, rng, 0, 40);  // ~100 positions per id
    auto dout = testing::random_tensor(cpu, {n, ch}, dt, rng, -1, 1, "dout");
    auto dtable = testing::random_tensor(cpu, {v, ch}, dt, rng, -1, 1, "dtable");
    auto first = testing::to_device(dtable), second = testing::to_device(dtable);
    auto dout_d = testing::to_device(dout), ids_d = testing::to_device(ids);
    embedding_backward(dtable, dout, ids, cpu);
    embedding_backward(first, dout_d, ids_d, gpu);
    embedding_backward(second, dout_d, ids_d, gpu);
    testing::expect_equal(first, dtable, "embedding backward vs CPU");
    testing::expect_equal(second, testing::to_host(first), "embedding backward, second run");
  }
}

TEST(GpuEmbedding, BackwardUnalignedDoutUsesTheElementPath) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(16);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const int64_t n = 333, v = 20, ch = 64;
  auto ids = testing::random_ints(cpu, {n}, rng, 0, static_cast<int>(v - 1));
  auto dout = testing::random_tensor(cpu, {n, ch}, DType::f32, rng, -1, 1, "dout");
  auto dtable = testing::random_tensor(cpu, {v, ch}, DType::f32, rng, -1, 1, "dtable");
  auto dtable_d = testing::to_device(dtable);
  Tensor buf = gpu.empty({n * ch + 1}, DType::f32);
  TensorView dout_d = offset_view(buf, 1, {n, ch}, DType::f32, "dout");
  gpu.copy(dout_d, dout);
  embedding_backward(dtable, dout, ids, cpu);
  embedding_backward(dtable_d, dout_d, testing::to_device(ids), gpu);
  testing::expect_close(dtable_d, dtable,
                        testing::tolerance(DType::f32, max_repeats(ids), DType::f64),
                        "embedding backward, unaligned dout");
}

TEST(GpuEmbedding, BackwardReportsOutOfRangeIdAndSkipsIt) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(17);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const int64_t n = 50, v = 9, ch = 24;
  auto ids = testing::random_ints(cpu, {n}, rng, 0, static_cast<int>(v - 1));
  auto dout = testing::random_tensor(cpu, {n, ch}, DType::f32, rng, -1, 1, "dout");
  auto dtable = testing::random_tensor(cpu, {v, ch}, DType::f32, rng, -1, 1, "dtable");
  auto dtable_d = testing::to_device(dtable);
  Tensor bad_ids = cpu.empty({n}, DType::i32, "ids");
  std::memcpy(bad_ids.data(), ids.data(), ids.nbytes());
  bad_ids.ptr<int32_t>()[31] = static_cast<int32_t>(v);
  embedding_backward(dtable_d, testing::to_device(dout), testing::to_device(bad_ids), gpu);
  testing::expect_error_contains(
      [&] { gpu.synchronize(); },
      {"[embedding_backward]", fmt::format("id {}", v), "position 31", fmt::format("V = {}", v)});
  // The skipped position contributes nothing: the CPU with that row of dout zeroed.
  std::vector<double> d = testing::to_double(dout);
  for (int64_t j = 0; j < ch; ++j) d[static_cast<size_t>(31 * ch + j)] = 0.0;
  auto dout0 = testing::tensor_from(cpu, {n, ch}, DType::f32, d, "dout");
  embedding_backward(dtable, dout0, ids, cpu);
  testing::expect_close(dtable_d, dtable,
                        testing::tolerance(DType::f32, max_repeats(ids), DType::f64),
                        "embedding backward without the bad position");
}

TEST(GpuEmbedding, EmptyInputsLaunchNothing) {
  R1_REQUIRE_GPU();
  auto& gpu = gpu_ctx();
  auto ids = gpu.empty({0}, DType::i32, "ids");
  auto table = gpu.zeros({5, 3}, DType::f32, "table");
  auto out = gpu.empty({0, 3}, DType::f32, "out");
  embedding_forward(out, ids, table, gpu);
  embedding_backward(table, out, ids, gpu);
  gpu.synchronize();
  auto host = testing::to_host(table);
  for (double x : testing::to_double(host)) EXPECT_EQ(x, 0.0);
}

}  // namespace
}  // namespace r1kit::kernels
