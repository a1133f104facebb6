// Paged attention front-ends: validation of the q/out/cache views, head counts, the index arrays'
// values (offsets, cached lengths, block tables long enough and in range, cache slots), aliasing,
// then the device switch.
#include "kernels/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace r1kit::kernels {
namespace {

// An i32 index array on the host or the context's device, as a host pointer; a device array is
// copied into `keep` (synchronising the stream).
const int32_t* host_ints(const OpCheck& c, const TensorView& v, int n, const char* role,
                         Tensor& keep, Context& ctx) {
  if (!v.device.is_cpu()) c.on_device(v, role);
  c.contiguous(v, role);
  c.dtype(v, DType::i32, role);
  c.ndim(v, n, role);
  if (v.device.is_cpu()) return v.ptr<int32_t>();
  keep = Tensor(v.dims(), DType::i32, ctx.host_allocator(), v.name);
  ctx.copy(keep, v);
  return keep.ptr<int32_t>();
}

// The view a CUDA backend reads an index array from: the caller's device copy when given (checked
// to be an i32 device array of the host array's shape), else the array itself.
TensorView device_copy(const OpCheck& c, const TensorView& dev, const TensorView& v, Context& ctx) {
  if (!dev.defined() || !ctx.is_cuda()) return v;
  c.on_device(dev, "device index");
  c.contiguous(dev, "device index");
  c.dtype(dev, DType::i32, "device index");
  c.require(dev.dims() == v.dims(), [&] {
    return fmt::format("the device copy {} must have the shape of {}", dev.describe(),
                       v.describe());
  });
  return dev;
}

}  // namespace

void paged_attention_forward(const TensorView& out, const TensorView& q, const TensorView& k_cache,
                             const TensorView& v_cache, const TensorView& block_tables,
                             const TensorView& cu_seqlens, const TensorView& cached_lens,
                             double scale, Context& ctx, const PagedDeviceIndex& device) {
  OpCheck c("paged_attention", ctx);
  c.row_view(q, 3, "q");
  c.row_view(k_cache, 4, "k_cache");
  c.row_view(v_cache, 4, "v_cache");
  c.row_view(out, 3, "out");
  const int64_t t = q.shape[0], hq = q.shape[1], dqk = q.shape[2];
  const int64_t nb = k_cache.shape[0], bs = k_cache.shape[1], hkv = k_cache.shape[2];
  const int64_t dv = v_cache.shape[3];
  c.shape(k_cache, {nb, bs, hkv, dqk}, "k_cache (NB, BS, Hkv, Dqk)");
  c.shape(v_cache, {nb, bs, hkv, kAny}, "v_cache (NB, BS, Hkv, Dv)");
  c.shape(out, {t, hq, dv}, "out (T, Hq, Dv)");
  c.require(hq > 0 && hkv > 0 && hq % hkv == 0, [&] {
    return fmt::format(
        "query heads Hq = {} of q {} must be a positive multiple of the kv heads "
        "Hkv = {} of k_cache {}",
        hq, q.describe(), hkv, k_cache.describe());
  });
  c.require(dqk > 0 && dv > 0 && bs > 0, [&] {
    return fmt::format(
        "head dims of q {} and v_cache {} and the block size of k_cache {} must be "
        "> 0",
        q.describe(), v_cache.describe(), k_cache.describe());
  });
  c.require(std::isfinite(scale), [&] { return fmt::format("scale {} must be finite", scale); });
  c.no_self_overlap(out, "out");
  c.same_precision({{&out, "out"}, {&q, "q"}, {&k_cache, "k_cache"}, {&v_cache, "v_cache"}});
  c.outputs_distinct({{&out, "out"}}, {{&q, "q"}, {&k_cache, "k_cache"}, {&v_cache, "v_cache"}});

  Tensor keep_tbl, keep_cu, keep_len;
  PagedIndexHost idx;
  idx.block_tables = host_ints(c, block_tables, 2, "block_tables", keep_tbl, ctx);
  idx.cu_seqlens = host_ints(c, cu_seqlens, 1, "cu_seqlens", keep_cu, ctx);
  idx.cached_lens = host_ints(c, cached_lens, 1, "cached_lens", keep_len, ctx);
  idx.num_seqs = cached_lens.shape[0];
  idx.table_width = block_tables.shape[1];
  const int64_t b_n = idx.num_seqs;
  c.require(cu_seqlens.shape[0] == b_n + 1 && block_tables.shape[0] == b_n, [&] {
    return fmt::format(
        "cu_seqlens {} must have B+1 and block_tables {} B rows for the B = {} "
        "sequences of cached_lens {}",
        cu_seqlens.describe(), block_tables.describe(), b_n, cached_lens.describe());
  });
  const int32_t* cu = idx.cu_seqlens;
  c.require(cu[0] == 0, [&] {
    return fmt::format("cu_seqlens {} must start at 0; cu_seqlens[0] = {}", cu_seqlens.describe(),
                       cu[0]);
  });
  c.require(cu[b_n] == t, [&] {
    return fmt::format(
        "cu_seqlens {} must end at T = {} (rows of q); "
        "cu_seqlens[{}] = {}",
        cu_seqlens.describe(), t, b_n, cu[b_n]);
  });
  for (int64_t b = 0; b < b_n; ++b) {
    c.require(cu[b + 1] >= cu[b], [&] {
      return fmt::format(
          "cu_seqlens {} must be non-decreasing; cu_seqlens[{}] = {} < "
          "cu_seqlens[{}] = {}",
          cu_seqlens.describe(), b + 1, cu[b + 1], b, cu[b]);
    });
    const int64_t len = idx.cached_lens[b];
    c.require(len >= 0, [&] { return fmt::format("cached_lens[{}] = {} must be >= 0", b, len); });
    const int64_t total = len + cu[b + 1] - cu[b], need = (total + bs - 1) / bs;
    c.require(need <= idx.table_width, [&] {
      return fmt::format(
          "sequence {} covers {} positions ({} cached + {} new), which need {} "
          "blocks of {} slots; block_tables {} has {} per sequence",
          b, total, len, cu[b + 1] - cu[b], need, bs, block_tables.describe(), idx.table_width);
    });
    for (int64_t j = 0; j < need; ++j) {
      const int32_t blk = idx.block_tables[b * idx.table_width + j];
      c.require(blk >= 0 && blk < nb, [&] {
        return fmt::format("block_tables[{}, {}] = {} is not a block of k_cache {} (NB = {})", b, j,
                           blk, k_cache.describe(), nb);
      });
    }
  }
  if (ctx.is_cuda())
    return cuda::paged_attention_forward(
        out, q, k_cache, v_cache, device_copy(c, device.block_tables, block_tables, ctx),
        device_copy(c, device.cu_seqlens, cu_seqlens, ctx),
        device_copy(c, device.cached_lens, cached_lens, ctx), idx, scale, ctx);
  cpu::paged_attention_forward(out, q, k_cache, v_cache, idx, scale, ctx);
}

void paged_cache_write(const TensorView& cache, const TensorView& src, const TensorView& slots,
                       Context& ctx, const TensorView& slots_device) {
  OpCheck c("paged_cache_write", ctx);
  c.row_view(cache, 4, "cache");
  c.row_view(src, 3, "src");
  c.no_self_overlap(cache, "cache");
  const int64_t n = src.shape[0], nb = cache.shape[0], bs = cache.shape[1];
  c.shape(src, {n, cache.shape[2], cache.shape[3]}, "src (N, H, D) to match cache (NB, BS, H, D)");
  c.same_dtype(src, "src", cache, "cache");
  c.no_alias(cache, "cache", src, "src");
  Tensor keep;
  const int32_t* s = host_ints(c, slots, 1, "slots", keep, ctx);
  c.shape(slots, {n}, "slots (N)");
  std::vector<int32_t> sorted(s, s + n);
  for (int64_t i = 0; i < n; ++i)
    c.require(s[i] >= 0 && s[i] < nb * bs, [&] {
      return fmt::format("slots[{}] = {} is outside cache {} ({} blocks of {} slots)", i, s[i],
                         cache.describe(), nb, bs);
    });
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  c.require(dup == sorted.end(), [&] {
    return fmt::format("slots {} names slot {} twice; each row needs its own slot",
                       slots.describe(), dup == sorted.end() ? 0 : *dup);
  });
  if (n == 0) return;
  if (ctx.is_cuda())
    return cuda::paged_cache_write(cache, src, device_copy(c, slots_device, slots, ctx), ctx);
  cpu::paged_cache_write(cache, src, s, ctx);
}

}  // namespace r1kit::kernels
