// The CUDA attention entry points that take the host copy of cu_seqlens the front-end already
// made to validate it (kernels/attention.cpp), so a launch needs no second device-to-host copy.
// Plain C++ (no CUDA headers): included by the front-end in every build; defined in
// kernels/cuda/attention.cu, or kernels/nocuda/attention.cpp in a build without CUDA.
#pragma once

#include <cstdint>

#include "kernels/attention.h"

namespace r1kit::kernels::cuda {

// cu_host: the B+1 offsets of cu_seqlens (already validated), on the host.
void attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                       const TensorView& k, const TensorView& v, const TensorView& cu_seqlens,
                       const int32_t* cu_host, double scale, Context& ctx);
void attention_backward(const TensorView& dq, const TensorView& dk, const TensorView& dv,
                        const TensorView& dout, const TensorView& q, const TensorView& k,
                        const TensorView& v, const TensorView& out, const TensorView& lse,
                        const TensorView& cu_seqlens, const int32_t* cu_host, double scale,
                        Context& ctx);

}  // namespace r1kit::kernels::cuda
