// Random tensors from the counter-based Philox generator (core/philox.h): element i of a call
// with (seed, offset) uses counter (i lo, i hi, offset lo, offset hi), so the CPU and the GPU
// produce identical uniforms, and distinct offsets give independent streams.
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// out (any shape, f32/f64/bf16/f16, contiguous) = lo + (hi − lo)·u, u ∈ [0, 1) with 24-bit
// resolution. Forward only: randomness has no gradient.
void random_uniform(const TensorView& out, double lo, double hi, uint64_t seed, uint64_t offset,
                    Context& ctx);
// out = mean + std·z, z standard normal by Box–Muller on two uniforms per element (lanes 0 and 1
// of the element's Philox block). Used for weight initialisation.
void random_normal(const TensorView& out, double mean, double std, uint64_t seed, uint64_t offset,
                   Context& ctx);

namespace cpu {
void random_uniform(const TensorView& out, double lo, double hi, uint64_t seed, uint64_t offset,
                    Context& ctx);
void random_normal(const TensorView& out, double mean, double std, uint64_t seed, uint64_t offset,
                   Context& ctx);
}  // namespace cpu
namespace cuda {
void random_uniform(const TensorView& out, double lo, double hi, uint64_t seed, uint64_t offset,
                    Context& ctx);
void random_normal(const TensorView& out, double mean, double std, uint64_t seed, uint64_t offset,
                   Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
