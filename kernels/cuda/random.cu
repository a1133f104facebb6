// Philox random tensors on the GPU: one thread per element, same formula as the CPU reference.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/cuda_check.h"
#include "kernels/random.h"
#include "kernels/random_math.h"

namespace r1kit::kernels::cuda {
namespace {

template <class T>
__device__ inline void store(T* p, int64_t i, float v) {
  p[i] = static_cast<T>(v);
}
template <>
__device__ inline void store<__nv_bfloat16>(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}
template <>
__device__ inline void store<__half>(__half* p, int64_t i, float v) {
  p[i] = __float2half_rn(v);
}

template <class T, bool kNormal>
__global__ void random_kernel(T* out, int64_t n, float a, float b, uint64_t seed, uint64_t offset) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  Philox4 r = random_block(seed, offset, static_cast<uint64_t>(i));
  // Uniform: a + (hi − lo)·u with a = lo, b = hi − lo. Normal: a + b·z with a = mean, b = std.
  // Explicit round-to-nearest multiply and add (no FMA contraction) so uniforms match the CPU bits.
  float v = kNormal ? __fadd_rn(a, __fmul_rn(b, random_normal_value(r)))
                    : __fadd_rn(a, __fmul_rn(b, philox_uniform(r.v[0])));
  store(out, i, v);
}

template <bool kNormal>
void launch(const TensorView& out, float a, float b, uint64_t seed, uint64_t offset, Context& ctx) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>((n + threads - 1) / threads);
  auto stream = static_cast<cudaStream_t>(ctx.stream());
  switch (out.dtype) {
    case DType::f32:
      random_kernel<float, kNormal>
          <<<blocks, threads, 0, stream>>>(out.ptr<float>(), n, a, b, seed, offset);
      break;
    case DType::f64:
      random_kernel<double, kNormal>
          <<<blocks, threads, 0, stream>>>(out.ptr<double>(), n, a, b, seed, offset);
      break;
    case DType::bf16:
      random_kernel<__nv_bfloat16, kNormal>
          <<<blocks, threads, 0, stream>>>(out.ptr<__nv_bfloat16>(), n, a, b, seed, offset);
      break;
    case DType::f16:
      random_kernel<__half, kNormal>
          <<<blocks, threads, 0, stream>>>(out.ptr<__half>(), n, a, b, seed, offset);
      break;
    default:
      R1_THROW("[random] unsupported dtype {}", dtype_name(out.dtype));
  }
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace

void random_uniform(const TensorView& out, double lo, double hi, uint64_t seed, uint64_t offset,
                    Context& ctx) {
  launch<false>(out, static_cast<float>(lo), static_cast<float>(hi - lo), seed, offset, ctx);
}

void random_normal(const TensorView& out, double mean, double std, uint64_t seed, uint64_t offset,
                   Context& ctx) {
  launch<true>(out, static_cast<float>(mean), static_cast<float>(std), seed, offset, ctx);
}

}  // namespace r1kit::kernels::cuda
