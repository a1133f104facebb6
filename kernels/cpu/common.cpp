// CpuUpcast and dtype conversion for the CPU reference.
#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {

void convert(const TensorView& dst, const TensorView& src) {
  const int64_t n = src.numel();
  if (dst.dtype == DType::f32 && src.dtype == DType::bf16) {
    auto* d = dst.ptr<float>();
    auto* s = src.ptr<uint16_t>();
    for (int64_t i = 0; i < n; ++i) d[i] = bf16_bits_to_f32(s[i]);
    return;
  }
  if (dst.dtype == DType::bf16 && src.dtype == DType::f32) {
    auto* d = dst.ptr<uint16_t>();
    auto* s = src.ptr<float>();
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16_bits(s[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    store_from_double(dst.data, dst.dtype, static_cast<size_t>(i),
                      load_as_double(src.data, src.dtype, static_cast<size_t>(i)));
}

TensorView CpuUpcast::make(const TensorView& v, bool copy_in, bool write_back) {
  if (v.dtype != DType::bf16 && v.dtype != DType::f16) return v;
  scratch_.push_back(ctx_.host_allocator().device() == v.device
                         ? Tensor(v.dims(), DType::f32, ctx_.host_allocator(), v.name)
                         : Tensor());
  TensorView s = scratch_.back().view();
  if (copy_in) convert(s, v);
  if (write_back) write_back_.emplace_back(v, s);
  return s;
}

TensorView CpuUpcast::in(const TensorView& v) {
  return make(v, true, false);
}
TensorView CpuUpcast::out(const TensorView& v) {
  return make(v, false, true);
}
TensorView CpuUpcast::inout(const TensorView& v) {
  return make(v, true, true);
}

void CpuUpcast::finish() {
  for (auto& [orig, s] : write_back_) convert(orig, s);
  write_back_.clear();
}

}  // namespace r1kit::kernels::cpu
