// Global gradient norm CPU reference: sums of squares in double over fixed-size blocks (parallel),
// added in block order, so the result is the same for any thread count.
#include "kernels/grad_norm.h"

#include <algorithm>
#include <cmath>

namespace r1kit::kernels::cpu {
namespace {

constexpr int64_t kBlock = 8192;  // elements per partial sum; fixed, independent of threads

struct Block {
  size_t tensor;
  int64_t begin, end;
};

std::vector<Block> make_blocks(const std::vector<TensorView>& grads) {
  std::vector<Block> blocks;
  for (size_t t = 0; t < grads.size(); ++t)
    for (int64_t b = 0; b < grads[t].numel(); b += kBlock)
      blocks.push_back({t, b, std::min(b + kBlock, grads[t].numel())});
  return blocks;
}

// Calls fn(load, store) with element accessors for v's dtype (values as double).
template <class F>
void with_accessors(const TensorView& v, F&& fn) {
  switch (v.dtype) {
    case DType::f64: {
      double* p = v.ptr<double>();
      fn([p](int64_t i) { return p[i]; }, [p](int64_t i, double x) { p[i] = x; });
      return;
    }
    case DType::f32: {
      float* p = v.ptr<float>();
      fn([p](int64_t i) { return static_cast<double>(p[i]); },
         [p](int64_t i, double x) { p[i] = static_cast<float>(x); });
      return;
    }
    case DType::bf16: {
      uint16_t* p = v.ptr<uint16_t>();
      // Stores round double → f32 → bf16, as a GPU kernel computing in f32 would.
      fn([p](int64_t i) { return static_cast<double>(bf16_bits_to_f32(p[i])); },
         [p](int64_t i, double x) { p[i] = f32_to_bf16_bits(static_cast<float>(x)); });
      return;
    }
    case DType::f16: {
      uint16_t* p = v.ptr<uint16_t>();
      fn([p](int64_t i) { return static_cast<double>(f16_bits_to_f32(p[i])); },
         [p](int64_t i, double x) { p[i] = f32_to_f16_bits(static_cast<float>(x)); });
      return;
    }
    default:
      R1_THROW("[grad_norm] unsupported dtype for {}", v.describe());
  }
}

}  // namespace

// Σ_tensors Σ_i g_i², one double partial per block, partials added in (tensor, block) order.
double grad_sum_squares(const std::vector<TensorView>& grads, Context& ctx) {
  const std::vector<Block> blocks = make_blocks(grads);
  std::vector<double> partial(blocks.size(), 0.0);
  ctx.pool().parallel_for(static_cast<int64_t>(blocks.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const Block& blk = blocks[static_cast<size_t>(k)];
      with_accessors(grads[blk.tensor], [&](auto load, auto) {
        double s = 0;
        for (int64_t i = blk.begin; i < blk.end; ++i) {
          const double x = load(i);
          s += x * x;
        }
        partial[static_cast<size_t>(k)] = s;
      });
    }
  });
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

// g ← g·coef, computed in double and rounded once to each gradient's dtype.
void grad_scale(const std::vector<TensorView>& grads, double coef, Context& ctx) {
  const std::vector<Block> blocks = make_blocks(grads);
  ctx.pool().parallel_for(static_cast<int64_t>(blocks.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const Block& blk = blocks[static_cast<size_t>(k)];
      with_accessors(grads[blk.tensor], [&](auto load, auto store) {
        for (int64_t i = blk.begin; i < blk.end; ++i) store(i, load(i) * coef);
      });
    }
  });
}

}  // namespace r1kit::kernels::cpu
