// Small host round trips of per-token statistics (f32 or f64 tensors): download to a host tensor,
// read an element as double, upload doubles in a given dtype. For the trainers' per-token
// arithmetic on the host (a few values per token; the heavy work stays on the device).
#pragma once

#include <cstdint>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "core/tensor.h"

namespace r1kit {

// A host copy of `t` (any device).
inline Tensor host_copy(const TensorView& t, Context& ctx) {
  Tensor h(t.dims(), t.dtype, ctx.host_allocator(), "host");
  ctx.copy(h, t);
  return h;
}

// Element i of a host f32 or f64 tensor, as double.
inline double host_value(const Tensor& t, int64_t i) {
  return t.dtype() == DType::f64 ? t.ptr<double>()[i] : static_cast<double>(t.ptr<float>()[i]);
}

// `values` as a tensor of shape `dims` and dtype `dt` (f32 or f64) on ctx's device.
inline Tensor upload_values(const std::vector<double>& values, Shape dims, DType dt, Context& ctx) {
  R1_CHECK(dt == DType::f32 || dt == DType::f64, "upload_values: f32 or f64, got {}",
           dtype_name(dt));
  Tensor h(dims, dt, ctx.host_allocator(), "host_values");
  R1_CHECK(h.numel() == static_cast<int64_t>(values.size()),
           "upload_values: {} values for {} elements", values.size(), h.numel());
  for (size_t i = 0; i < values.size(); ++i) {
    if (dt == DType::f64) {
      h.ptr<double>()[i] = values[i];
    } else {
      h.ptr<float>()[i] = static_cast<float>(values[i]);
    }
  }
  Tensor d = ctx.empty(dims, dt, "host_values");
  ctx.copy(d, h);
  return d;
}

}  // namespace r1kit
