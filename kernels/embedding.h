// Token embedding lookup:  out[n, :] = table[ids[n], :].
// Shapes: ids (N) i32 with N = tokens; table (V, C) with V = vocab; out (N, C).
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// Ids outside [0, V) are an error naming the op, the id, its position and V. The CPU path checks
// them in the front-end before any work; the CUDA path will check them on the device (a clamp plus
// an error flag read back lazily) so that the lookup does not synchronise the stream.
void embedding_forward(const TensorView& out, const TensorView& ids, const TensorView& table,
                       Context& ctx);

// dtable[v, :] += Σ_{n : ids[n] = v} dout[n, :]  (the table is a parameter: parameter gradients
// accumulate (+=), activation gradients overwrite (=), except the residual stream, which
// accumulates). Rows of ids that repeat are summed in double, in position order (deterministic).
void embedding_backward(const TensorView& dtable, const TensorView& dout, const TensorView& ids,
                        Context& ctx);

namespace cpu {
void embedding_forward(const TensorView& out, const TensorView& ids, const TensorView& table,
                       Context& ctx);
void embedding_backward(const TensorView& dtable, const TensorView& dout, const TensorView& ids,
                        Context& ctx);
}  // namespace cpu
namespace cuda {
void embedding_forward(const TensorView& out, const TensorView& ids, const TensorView& table,
                       Context& ctx);
void embedding_backward(const TensorView& dtable, const TensorView& dout, const TensorView& ids,
                        Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
