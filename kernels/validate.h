// Front-end validation helpers. Every op checks shapes, dtypes, devices and aliasing once, in its
// front-end, and throws r1kit::Error with an "[op]"-prefixed message that prints the shapes:
//   [rmsnorm] w 'model.norm.weight' (8) must have shape (7) to match x 'h' (4, 7)
// Backends (kernels/cpu, kernels/cuda) trust their inputs and never re-validate.
#pragma once

#include <initializer_list>
#include <string>

#include "core/context.h"
#include "core/tensor.h"

namespace r1kit::kernels {

constexpr int64_t kAny = -1;  // wildcard in expected shapes

// The gradient write rule (kernels/README.md): parameter gradients accumulate (+=), activation
// gradients overwrite (=), except the residual stream, which accumulates. Backward ops whose input
// gradient may belong to the residual stream take this switch for it.
enum class GradWrite : uint8_t { overwrite, accumulate };

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
  void same_dtype(const TensorView& a, const char* ra, const TensorView& b, const char* rb) const;
  void contiguous(const TensorView& v, const char* role) const;
  // Lives on the context's device.
  void on_device(const TensorView& v, const char* role) const;
  // Distinct buffers (an output may not alias an input unless the op says in-place is allowed).
  void no_alias(const TensorView& a, const char* ra, const TensorView& b, const char* rb) const;
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
  void same_precision(std::initializer_list<std::pair<const TensorView*, const char*>> args) const;
  void require(bool cond, const std::string& message) const;
  [[noreturn]] void fail(const std::string& message) const;

 private:
  const char* op_;
  const Context& ctx_;
};

// Thrown by the CUDA entry points of ops whose CUDA kernel is not in this build.
[[noreturn]] void throw_no_cuda(const char* op);

}  // namespace r1kit::kernels
