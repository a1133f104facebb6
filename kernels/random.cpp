// Random tensor front-ends.
#include "kernels/random.h"

#include <cmath>

namespace r1kit::kernels {

void random_uniform(const TensorView& out, double lo, double hi, uint64_t seed, uint64_t offset,
                    Context& ctx) {
  OpCheck c("random_uniform", ctx);
  c.float_arg(out, "out");
  c.require(std::isfinite(lo) && std::isfinite(hi) && lo <= hi,
            [&] { return fmt::format("range [{}, {}) must be finite with lo <= hi", lo, hi); });
  if (ctx.is_cuda()) return cuda::random_uniform(out, lo, hi, seed, offset, ctx);
  cpu::random_uniform(out, lo, hi, seed, offset, ctx);
}

void random_normal(const TensorView& out, double mean, double std, uint64_t seed, uint64_t offset,
                   Context& ctx) {
  OpCheck c("random_normal", ctx);
  c.float_arg(out, "out");
  c.require(std::isfinite(mean) && std::isfinite(std) && std >= 0, [&] {
    return fmt::format("mean {} and std {} must be finite with std >= 0", mean, std);
  });
  if (ctx.is_cuda()) return cuda::random_normal(out, mean, std, seed, offset, ctx);
  cpu::random_normal(out, mean, std, seed, offset, ctx);
}

}  // namespace r1kit::kernels
