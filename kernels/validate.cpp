// OpCheck: shared argument validation for op front-ends.
#include "kernels/validate.h"

namespace r1kit::kernels {

void OpCheck::fail(const std::string& message) const {
  throw Error(fmt::format("[{}] {}", op_, message));
}

void OpCheck::require(bool cond, const std::string& message) const {
  if (!cond) fail(message);
}

void OpCheck::shape(const TensorView& v, std::initializer_list<int64_t> dims,
                    const char* role) const {
  bool ok = v.ndim == static_cast<int>(dims.size());
  int i = 0;
  std::string want = "(";
  for (int64_t d : dims) {
    if (i) want += ", ";
    want += d == kAny ? "*" : std::to_string(d);
    if (ok && d != kAny && v.shape[i] != d) ok = false;
    ++i;
  }
  want += ")";
  if (!ok) fail(fmt::format("{} {} must have shape {}", role, v.describe(), want));
}

void OpCheck::ndim(const TensorView& v, int n, const char* role) const {
  if (v.ndim != n) fail(fmt::format("{} {} must have {} dims", role, v.describe(), n));
}

void OpCheck::ndim_between(const TensorView& v, int lo, int hi, const char* role) const {
  if (v.ndim < lo || v.ndim > hi)
    fail(fmt::format("{} {} must have {} to {} dims", role, v.describe(), lo, hi));
}

void OpCheck::same_shape(const TensorView& a, const char* ra, const TensorView& b,
                         const char* rb) const {
  bool ok = a.ndim == b.ndim;
  for (int i = 0; ok && i < a.ndim; ++i) ok = a.shape[i] == b.shape[i];
  if (!ok)
    fail(fmt::format("{} {} and {} {} must have the same shape", ra, a.describe(), rb,
                     b.describe()));
}

void OpCheck::float_dtype(const TensorView& v, const char* role) const {
  if (v.dtype != DType::f32 && v.dtype != DType::f64 && v.dtype != DType::bf16 &&
      v.dtype != DType::f16)
    fail(fmt::format("{} {} must be f32, f64, bf16 or f16", role, v.describe()));
}

void OpCheck::dtype(const TensorView& v, DType t, const char* role) const {
  if (v.dtype != t) fail(fmt::format("{} {} must be {}", role, v.describe(), dtype_name(t)));
}

void OpCheck::same_dtype(const TensorView& a, const char* ra, const TensorView& b,
                         const char* rb) const {
  if (a.dtype != b.dtype)
    fail(fmt::format("{} {} and {} {} must have the same dtype", ra, a.describe(), rb,
                     b.describe()));
}

void OpCheck::contiguous(const TensorView& v, const char* role) const {
  if (!v.is_contiguous()) fail(fmt::format("{} {} must be contiguous", role, v.describe()));
}

void OpCheck::on_device(const TensorView& v, const char* role) const {
  if (!(v.device == ctx_.device()))
    fail(fmt::format("{} {} is not on the context's device {}", role, v.describe(),
                     ctx_.device().str()));
  if (v.data == nullptr && v.numel() > 0)
    fail(fmt::format("{} {} has no storage", role, v.describe()));
}

void OpCheck::no_alias(const TensorView& a, const char* ra, const TensorView& b,
                       const char* rb) const {
  if (a.overlaps(b))
    fail(fmt::format("{} {} must not overlap {} {}", ra, a.describe(), rb, b.describe()));
}

void OpCheck::same_precision(
    std::initializer_list<std::pair<const TensorView*, const char*>> args) const {
  const std::pair<const TensorView*, const char*>* first = nullptr;
  for (const auto& a : args) {
    if (!first) {
      first = &a;
      continue;
    }
    if ((a.first->dtype == DType::f64) != (first->first->dtype == DType::f64))
      fail(fmt::format("{} {} and {} {} must both be f64 or both not f64", first->second,
                       first->first->describe(), a.second, a.first->describe()));
  }
}

void throw_no_cuda(const char* op) {
#if defined(R1KIT_WITH_CUDA)
  throw Error(fmt::format("[{}] has no CUDA kernel in this build yet; run it on the CPU", op));
#else
  throw Error(fmt::format("[{}] built without CUDA", op));
#endif
}

}  // namespace r1kit::kernels
