// embedding: forward copies the table rows exactly (any dtype pair), backward against finite
// differences with repeated ids, out-of-range ids and validation errors.
#include "kernels/embedding.h"

#include <cmath>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

TEST(Embedding, ForwardCopiesRows) {
  std::mt19937_64 rng(1);
  auto& ctx = cpu_ctx();
  const int64_t n = 13, v = 7, ch = 5;
  auto ids = testing::random_ints(ctx, {n}, rng, 0, v - 1);
  for (DType td : {DType::f64, DType::f32, DType::bf16}) {
    for (DType od : {td, DType::f32}) {
      if ((td == DType::f64) != (od == DType::f64)) continue;
      auto table = testing::random_tensor(ctx, {v, ch}, td, rng, -1, 1, "embed_tokens.weight");
      auto out = ctx.empty({n, ch}, od, "out");
      testing::fill_constant(out, NAN);
      embedding_forward(out, ids, table, ctx);
      auto t = testing::to_double(table), o = testing::to_double(out);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < ch; ++j)
          EXPECT_EQ(o[i * ch + j], t[ids.ptr<int32_t>()[i] * ch + j]) << i << "," << j;
    }
  }
}

TEST(Embedding, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(2);
  auto& ctx = cpu_ctx();
  const int64_t n = 17, v = 7, ch = 5;
  // More tokens than rows: ids repeat, and row 6 is never used (its gradient stays 0).
  auto ids = testing::random_ints(ctx, {n}, rng, 0, v - 2);
  auto table = testing::random_tensor(ctx, {v, ch}, DType::f64, rng);
  auto g = testing::random_tensor(ctx, {n, ch}, DType::f64, rng);
  auto out = ctx.empty({n, ch}, DType::f64);
  auto loss = [&] {
    embedding_forward(out, ids, table, ctx);
    return testing::dot(out, g);
  };
  auto dtable = ctx.zeros({v, ch}, DType::f64, "dtable");
  embedding_backward(dtable, g, ids, ctx);
  testing::expect_gradients_match(loss, {{table.view(), dtable.view()}});
  for (int64_t j = 0; j < ch; ++j) EXPECT_EQ(dtable.ptr<double>()[(v - 1) * ch + j], 0.0);

  // The table gradient is a parameter gradient: it accumulates.
  auto dtable2 = testing::tensor_from(ctx, {v, ch}, DType::f64, std::vector<double>(v * ch, 1.0));
  embedding_backward(dtable2, g, ids, ctx);
  auto a = testing::to_double(dtable2), b = testing::to_double(dtable);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i] + 1.0, 1e-12) << i;

  // f32 matches f64 to f32 rounding of a sum of at most n terms, each |g| < 1.
  auto g32 = testing::tensor_from(ctx, {n, ch}, DType::f32, testing::to_double(g));
  auto dt32 = ctx.zeros({v, ch}, DType::f32, "dt32");
  embedding_backward(dt32, g32, ids, ctx);
  auto c = testing::to_double(dt32);
  for (size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(c[i], b[i], n * 0x1p-24) << i;
}

TEST(Embedding, OutOfRangeIdsNameOpIdPositionAndVocab) {
  auto& ctx = cpu_ctx();
  auto table = ctx.zeros({7, 5}, DType::f32, "embed_tokens.weight");
  auto out = ctx.empty({4, 5}, DType::f32, "out");
  auto ids = testing::tensor_from(ctx, {4}, DType::i32, {0, 6, 2, 7}, "input_ids");
  testing::expect_error_contains(
      [&] { embedding_forward(out, ids, table, ctx); },
      {"[embedding]", "id 7", "position 3", "V = 7", "input_ids", "embed_tokens.weight"});
  auto neg = testing::tensor_from(ctx, {4}, DType::i32, {0, -1, 2, 3}, "input_ids");
  testing::expect_error_contains([&] { embedding_forward(out, neg, table, ctx); },
                                 {"[embedding]", "id -1", "position 1", "V = 7"});
  testing::expect_error_contains([&] { embedding_backward(table, out, ids, ctx); },
                                 {"[embedding_backward]", "id 7", "position 3", "V = 7"});
}

TEST(Embedding, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  auto table = ctx.zeros({7, 5}, DType::f32, "embed_tokens.weight");
  auto ids = ctx.zeros({4}, DType::i32, "ids");
  auto out = ctx.empty({4, 6}, DType::f32, "out");
  testing::expect_error_contains([&] { embedding_forward(out, ids, table, ctx); },
                                 {"[embedding]", "out", "(4, 6)", "(4, 5)"});
  auto fids = ctx.zeros({4}, DType::f32, "fids");
  auto out5 = ctx.empty({4, 5}, DType::f32, "out5");
  testing::expect_error_contains([&] { embedding_forward(out5, fids, table, ctx); },
                                 {"[embedding]", "fids", "i32"});
  auto dout = ctx.empty({3, 5}, DType::f32, "dout");
  testing::expect_error_contains([&] { embedding_backward(table, dout, ids, ctx); },
                                 {"[embedding_backward]", "dout", "(3, 5)", "(4, 5)"});
}

}  // namespace
}  // namespace r1kit::kernels
