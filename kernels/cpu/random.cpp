// Philox random tensors on the CPU.
#include "kernels/random.h"
#include "core/dtype.h"
#include "kernels/random_math.h"

namespace r1kit::kernels::cpu {

void random_uniform(const TensorView& out, double lo, double hi, uint64_t seed, uint64_t offset,
                    Context& ctx) {
  ctx.pool().parallel_for(out.numel(), 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float u = philox_uniform(random_block(seed, offset, static_cast<uint64_t>(i)).v[0]);
      store_from_double(out.data, out.dtype, static_cast<size_t>(i),
                        static_cast<float>(lo) + static_cast<float>(hi - lo) * u);
    }
  });
}

void random_normal(const TensorView& out, double mean, double std, uint64_t seed, uint64_t offset,
                   Context& ctx) {
  ctx.pool().parallel_for(out.numel(), 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float z = random_normal_value(random_block(seed, offset, static_cast<uint64_t>(i)));
      store_from_double(out.data, out.dtype, static_cast<size_t>(i),
                        static_cast<float>(mean) + static_cast<float>(std) * z);
    }
  });
}

}  // namespace r1kit::kernels::cpu
