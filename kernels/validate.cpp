// OpCheck: shared argument validation for op front-ends.
#include "kernels/validate.h"

#include <array>

namespace r1kit::kernels {
namespace {

std::string strides_str(const TensorView& v) {
  return shape_str(v.stride.data(), v.ndim);
}

// Same memory, dtype and shape, and the same stride wherever the stride matters (size > 1).
bool same_elements(const TensorView& a, const TensorView& b) {
  if (a.data != b.data || a.dtype != b.dtype || a.ndim != b.ndim) return false;
  for (int d = 0; d < a.ndim; ++d)
    if (a.shape[d] != b.shape[d] || (a.shape[d] > 1 && a.stride[d] != b.stride[d])) return false;
  return true;
}

// Bytes from the start of a row of v (dims 1..) to one past its last element, or -1 when the row
// is not laid out forward (a negative stride).
int64_t row_width_bytes(const TensorView& v) {
  int64_t last = 0;
  for (int d = 1; d < v.ndim; ++d) {
    if (v.stride[d] < 0) return -1;
    last += (v.shape[d] - 1) * v.stride[d];
  }
  return (last + 1) * static_cast<int64_t>(dtype_size(v.dtype));
}

}  // namespace

bool views_overlap(const TensorView& a, const TensorView& b) {
  if (!a.overlaps(b)) return false;
  if (a.ndim < 2 || b.ndim < 2) return true;
  const int64_t pitch = a.stride[0] * static_cast<int64_t>(dtype_size(a.dtype));
  if (pitch <= 0 || pitch != b.stride[0] * static_cast<int64_t>(dtype_size(b.dtype))) return true;
  const int64_t wa = row_width_bytes(a), wb = row_width_bytes(b);
  if (wa < 0 || wb < 0 || wa > pitch || wb > pitch) return true;
  const int64_t delta = static_cast<const char*>(b.data) - static_cast<const char*>(a.data);
  const int64_t col = ((delta % pitch) + pitch) % pitch;  // b's band starts here within a row
  return col < wa || col + wb > pitch;
}

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

void OpCheck::f32_or_f64(const TensorView& v, const char* role) const {
  if (v.dtype != DType::f32 && v.dtype != DType::f64)
    fail(fmt::format("{} {} must be f32 or f64", role, v.describe()));
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

void OpCheck::row_view(const TensorView& v, int n, const char* role) const {
  on_device(v, role);
  float_dtype(v, role);
  ndim(v, n, role);
  if (v.shape[n - 1] > 1 && v.stride[n - 1] != 1)
    fail(fmt::format("{} {} must have {} (strides {})", role, v.describe(),
                     n == 2 ? "unit column stride" : "unit stride in its last dim",
                     strides_str(v)));
  for (int d = 0; d < n - 1; ++d)
    if (v.stride[d] < 0)
      fail(fmt::format("{} {} has negative strides {}", role, v.describe(), strides_str(v)));
}

void OpCheck::no_self_overlap(const TensorView& v, const char* role) const {
  if (v.empty()) return;
  std::array<int, kMaxDims> order{};  // dims by increasing stride (insertion sort)
  for (int i = 0; i < v.ndim; ++i) {
    int j = i;
    for (; j > 0 && v.stride[order[j - 1]] > v.stride[i]; --j) order[j] = order[j - 1];
    order[j] = i;
  }
  int64_t extent = 0;  // largest offset reachable with the dims seen so far
  for (int i = 0; i < v.ndim; ++i) {
    const int d = order[i];
    if (v.shape[d] <= 1) continue;
    if (v.stride[d] <= extent)
      fail(
          fmt::format("{} {} overlaps itself (strides {}): each stride must clear the extent of "
                      "the smaller ones, e.g. a row stride >= the row width",
                      role, v.describe(), strides_str(v)));
    extent += (v.shape[d] - 1) * v.stride[d];
  }
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
  if (views_overlap(a, b))
    fail(fmt::format("{} {} must not overlap {} {}", ra, a.describe(), rb, b.describe()));
}

void OpCheck::in_place_or_no_alias(const TensorView& out, const char* rout, const TensorView& in,
                                   const char* rin) const {
  if (!same_elements(out, in) && views_overlap(out, in))
    fail(fmt::format("{} {} must be exactly {} {} (in place) or not overlap it", rout,
                     out.describe(), rin, in.describe()));
}

void OpCheck::outputs_distinct(std::initializer_list<NamedView> outputs,
                               std::initializer_list<NamedView> inputs) const {
  for (auto o = outputs.begin(); o != outputs.end(); ++o) {
    for (auto p = o + 1; p != outputs.end(); ++p)
      no_alias(*o->first, o->second, *p->first, p->second);
    for (const auto& [in, role] : inputs) no_alias(*o->first, o->second, *in, role);
  }
}

void OpCheck::same_precision(std::initializer_list<NamedView> args) const {
  const NamedView* first = nullptr;
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
  throw Error(fmt::format("[{}] built without CUDA; run it on a CPU context", op));
}

}  // namespace r1kit::kernels
