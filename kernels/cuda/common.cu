// Launch sizing shared by the CUDA kernels.
#include "kernels/cuda/common.cuh"

#include <algorithm>

namespace r1kit::kernels::cuda {

int sm_count(const Context& ctx) {
  int n = 0;
  R1_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, ctx.device().index));
  return std::max(n, 1);
}

unsigned grid_for(const Context& ctx, int64_t n, int threads, int per_thread) {
  const int64_t per_block = static_cast<int64_t>(threads) * std::max(per_thread, 1);
  const int64_t need = (std::max<int64_t>(n, 1) + per_block - 1) / per_block;
  const int64_t cap = static_cast<int64_t>(sm_count(ctx)) * 16;  // a few waves of full blocks
  return static_cast<unsigned>(std::clamp<int64_t>(need, 1, cap));
}

}  // namespace r1kit::kernels::cuda
