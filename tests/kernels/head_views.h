// Test helpers for (T, H, D) head views with unit stride in D and strided rows and heads, as the
// rope and attention ops take them: column slices of a fused (T, C) projection, and reading them
// back in row-major order.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace r1kit::testing {

// A (T, H, D) view of columns [col, col + H·D) of a contiguous (T, C) tensor.
inline TensorView head_view(const TensorView& base, int64_t col, int64_t heads, int64_t dim,
                            std::string name) {
  TensorView v = base;
  v.data = static_cast<char*>(base.data) + col * static_cast<int64_t>(dtype_size(base.dtype));
  v.ndim = 3;
  v.shape = {base.shape[0], heads, dim, 0};
  v.stride = {base.shape[1], dim, 1, 0};
  v.name = std::move(name);
  return v;
}

// Values of any (T, H, D) view in row-major order.
inline std::vector<double> gather_heads(const TensorView& v) {
  std::vector<double> out;
  for (int64_t t = 0; t < v.shape[0]; ++t)
    for (int64_t h = 0; h < v.shape[1]; ++h)
      for (int64_t d = 0; d < v.shape[2]; ++d)
        out.push_back(load_as_double(v.data, v.dtype,
                                     static_cast<size_t>(t * v.stride[0] + h * v.stride[1] + d)));
  return out;
}

}  // namespace r1kit::testing
