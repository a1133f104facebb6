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

}  // namespace

void embedding_forward(const TensorView& out, const TensorView& ids, const TensorView& table,
                       Context& ctx) {
  OpCheck c("embedding", ctx);
  c.float_arg(out, "out");
  c.int_arg(ids, "ids");
  c.float_arg(table, "table");
  c.ndim(ids, 1, "ids");
  c.ndim(table, 2, "table");
  c.shape(out, {ids.shape[0], table.shape[1]}, "out");
  c.same_precision({{&out, "out"}, {&table, "table"}});
  c.no_alias(out, "out", table, "table");
  c.no_alias(out, "out", ids, "ids");
  check_ids(c, ids, table, ctx);
  if (ctx.is_cuda()) return cuda::embedding_forward(out, ids, table, ctx);
  cpu::embedding_forward(out, ids, table, ctx);
}

void embedding_backward(const TensorView& dtable, const TensorView& dout, const TensorView& ids,
                        Context& ctx) {
  OpCheck c("embedding_backward", ctx);
  c.float_arg(dtable, "dtable");
  c.float_arg(dout, "dout");
  c.int_arg(ids, "ids");
  c.ndim(ids, 1, "ids");
  c.ndim(dtable, 2, "dtable");
  c.shape(dout, {ids.shape[0], dtable.shape[1]}, "dout");
  c.same_precision({{&dtable, "dtable"}, {&dout, "dout"}});
  c.no_alias(dtable, "dtable", dout, "dout");
  c.no_alias(dtable, "dtable", ids, "ids");
  check_ids(c, ids, dtable, ctx);
  if (ctx.is_cuda()) return cuda::embedding_backward(dtable, dout, ids, ctx);
  cpu::embedding_backward(dtable, dout, ids, ctx);
}

}  // namespace r1kit::kernels
