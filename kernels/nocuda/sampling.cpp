// CUDA entry point of kernels/sampling.h in a build without CUDA.
#include "kernels/sampling.h"

namespace r1kit::kernels::cuda {
void sample_forward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                    const SamplingParams&, uint64_t, Context&) {
  throw_no_cuda("sample");
}
}  // namespace r1kit::kernels::cuda
