// Embedding front-ends: validation (including the id range on the CPU), then the device switch.
#include "kernels/embedding.h"

namespace r1kit::kernels {
namespace {

// Every id must index a row of the table. Only host memory can be read here; on CUDA the kernel
// checks on the device.
void check_ids(const OpCheck& c, const TensorView& ids, const TensorView& table, Context& ctx) {
  if (ctx.is_cuda()) return;
  const int64_t v = table.shape[0];
  const int32_t* p = ids.ptr<int32_t>();
  for (int64_t i = 0; i < ids.numel(); ++i)
    if (p[i] < 0 || p[i] >= v)
      c.fail(fmt::format("id {} at position {} of ids {} is out of range for table {} (V = {})",
                         p[i], i, ids.describe(), table.describe(), v));
}

// rows (N, C) gathered from or scattered into table (V, C) by ids (N) i32.
void check_lookup(const OpCheck& c, const TensorView& rows, const char* rows_role,
                  const TensorView& table, const char* table_role, const TensorView& ids) {
  c.float_arg(rows, rows_role);
  c.float_arg(table, table_role);
  c.int_arg(ids, "ids");
  c.ndim(ids, 1, "ids");
  c.ndim(table, 2, table_role);
  c.shape(rows, {ids.shape[0], table.shape[1]}, rows_role);
  c.same_precision({{&rows, rows_role}, {&table, table_role}});
}

}  // namespace

void embedding_forward(const TensorView& out, const TensorView& ids, const TensorView& table,
                       Context& ctx) {
  OpCheck c("embedding", ctx);
  check_lookup(c, out, "out", table, "table", ids);
  c.outputs_distinct({{&out, "out"}}, {{&table, "table"}, {&ids, "ids"}});
  check_ids(c, ids, table, ctx);
  if (ctx.is_cuda()) return cuda::embedding_forward(out, ids, table, ctx);
  cpu::embedding_forward(out, ids, table, ctx);
}

void embedding_backward(const TensorView& dtable, const TensorView& dout, const TensorView& ids,
                        Context& ctx) {
  OpCheck c("embedding_backward", ctx);
  check_lookup(c, dout, "dout", dtable, "dtable", ids);
  c.outputs_distinct({{&dtable, "dtable"}}, {{&dout, "dout"}, {&ids, "ids"}});
  check_ids(c, ids, dtable, ctx);
  if (ctx.is_cuda()) return cuda::embedding_backward(dtable, dout, ids, ctx);
  cpu::embedding_backward(dtable, dout, ids, ctx);
}

}  // namespace r1kit::kernels
