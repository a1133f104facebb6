// Front-end validation helpers. Every op checks shapes, dtypes, devices and aliasing once, in its
// front-end, and throws r1kit::Error with an "[op]"-prefixed message that prints the shapes:
//   [rmsnorm] w 'model.norm.weight' (8) must have shape (7) to match x 'h' (4, 7)
// Backends (kernels/cpu, kernels/cuda) trust their inputs and never re-validate.
#pragma once

#include <concepts>

#include <initializer_list>
#include <string>
#include <utility>

#include "core/context.h"
#include "core/tensor.h"

namespace r1kit::kernels {

constexpr int64_t kAny = -1;  // wildcard in expected shapes

// The gradient write rule (kernels/README.md): parameter gradients accumulate (+=), activation
// gradients overwrite (=), except the residual stream, which accumulates. Backward ops whose input
// gradient may belong to the residual stream take this switch for it.
enum class GradWrite : uint8_t { overwrite, accumulate };

// An argument and the role it plays in messages ("x", "dw").
using NamedView = std::pair<const TensorView*, const char*>;

// Whether two views share memory. Exact for views with the same row pitch (dim 0 stride, in
// bytes) whose rows each fit in one pitch, e.g. column slices of one fused (T, C) buffer, which
// are disjoint when their column bands do not meet modulo the pitch; otherwise the conservative
// span test of TensorView::overlaps. Views that are not defined() or are empty overlap nothing.
bool views_overlap(const TensorView& a, const TensorView& b);

class OpCheck {
 public:
  OpCheck(const char* op, const Context& ctx) : op_(op), ctx_(ctx) {}

  const char* op() const { return op_; }
  // v has exactly these dims (kAny matches any size); `role` names the argument ("x", "dw").
  void shape(const TensorView& v, std::initializer_list<int64_t> dims, const char* role) const;
  void ndim(const TensorView& v, int n, const char* role) const;
  void ndim_between(const TensorView& v, int lo, int hi, const char* role) const;
  // Same shape as another argument.
  void same_shape(const TensorView& a, const char* ra, const TensorView& b, const char* rb) const;
  // A floating dtype the kernels compute in: f32, f64, bf16 or f16.
  void float_dtype(const TensorView& v, const char* role) const;
  void dtype(const TensorView& v, DType t, const char* role) const;
  // f32 or f64: per-row statistics, tables, master weights.
  void f32_or_f64(const TensorView& v, const char* role) const;
  void same_dtype(const TensorView& a, const char* ra, const TensorView& b, const char* rb) const;
  void contiguous(const TensorView& v, const char* role) const;
  // A float view of n dims, on device, with unit stride in its last dim; the other dims may have
  // any non-negative strides (heads sliced out of a fused projection, the rope part of a head).
  void row_view(const TensorView& v, int n, const char* role) const;
  // No two indices of v reach the same element (required of a strided output): walking the dims
  // by increasing stride, each stride must clear the extent of the dims before it.
  void no_self_overlap(const TensorView& v, const char* role) const;
  // Lives on the context's device.
  void on_device(const TensorView& v, const char* role) const;
  // Distinct memory (an output may not alias an input unless the op says in-place is allowed);
  // exact for column slices of one buffer (views_overlap).
  void no_alias(const TensorView& a, const char* ra, const TensorView& b, const char* rb) const;
  // In place: out may be exactly in (same memory, dtype, shape and strides, so every element is
  // read before it is written) but must not overlap it otherwise.
  void in_place_or_no_alias(const TensorView& out, const char* rout, const TensorView& in,
                            const char* rin) const;
  // Outputs overlap neither each other nor any input. Optional arguments that are not defined()
  // overlap nothing, so they may be listed as they are.
  void outputs_distinct(std::initializer_list<NamedView> outputs,
                        std::initializer_list<NamedView> inputs = {}) const;
  // The usual bundle for a tensor argument: on device, contiguous, float.
  void float_arg(const TensorView& v, const char* role) const {
    on_device(v, role);
    contiguous(v, role);
    float_dtype(v, role);
  }
  void int_arg(const TensorView& v, const char* role) const {
    on_device(v, role);
    contiguous(v, role);
    dtype(v, DType::i32, role);
  }
  // The CPU reference computes in double when tensors are f64 and in float otherwise, so float
  // arguments must be either all f64 or none f64.
  void same_precision(std::initializer_list<NamedView> args) const;
  void require(bool cond, const std::string& message) const;
  // The same with the message made only on failure (front-ends run per call, often in loops: an
  // eager fmt::format of tensor descriptions costs more than many kernels).
  template <class F>
  requires std::invocable<F&>
  void require(bool cond, F&& message) const {
    if (!cond) [[unlikely]]
      fail(std::string(message()));
  }
  [[noreturn]] void fail(const std::string& message) const;

 private:
  const char* op_;
  const Context& ctx_;
};

// Thrown by the CUDA entry points (kernels/nocuda/) in a build without CUDA.
[[noreturn]] void throw_no_cuda(const char* op);

}  // namespace r1kit::kernels
