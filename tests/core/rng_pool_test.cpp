// Philox known-answer vectors (Random123's published KAT) and the thread pool's contract.
#include <atomic>
#include <numeric>

#include "core/philox.h"
#include "core/thread_pool.h"
#include "tests/common/test_util.h"

namespace r1kit {
namespace {

TEST(Philox, KnownAnswerVectors) {
  struct Kat {
    Philox4 ctr;
    uint64_t key;
    Philox4 want;
  } kats[] = {
      {{{0, 0, 0, 0}}, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffffffffffffull,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0x299f31d0a4093822ull,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const auto& k : kats) {
    Philox4 got = philox4x32_10(k.ctr, k.key);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got.v[i], k.want.v[i]) << "lane " << i;
  }
}

TEST(Philox, UniformRangeAndMean) {
  double sum = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    float u = philox_uniform_at(42, static_cast<uint32_t>(i), 0, 0, 0);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
  }
  // Mean of n uniforms has standard deviation sqrt(1/12/n) ≈ 0.0009; allow 5 sigma.
  EXPECT_NEAR(sum / n, 0.5, 5 * std::sqrt(1.0 / 12 / n));
  EXPECT_NE(philox_uniform_at(1, 0, 0, 0, 0), philox_uniform_at(2, 0, 0, 0, 0));
}

TEST(ThreadPool, CoversRangeExactlyOnceAndPropagatesErrors) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.num_threads(), 3);
  for (int64_t n : {1, 2, 3, 7, 1000}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.parallel_for(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
  EXPECT_THROW(pool.parallel_for(100, 1,
                                 [](int64_t b, int64_t) {
                                   if (b > 0) R1_THROW("chunk failed");
                                 }),
               Error);
  // Usable after an error, and nested calls run inline instead of deadlocking.
  std::atomic<int64_t> total{0};
  pool.parallel_for(10, 1, [&](int64_t b, int64_t e) {
    pool.parallel_for(e - b, 1, [&](int64_t bb, int64_t ee) { total += ee - bb; });
  });
  EXPECT_EQ(total.load(), 10);
}

TEST(ThreadPool, StaticChunkingIsDeterministic) {
  ThreadPool pool(2);
  std::vector<int64_t> starts1, starts2;
  std::mutex mu;
  auto record = [&](std::vector<int64_t>& s) {
    pool.parallel_for(101, 1, [&](int64_t b, int64_t) {
      std::lock_guard<std::mutex> l(mu);
      s.push_back(b);
    });
    std::sort(s.begin(), s.end());
  };
  record(starts1);
  record(starts2);
  EXPECT_EQ(starts1, starts2);
  EXPECT_EQ(starts1, (std::vector<int64_t>{0, 51}));
}

}  // namespace
}  // namespace r1kit
