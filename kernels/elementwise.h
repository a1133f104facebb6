// Elementwise ops on same-shape contiguous tensors (any rank up to 4): add and mul with their
// backward, axpy (the residual accumulate), scale, cast between float dtypes, fill, and a strided
// copy.
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// y = a + b. y may be a or b itself (in place); a partial overlap is an error.
void add_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx);

// da = dy, db = dy, each overwritten (=) or, with GradWrite::accumulate, added (+=): the write
// rule is that parameter gradients accumulate (+=), activation gradients overwrite (=), except the
// residual stream, which accumulates. da or db may be an empty TensorView{} to skip it.
void add_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  GradWrite da_write, GradWrite db_write, Context& ctx);

// y += alpha · x (the residual accumulate). y may be x itself.
void axpy(const TensorView& y, double alpha, const TensorView& x, Context& ctx);

// y = a · b. y may be a or b itself.
void mul_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx);

// da = dy · b, db = dy · a (activation gradients: overwrite (=); the write rule is that parameter
// gradients accumulate (+=), activation gradients overwrite (=), except the residual stream,
// which accumulates). da or db may be an empty TensorView{} to skip it.
void mul_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  const TensorView& a, const TensorView& b, Context& ctx);

// y = alpha · x. y may be x itself.
void scale(const TensorView& y, double alpha, const TensorView& x, Context& ctx);

// dst = src converted between f64/f32/bf16/f16, rounding to nearest even (NaN stays NaN, values
// beyond the range become ±inf).
void cast(const TensorView& dst, const TensorView& src, Context& ctx);

// y = value (rounded to y's dtype) everywhere.
void fill(const TensorView& y, double value, Context& ctx);

// dst = src for two views of one shape with any strides (heads sliced out of a fused buffer, a
// column band, cache rows), converting between float dtypes as cast does. dst must not overlap
// src, and no two of its elements may share memory.
void copy(const TensorView& dst, const TensorView& src, Context& ctx);

namespace cpu {
void add_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx);
void add_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  GradWrite da_write, GradWrite db_write, Context& ctx);
void axpy(const TensorView& y, double alpha, const TensorView& x, Context& ctx);
void mul_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx);
void mul_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  const TensorView& a, const TensorView& b, Context& ctx);
void scale(const TensorView& y, double alpha, const TensorView& x, Context& ctx);
void cast(const TensorView& dst, const TensorView& src, Context& ctx);
void fill(const TensorView& y, double value, Context& ctx);
void copy(const TensorView& dst, const TensorView& src, Context& ctx);
}  // namespace cpu
namespace cuda {
void add_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx);
void add_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  GradWrite da_write, GradWrite db_write, Context& ctx);
void axpy(const TensorView& y, double alpha, const TensorView& x, Context& ctx);
void mul_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx);
void mul_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  const TensorView& a, const TensorView& b, Context& ctx);
void scale(const TensorView& y, double alpha, const TensorView& x, Context& ctx);
void cast(const TensorView& dst, const TensorView& src, Context& ctx);
void fill(const TensorView& y, double value, Context& ctx);
void copy(const TensorView& dst, const TensorView& src, Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
