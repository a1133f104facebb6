// The kernel benchmark's cases, one file per op group under bench/cases/ (so each group is edited
// on its own). A case builds its inputs on the context, keeps them alive in `keep`, and returns the
// function to time; flops and bytes are the least the op must do and move (bytes read + written).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/context.h"
#include "kernels/random.h"

namespace r1kit::bench {

struct BenchConfig {
  bool quick = false;        // small shapes (CPU smoke runs)
  DType dtype = DType::f32;  // activations and weights; bf16 is the GPU's working dtype
  bool cuda = false;
};

struct Case {
  std::string op, shape;
  double flops, bytes;
  std::function<std::function<void()>(Context&, std::vector<Tensor>&)> setup;
  std::string dtype = "";  // reported dtype; empty = the config's
};

// Uniform random values in [lo, hi) on the context (Philox; offset picks the stream).
inline Tensor rand(Context& ctx, const Shape& s, DType t, uint64_t offset, double lo = -1,
                   double hi = 1) {
  Tensor x = ctx.empty(s, t);
  kernels::random_uniform(x, lo, hi, 1, offset, ctx);
  return x;
}

// Integers in [0, hi), spread by a multiplicative hash, filled on the host and copied.
inline Tensor ids(Context& ctx, const Shape& s, int hi) {
  Tensor host = Tensor(s, DType::i32, ctx.host_allocator());
  for (int64_t i = 0; i < host.numel(); ++i)
    host.ptr<int32_t>()[i] = static_cast<int32_t>((i * 2654435761u) % static_cast<uint32_t>(hi));
  Tensor t = ctx.empty(s, DType::i32);
  ctx.copy(t, host);
  return t;
}

inline double dsize(DType t) {
  return static_cast<double>(dtype_size(t));
}

// One function per group (bench/cases/<group>.cpp).
void add_gemm_cases(std::vector<Case>& cs, const BenchConfig& cfg);
void add_attention_cases(std::vector<Case>& cs, const BenchConfig& cfg);
void add_loss_cases(std::vector<Case>& cs, const BenchConfig& cfg);
void add_moe_sampling_cases(std::vector<Case>& cs, const BenchConfig& cfg);
void add_pointwise_cases(std::vector<Case>& cs, const BenchConfig& cfg);
void add_optim_cases(std::vector<Case>& cs, const BenchConfig& cfg);

}  // namespace r1kit::bench
