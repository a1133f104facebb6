// Embedding CPU reference: the lookup copies rows (converting only when dtypes differ); the
// backward groups positions by id so each table row is summed once, in double, without races.
#include "kernels/embedding.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {

void embedding_forward(const TensorView& out, const TensorView& ids, const TensorView& table,
                       Context& ctx) {
  const int64_t n = ids.shape[0], ch = table.shape[1];
  const int32_t* id = ids.ptr<int32_t>();
  const size_t in_row = static_cast<size_t>(ch) * dtype_size(table.dtype);
  const size_t out_row = static_cast<size_t>(ch) * dtype_size(out.dtype);
  // out[i, :] = table[ids[i], :]; a bf16 table into bf16 out is a plain copy (no upcast of V·C).
  ctx.pool().parallel_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const char* src = static_cast<const char*>(table.data) + id[i] * in_row;
      char* dst = static_cast<char*>(out.data) + i * out_row;
      if (table.dtype == out.dtype) {
        std::memcpy(dst, src, in_row);
      } else {
        for (int64_t j = 0; j < ch; ++j)
          store_from_double(dst, out.dtype, static_cast<size_t>(j),
                            load_as_double(src, table.dtype, static_cast<size_t>(j)));
      }
    }
  });
}

void embedding_backward(const TensorView& dtable_, const TensorView& dout_, const TensorView& ids,
                        Context& ctx) {
  CpuUpcast up(ctx);
  TensorView dout = up.in(dout_), dtable = up.inout(dtable_);
  const int64_t n = ids.shape[0], ch = dtable.shape[1];
  const int32_t* id = ids.ptr<int32_t>();
  // Positions sorted by (id, position): each run is one table row, summed in position order.
  std::vector<std::pair<int32_t, int64_t>> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = {id[i], i};
  std::sort(order.begin(), order.end());
  std::vector<int64_t> run_start;  // index into order where each distinct id begins
  for (int64_t i = 0; i < n; ++i)
    if (i == 0 || order[static_cast<size_t>(i)].first != order[static_cast<size_t>(i - 1)].first)
      run_start.push_back(i);
  run_start.push_back(n);
  const int64_t runs = static_cast<int64_t>(run_start.size()) - 1;
  dispatch_float(dtable.dtype, [&](auto tag) {
    using T = decltype(tag);
    ctx.pool().parallel_for(runs, 16, [&](int64_t b, int64_t e) {
      std::vector<double> acc(static_cast<size_t>(ch));
      for (int64_t r = b; r < e; ++r) {
        std::fill(acc.begin(), acc.end(), 0.0);
        // dtable[v, :] += Σ_{n : ids[n] = v} dout[n, :]
        for (int64_t p = run_start[r]; p < run_start[r + 1]; ++p) {
          const T* d = dout.ptr<T>() + order[static_cast<size_t>(p)].second * ch;
          for (int64_t j = 0; j < ch; ++j) acc[static_cast<size_t>(j)] += d[j];
        }
        T* row = dtable.ptr<T>() + static_cast<int64_t>(order[run_start[r]].first) * ch;
        for (int64_t j = 0; j < ch; ++j) row[j] = static_cast<T>(row[j] + acc[j]);
      }
    });
  });
  up.finish();
}

}  // namespace r1kit::kernels::cpu
