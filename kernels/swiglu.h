// SwiGLU activation of the gated MLP:  out = silu(gate) · up,  silu(g) = g · σ(g).
// Shapes: gate, up, out (N, H) with N = tokens, H = intermediate size. Every argument may be a
// row-strided 2-D view (unit column stride, row stride >= H), e.g. the two column halves of a
// packed (N, 2H) gate_up GEMM output made with column_slice.
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// Columns [begin, end) of a 2-D view with unit column stride: shape (N, end − begin), same row
// stride, named "<name>[:, begin:end]". No copy.
TensorView column_slice(const TensorView& m, int64_t begin, int64_t end);

void swiglu_forward(const TensorView& out, const TensorView& gate, const TensorView& up,
                    Context& ctx);

// dgate = dout · up · σ(g) · (1 + g·(1 − σ(g))),  dup = dout · silu(g).
// Both are activation gradients and overwrite (=); the write rule: parameter gradients
// accumulate (+=), activation gradients overwrite (=), except the residual stream, which
// accumulates. dgate and dup may be the two column halves of one packed (N, 2H) buffer.
void swiglu_backward(const TensorView& dgate, const TensorView& dup, const TensorView& dout,
                     const TensorView& gate, const TensorView& up, Context& ctx);

namespace cpu {
void swiglu_forward(const TensorView& out, const TensorView& gate, const TensorView& up,
                    Context& ctx);
void swiglu_backward(const TensorView& dgate, const TensorView& dup, const TensorView& dout,
                     const TensorView& gate, const TensorView& up, Context& ctx);
}  // namespace cpu
namespace cuda {
void swiglu_forward(const TensorView& out, const TensorView& gate, const TensorView& up,
                    Context& ctx);
void swiglu_backward(const TensorView& dgate, const TensorView& dup, const TensorView& dout,
                     const TensorView& gate, const TensorView& up, Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
