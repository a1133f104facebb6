// CpuUpcast and dtype conversion for the CPU reference.
#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {
namespace {

// dst[i·dst_stride] = src[i·src_stride] for i < n, rounding to dst's dtype.
void convert_run(void* dst, DType dst_dtype, int64_t dst_stride, const void* src, DType src_dtype,
                 int64_t src_stride, int64_t n) {
  if (dst_stride == 1 && src_stride == 1) {
    if (dst_dtype == DType::f32 && src_dtype == DType::bf16) {
      auto* d = static_cast<float*>(dst);
      auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) d[i] = bf16_bits_to_f32(s[i]);
      return;
    }
    if (dst_dtype == DType::bf16 && src_dtype == DType::f32) {
      auto* d = static_cast<uint16_t*>(dst);
      auto* s = static_cast<const float*>(src);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16_bits(s[i]);
      return;
    }
  }
  for (int64_t i = 0; i < n; ++i)
    store_from_double(dst, dst_dtype, static_cast<size_t>(i * dst_stride),
                      load_as_double(src, src_dtype, static_cast<size_t>(i * src_stride)));
}

}  // namespace

void convert(const TensorView& dst, const TensorView& src) {
  if (src.empty()) return;
  if (dst.is_contiguous() && src.is_contiguous())
    return convert_run(dst.data, dst.dtype, 1, src.data, src.dtype, 1, src.numel());
  // One run per row of the last dim (ndim >= 1: a 0-dim view is contiguous), located through
  // the strides of the other dims.
  const int last = src.ndim - 1;
  const int64_t len = src.shape[last], rows = src.numel() / len;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rem = r, od = 0, os = 0;
    for (int d = last - 1; d >= 0; --d) {
      const int64_t i = rem % src.shape[d];
      rem /= src.shape[d];
      od += i * dst.stride[d];
      os += i * src.stride[d];
    }
    convert_run(dst.element(od), dst.dtype, dst.stride[last], src.element(os), src.dtype,
                src.stride[last], len);
  }
}

TensorView CpuUpcast::make(const TensorView& v, bool copy_in, bool write_back) {
  if (!v.defined() || (v.dtype != DType::bf16 && v.dtype != DType::f16)) return v;
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
TensorView CpuUpcast::grad(const TensorView& v, GradWrite w) {
  return w == GradWrite::accumulate ? inout(v) : out(v);
}

void CpuUpcast::finish() {
  for (auto& [orig, s] : write_back_) convert(orig, s);
  write_back_.clear();
}

}  // namespace r1kit::kernels::cpu
