// Checkpoint reading (manifest → stored tensor, dtype conversion, FP8 block dequantisation, fused
// experts), atomic writing in the HF layout and random initialisation. Rules in
// policy/checkpoint.h.
#include "policy/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/context.h"
#include "core/error.h"
#include "core/fs.h"
#include "kernels/random.h"

namespace r1kit::policy {
namespace {

namespace fs = std::filesystem;

bool is_fp8(DType t) {
  return t == DType::f8_e4m3 || t == DType::f8_e5m2;
}
bool is_loadable_float(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16;
}
bool is_scale_dtype(DType t) {
  return is_loadable_float(t) || t == DType::f8_e8m0;
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Element i of a little-endian buffer of dtype t, as a double (exact for every float format).
// memcpy: views into a mapped file need not be aligned.
double read_element(const uint8_t* p, DType t, int64_t i) {
  switch (t) {
    case DType::f64: {
      double v;
      std::memcpy(&v, p + i * 8, 8);
      return v;
    }
    case DType::f32: {
      float v;
      std::memcpy(&v, p + i * 4, 4);
      return v;
    }
    case DType::bf16: {
      uint16_t b;
      std::memcpy(&b, p + i * 2, 2);
      return bf16_bits_to_f32(b);
    }
    case DType::f16: {
      uint16_t b;
      std::memcpy(&b, p + i * 2, 2);
      return f16_bits_to_f32(b);
    }
    case DType::f8_e4m3:
      return f8e4m3_bits_to_f32(p[i]);
    case DType::f8_e5m2:
      return f8e5m2_bits_to_f32(p[i]);
    case DType::f8_e8m0:
      return f8e8m0_bits_to_f32(p[i]);
    default:
      R1_THROW("read_element: {} is not a float dtype", dtype_name(t));
  }
}

// dst[i] = v rounded to dst's dtype (f32/f64/bf16/f16). f32 values reach bf16/f16 with one
// rounding; f64 values go through f32 first.
void write_element(void* dst, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f64:
      static_cast<double*>(dst)[i] = v;
      return;
    case DType::f32:
      static_cast<float*>(dst)[i] = static_cast<float>(v);
      return;
    case DType::bf16:
      static_cast<uint16_t*>(dst)[i] = f32_to_bf16_bits(static_cast<float>(v));
      return;
    case DType::f16:
      static_cast<uint16_t*>(dst)[i] = f32_to_f16_bits(static_cast<float>(v));
      return;
    default:
      R1_THROW("write_element: cannot store into {}", dtype_name(t));
  }
}

// dst[0, n) = src[0, n) converted; src may be unaligned. Fast paths for the common pairs.
void convert(void* dst, DType dt, const uint8_t* src, DType st, int64_t n) {
  if (dt == st) {
    std::memcpy(dst, src, static_cast<size_t>(n) * dtype_size(dt));
    return;
  }
  if (st == DType::bf16 && dt == DType::f32) {
    auto* d = static_cast<float*>(dst);
    for (int64_t i = 0; i < n; ++i) {
      uint16_t b;
      std::memcpy(&b, src + i * 2, 2);
      d[i] = bf16_bits_to_f32(b);
    }
    return;
  }
  if (st == DType::f32 && dt == DType::bf16) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) {
      float f;
      std::memcpy(&f, src + i * 4, 4);
      d[i] = f32_to_bf16_bits(f);
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) write_element(dst, dt, i, read_element(src, st, i));
}

// A read-only view of a stored tensor's bytes (dtype and shape from the header).
TensorView raw_view(const std::span<const uint8_t>& bytes, const SafetensorsTensorInfo& info) {
  TensorView v;
  v.data = const_cast<uint8_t*>(bytes.data());
  v.dtype = info.dtype;
  v.device = Device::cpu();
  v.name = info.name;
  // Only the leading element count matters to the readers below; keep the real shape when it fits.
  if (static_cast<int>(info.shape.size()) <= kMaxDims) {
    v.ndim = static_cast<int>(info.shape.size());
    int64_t stride = 1;
    for (int d = v.ndim - 1; d >= 0; --d) {
      v.shape[d] = info.shape[d];
      v.stride[d] = stride;
      stride *= info.shape[d];
    }
  }
  return v;
}

// The fused tensor holding routed expert `spec` (prefix "…mlp.experts."), or "" for others.
std::string fused_name(const ParamSpec& spec, StoredLayout* layout) {
  const std::string key = "mlp.experts.";
  auto p = spec.name.find(key);
  if (spec.expert < 0 || p == std::string::npos) return "";
  const std::string prefix = spec.name.substr(0, p + key.size());
  auto ends = [&](const char* s) {
    const std::string suffix = s;
    return spec.name.size() >= suffix.size() &&
           spec.name.compare(spec.name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends(".gate_proj.weight")) {
    *layout = StoredLayout::fused_gate;
    return prefix + "gate_up_proj";
  }
  if (ends(".up_proj.weight")) {
    *layout = StoredLayout::fused_up;
    return prefix + "gate_up_proj";
  }
  if (ends(".down_proj.weight")) {
    *layout = StoredLayout::fused_down;
    return prefix + "down_proj";
  }
  return "";
}

// Removes a directory tree on scope exit unless released.
class TempDirGuard {
 public:
  explicit TempDirGuard(fs::path p) : path_(std::move(p)) {}
  ~TempDirGuard() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  TempDirGuard(const TempDirGuard&) = delete;
  TempDirGuard& operator=(const TempDirGuard&) = delete;
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

// Publishes the finished directory `tmp` under `dir` in one rename.
static void publish_directory_impl(const fs::path& tmp, const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
#if defined(RENAME_EXCHANGE)
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
      fs::remove_all(tmp, ec);  // now the previous checkpoint
      fsync_dir(dir.parent_path().empty() ? fs::path(".") : dir.parent_path());
      return;
    }
#endif
    // No atomic exchange here: move the old directory aside, then rename (a crash in between
    // leaves the previous checkpoint under "<dir>.old.<pid>", never a partial one under `dir`).
    fs::path old = dir;
    old += ".old." + std::to_string(::getpid());
    fs::remove_all(old, ec);
    fs::rename(dir, old, ec);
    if (ec)
      R1_THROW("cannot move '{}' aside to '{}': {}", dir.string(), old.string(), ec.message());
    fs::rename(tmp, dir, ec);
    if (ec) R1_THROW("cannot rename '{}' to '{}': {}", tmp.string(), dir.string(), ec.message());
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp, dir, ec);
    if (ec) R1_THROW("cannot rename '{}' to '{}': {}", tmp.string(), dir.string(), ec.message());
  }
  fsync_dir(dir.parent_path().empty() ? fs::path(".") : dir.parent_path());
}

void publish_directory(const std::string& tmp, const std::string& dir) {
  publish_directory_impl(fs::path(tmp), fs::path(dir));
}

// ---- FP8
// -----------------------------------------------------------------------------------------

void dequantize_fp8_blocks(const TensorView& dst, const TensorView& q, const TensorView& scale_inv,
                           int64_t block_rows, int64_t block_cols, int64_t row_offset) {
  R1_CHECK(q.ndim == 2 && is_fp8(q.dtype),
           "[dequantize_fp8_blocks] q must be a 2-D f8 tensor, got {}", q.describe());
  R1_CHECK(dst.is_contiguous() && dst.device.is_cpu() && dst.dims() == q.dims() &&
               is_loadable_float(dst.dtype),
           "[dequantize_fp8_blocks] dst must be a contiguous host f32/f64/bf16/f16 tensor of shape "
           "{}, got {}",
           q.shape_string(), dst.describe());
  R1_CHECK(block_rows > 0 && block_cols > 0 && row_offset >= 0,
           "[dequantize_fp8_blocks] bad block size {} x {} or row offset {}", block_rows,
           block_cols, row_offset);
  const int64_t rows = q.size(0), cols = q.size(1);
  R1_CHECK(scale_inv.ndim == 2 && is_scale_dtype(scale_inv.dtype) &&
               scale_inv.size(0) >= ceil_div(row_offset + rows, block_rows) &&
               scale_inv.size(1) == ceil_div(cols, block_cols),
           "[dequantize_fp8_blocks] scales {} do not cover {} in {} x {} blocks (row offset {})",
           scale_inv.describe(), q.describe(), block_rows, block_cols, row_offset);
  const auto* qb = static_cast<const uint8_t*>(q.data);
  const auto* sb = static_cast<const uint8_t*>(scale_inv.data);
  const int64_t scols = scale_inv.size(1);
  std::vector<float> srow(static_cast<size_t>(scols));
  int64_t cached_block_row = -1;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t br = (row_offset + r) / block_rows;
    if (br != cached_block_row) {
      for (int64_t j = 0; j < scols; ++j)
        srow[j] = static_cast<float>(read_element(sb, scale_inv.dtype, br * scols + j));
      cached_block_row = br;
    }
    for (int64_t c = 0; c < cols; ++c) {
      const float x = static_cast<float>(read_element(qb, q.dtype, r * cols + c));
      const float y = x * srow[c / block_cols];  // f32 product, as DeepSeek's weight_dequant
      write_element(dst.data, dst.dtype, r * cols + c, y);
    }
  }
}

// ---- Reading
// ---------------------------------------------------------------------------------------

Checkpoint Checkpoint::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    R1_THROW(
        "checkpoint '{}' is not a directory (expected config.json and model.safetensors or {})",
        dir, kSafetensorsIndexFile);
  Checkpoint c;
  c.dir_ = dir;
  c.config_ = ModelConfig::load((fs::path(dir) / "config.json").string());
  c.file_ = ShardedCheckpoint::open(dir);
  c.manifest_ = parameter_manifest(c.config_, true);
  for (size_t i = 0; i < c.manifest_.size(); ++i) c.index_[c.manifest_[i].name] = i;
  return c;
}

const ParamSpec& Checkpoint::spec(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    std::vector<std::string> names;
    names.reserve(manifest_.size());
    for (const auto& s : manifest_) names.push_back(s.name);
    auto close = closest_match(name, names);
    R1_THROW("'{}' is not a tensor of the {} model described by {}{}", name,
             model_arch_name(config_.arch), (fs::path(dir_) / "config.json").string(),
             close ? fmt::format("; did you mean '{}'?", *close) : std::string());
  }
  return manifest_[it->second];
}

StoredTensor Checkpoint::locate(const ParamSpec& spec) const {
  const std::string config_path = (fs::path(dir_) / "config.json").string();
  const int64_t br = config_.fp8_block_rows > 0 ? config_.fp8_block_rows : 128;
  const int64_t bc = config_.fp8_block_cols > 0 ? config_.fp8_block_cols : 128;
  auto check_dtype = [&](const SafetensorsTensorInfo& info) {
    if (is_loadable_float(info.dtype) || is_fp8(info.dtype)) return;
    R1_THROW(
        "{}: tensor '{}' has dtype {}, which cannot be loaded as model weights (expected BF16, "
        "F16, F32, F64, or F8_E4M3 with block scales)",
        file_.shard_of(info.name).path(), info.name, dtype_safetensors_name(info.dtype));
  };
  // FP8 scales of `name` for the blocked matrices `shape` (2-D, or 3-D fused experts).
  auto check_scales = [&](const std::string& name, const Shape& shape, StoredTensor* st) {
    const std::string scale = name + "_scale_inv";
    if (!file_.has(scale))
      R1_THROW("{}: tensor '{}' is {} but its block scales '{}' are missing",
               file_.shard_of(name).path(), name, dtype_safetensors_name(st->dtype), scale);
    const auto& si = file_.info(scale);
    if (!is_scale_dtype(si.dtype))
      R1_THROW("{}: FP8 scales '{}' have dtype {} (expected F32, BF16, F16 or F8_E8M0)",
               file_.shard_of(scale).path(), scale, dtype_safetensors_name(si.dtype));
    Shape want;
    std::string alt;
    if (shape.size() == 2) {
      want = {ceil_div(shape[0], br), ceil_div(shape[1], bc)};
    } else {
      // Fused gate_up: concatenated per-half scales or blocks over the fused rows.
      const int64_t rows = shape[1], cols = shape[2];
      want = {shape[0], ceil_div(rows, br), ceil_div(cols, bc)};
      if (st->layout == StoredLayout::fused_gate || st->layout == StoredLayout::fused_up) {
        Shape halves = {shape[0], 2 * ceil_div(rows / 2, br), ceil_div(cols, bc)};
        if (si.shape == halves) want = halves;
        alt = " or " + shape_str(halves);
      }
    }
    if (si.shape != want)
      R1_THROW("{}: FP8 scales '{}' have shape {}, expected {}{} for '{}' {} in {} x {} blocks",
               file_.shard_of(scale).path(), scale, shape_str(si.shape), shape_str(want), alt, name,
               shape_str(shape), br, bc);
    st->scale_name = scale;
  };

  StoredTensor st;
  if (file_.has(spec.name)) {
    const auto& info = file_.info(spec.name);
    if (info.shape != spec.shape)
      R1_THROW("{}: tensor '{}' has shape {}, but {} (model_type {}) needs {}",
               file_.shard_of(spec.name).path(), spec.name, shape_str(info.shape), config_path,
               model_arch_name(config_.arch), shape_str(spec.shape));
    check_dtype(info);
    st.name = spec.name;
    st.dtype = info.dtype;
    st.layout = StoredLayout::plain;
    if (is_fp8(info.dtype)) {
      if (spec.shape.size() != 2)
        R1_THROW("{}: tensor '{}' of shape {} is FP8, but only matrices are block-quantised",
                 file_.shard_of(spec.name).path(), spec.name, shape_str(spec.shape));
      check_scales(spec.name, spec.shape, &st);
    }
    return st;
  }
  StoredLayout layout = StoredLayout::plain;
  const std::string fused = fused_name(spec, &layout);
  if (!fused.empty() && file_.has(fused)) {
    const auto& info = file_.info(fused);
    const int64_t E = config_.n_routed_experts, I = config_.moe_intermediate_size,
                  C = config_.hidden_size;
    const Shape want = layout == StoredLayout::fused_down ? Shape{E, C, I} : Shape{E, 2 * I, C};
    if (info.shape != want)
      R1_THROW("{}: fused expert tensor '{}' has shape {}, but {} needs {} (E, {}) for '{}'",
               file_.shard_of(fused).path(), fused, shape_str(info.shape), config_path,
               shape_str(want), layout == StoredLayout::fused_down ? "C, I" : "2I, C", spec.name);
    check_dtype(info);
    st.name = fused;
    st.dtype = info.dtype;
    st.layout = layout;
    st.expert = spec.expert;
    if (is_fp8(info.dtype)) check_scales(fused, info.shape, &st);
    return st;
  }
  if (!spec.tied_to.empty() && file_.has(spec.tied_to)) {
    st.name = spec.tied_to;
    st.dtype = file_.info(spec.tied_to).dtype;
    st.layout = StoredLayout::tied_copy;
    return st;
  }
  if (!spec.tied_to.empty() && has_spec(spec.tied_to)) {
    // e.g. shared_head.head of a tied model: a copy of lm_head, itself the embedding.
    StoredTensor inner = locate(this->spec(spec.tied_to));
    st = inner;
    st.layout = StoredLayout::tied_copy;
    st.name = spec.tied_to;
    return st;
  }
  R1_THROW("{}: tensor '{}' {} is missing; {} (model_type {}) needs it{}", file_.source(),
           spec.name, shape_str(spec.shape), config_path, model_arch_name(config_.arch),
           fused.empty() ? std::string() : fmt::format(" (looked for the fused '{}' too)", fused));
}

void Checkpoint::load(const ParamSpec& spec, const TensorView& dst) const {
  R1_CHECK(dst.device.is_cpu() && dst.is_contiguous() && dst.dims() == spec.shape &&
               is_loadable_float(dst.dtype) && dst.data != nullptr,
           "[load] '{}': destination must be a contiguous host f32/f64/bf16/f16 tensor of shape "
           "{}, got {}",
           spec.name, shape_str(spec.shape), dst.describe());
  const StoredTensor st = locate(spec);
  if (st.layout == StoredLayout::tied_copy) {
    load(this->spec(st.name), dst);
    return;
  }
  const auto& info = file_.info(st.name);
  const auto bytes = file_.bytes(st.name);
  const int64_t n = spec.numel();
  // Element offset of the manifest tensor inside the stored one.
  const int64_t I = config_.moe_intermediate_size, C = config_.hidden_size;
  int64_t offset = 0;
  int64_t half = 0;  // fused_up: 1
  switch (st.layout) {
    case StoredLayout::fused_gate:
      offset = st.expert * 2 * I * C;
      break;
    case StoredLayout::fused_up:
      offset = st.expert * 2 * I * C + I * C;
      half = 1;
      break;
    case StoredLayout::fused_down:
      offset = st.expert * C * I;
      break;
    default:
      break;
  }
  try {
    if (!st.fp8()) {
      convert(dst.data, dst.dtype, bytes.data() + offset * dtype_size(st.dtype), st.dtype, n);
      return;
    }
    const int64_t br = config_.fp8_block_rows > 0 ? config_.fp8_block_rows : 128;
    const int64_t bc = config_.fp8_block_cols > 0 ? config_.fp8_block_cols : 128;
    const auto& sinfo = file_.info(st.scale_name);
    const auto sbytes = file_.bytes(st.scale_name);
    const int64_t rows = spec.shape[0], cols = spec.shape[1];
    TensorView q = raw_view(bytes, info);
    q.data = const_cast<uint8_t*>(bytes.data()) + offset;
    q.ndim = 2;
    q.shape = {rows, cols, 0, 0};
    q.stride = {cols, 1, 0, 0};
    TensorView s = raw_view(sbytes, sinfo);
    int64_t row_offset = 0;
    if (st.layout != StoredLayout::plain) {
      // One expert's (SR, SC) scale matrix of the (E, SR, SC) tensor.
      const int64_t sr = sinfo.shape[1], sc = sinfo.shape[2];
      const size_t esz = dtype_size(sinfo.dtype);
      s.data = const_cast<uint8_t*>(sbytes.data()) + st.expert * sr * sc * esz;
      s.ndim = 2;
      s.shape = {sr, sc, 0, 0};
      s.stride = {sc, 1, 0, 0};
      if (st.layout != StoredLayout::fused_down) {
        const int64_t per_half = ceil_div(I, br);
        if (sr == 2 * per_half) {
          // Concatenated gate and up scales: the half's own block rows.
          s.data = static_cast<uint8_t*>(s.data) + half * per_half * sc * esz;
          s.shape[0] = per_half;
        } else {
          row_offset = half * I;  // blocks over the fused 2I rows
        }
      }
    }
    TensorView d = dst;
    if (d.ndim != 2) d = d.reshape({rows, cols});
    dequantize_fp8_blocks(d, q, s, br, bc, row_offset);
  } catch (Error& e) {
    e.add_context(fmt::format("loading '{}' from '{}' in {}", spec.name, st.name,
                              file_.shard_of(st.name).path()));
    throw;
  }
}

void Checkpoint::load_all(const std::function<TensorView(const ParamSpec&)>& dst_for) const {
  for (const auto& s : manifest_) load(s, dst_for(s));
}

Checkpoint::Report Checkpoint::check() const {
  Report r;
  std::set<std::string> used;
  for (const auto& s : manifest_) {
    try {
      StoredTensor st = locate(s);
      used.insert(st.name);
      if (st.fp8()) {
        used.insert(st.scale_name);
        ++r.fp8_tensors;
      }
      if (st.layout == StoredLayout::fused_gate || st.layout == StoredLayout::fused_up ||
          st.layout == StoredLayout::fused_down)
        ++r.fused_expert_tensors;
      if (st.layout == StoredLayout::tied_copy) ++r.tied_copies_absent;
    } catch (const Error& e) {
      r.missing.push_back(e.what());
    }
  }
  for (const auto& name : file_.names())
    if (!used.count(name)) r.unexpected.push_back(name);
  return r;
}

Json Checkpoint::describe() const {
  Json cfg = describe_config(config_);
  Json out = Json::object();
  out["path"] = dir_;
  out["model_type"] = cfg["model_type"];
  out["architecture"] = cfg["architecture"];
  out["parameters"] = cfg["parameters"];
  cfg.erase("parameters");
  std::map<std::string, uint64_t> bytes, elements;
  uint64_t total = 0;
  for (const auto& t : file_.names()) {
    const auto& info = file_.info(t);
    bytes[std::string(dtype_name(info.dtype))] += info.nbytes();
    elements[std::string(dtype_name(info.dtype))] += static_cast<uint64_t>(info.numel());
    total += info.nbytes();
  }
  out["bytes"] = total;
  out["bytes_by_dtype"] = bytes;
  out["elements_by_dtype"] = elements;
  out["tensors"] = file_.size();
  out["shards"] = file_.num_shards();
  const Report r = check();
  auto first = [](const std::vector<std::string>& v) {
    return std::vector<std::string>(v.begin(), v.begin() + std::min<size_t>(v.size(), 20));
  };
  out["checkpoint"] = {{"complete", r.complete()},
                       {"missing_count", r.missing.size()},
                       {"missing", first(r.missing)},
                       {"unexpected_count", r.unexpected.size()},
                       {"unexpected", first(r.unexpected)},
                       {"fp8_tensors", r.fp8_tensors},
                       {"fused_expert_tensors", r.fused_expert_tensors},
                       {"tied_copies_absent", r.tied_copies_absent}};
  out["config"] = std::move(cfg);
  return out;
}

// ---- Writing
// ---------------------------------------------------------------------------------------

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {"tokenizer.json",
                                                 "tokenizer_config.json",
                                                 "special_tokens_map.json",
                                                 "vocab.json",
                                                 "merges.txt",
                                                 "tokenizer.model",
                                                 "tokenizer.bin",
                                                 "added_tokens.json",
                                                 "chat_template.jinja",
                                                 "chat_template.json",
                                                 "generation_config.json"};
  return names;
}

Json save_checkpoint(const std::string& dir, const ModelConfig& config, const TensorFill& fill,
                     const SaveOptions& opts) {
  R1_CHECK(!dir.empty(), "save_checkpoint: empty directory name");
  R1_CHECK(opts.dtype == DType::bf16 || opts.dtype == DType::f16 || opts.dtype == DType::f32,
           "save_checkpoint('{}'): storage dtype must be bf16, f16 or f32, got {}", dir,
           dtype_name(opts.dtype));
  config.validate(dir + "/config.json");
  fs::path target = fs::path(dir).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  std::error_code ec;
  if (fs::exists(target, ec)) {
    if (!fs::is_directory(target, ec))
      R1_THROW("cannot write a checkpoint to '{}': it exists and is not a directory", dir);
    if (!opts.overwrite)
      R1_THROW(
          "cannot write a checkpoint to '{}': the directory exists (set overwrite to replace it; "
          "r1kit init --overwrite)",
          dir);
  }
  if (!target.parent_path().empty()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) R1_THROW("cannot create '{}': {}", target.parent_path().string(), ec.message());
  }
  std::vector<std::string> tokenizer_files;
  if (!opts.tokenizer_dir.empty()) {
    if (!fs::is_directory(opts.tokenizer_dir, ec))
      R1_THROW("tokenizer directory '{}' does not exist", opts.tokenizer_dir);
    for (const auto& f : tokenizer_file_names())
      if (fs::is_regular_file(fs::path(opts.tokenizer_dir) / f, ec)) tokenizer_files.push_back(f);
    if (tokenizer_files.empty())
      R1_THROW("tokenizer directory '{}' holds none of the tokenizer files ({}...)",
               opts.tokenizer_dir, tokenizer_file_names()[0]);
  }

  fs::path tmp = target;
  tmp += ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec) R1_THROW("cannot create '{}': {}", tmp.string(), ec.message());
  TempDirGuard guard(tmp);

  const std::vector<ParamSpec> manifest = parameter_manifest(config, true);
  std::map<std::string, const ParamSpec*> by_name;
  for (const auto& s : manifest) by_name[s.name] = &s;
  // The tensor whose values a tied copy holds (following copies of copies).
  auto source_of = [&](const ParamSpec& s) -> const ParamSpec& {
    const ParamSpec* p = &s;
    while (!p->tied_to.empty()) {
      auto it = by_name.find(p->tied_to);
      R1_CHECK(it != by_name.end(),
               "save_checkpoint: '{}' copies '{}', which is not in the manifest", p->name,
               p->tied_to);
      p = it->second;
    }
    return *p;
  };
  SafetensorsWriter writer;
  for (const auto& s : manifest) {
    if (!s.tied_to.empty() && !opts.mtp_copies) continue;
    const DType dt = s.kind == ParamKind::correction_bias ? DType::f32 : opts.dtype;
    const ParamSpec* src = &source_of(s);
    writer.add(s.name, dt, s.shape, [&fill, src, dt](void* dst) {
      std::vector<float> values(static_cast<size_t>(src->numel()));
      TensorView v(values.data(), DType::f32, Device::cpu(), src->shape, src->name);
      fill(*src, v);
      convert(dst, dt, reinterpret_cast<const uint8_t*>(values.data()), DType::f32, src->numel());
    });
  }
  writer.write_sharded(tmp.string(), opts.max_shard_bytes);

  ModelConfig saved = config;
  saved.dtype = opts.dtype;
  saved.fp8_block_rows = saved.fp8_block_cols = 0;
  saved.save((tmp / "config.json").string());
  for (const auto& f : tokenizer_files)
    write_file_atomic((tmp / f).string(), read_file((fs::path(opts.tokenizer_dir) / f).string()));
  fsync_dir(tmp);

  publish_directory_impl(tmp, target);
  guard.release();

  size_t shards = 0;
  for (const auto& e : fs::directory_iterator(target, ec))
    if (e.path().extension() == ".safetensors") ++shards;
  return Json{{"path", dir},
              {"tensors", writer.size()},
              {"shards", shards},
              {"bytes", writer.data_bytes()},
              {"dtype", dtype_name(opts.dtype)},
              {"tokenizer_files", tokenizer_files}};
}

TensorFill fill_from_views(const std::map<std::string, TensorView>& views) {
  return [views](const ParamSpec& spec, const TensorView& dst) {
    auto it = views.find(spec.name);
    R1_CHECK(it != views.end(), "save_checkpoint: no tensor given for '{}'", spec.name);
    const TensorView& v = it->second;
    R1_CHECK(v.device.is_cpu() && v.is_contiguous() && v.dims() == spec.shape &&
                 is_loadable_float(v.dtype),
             "save_checkpoint: '{}' must be a contiguous host float tensor of shape {}, got {}",
             spec.name, shape_str(spec.shape), v.describe());
    convert(dst.data, dst.dtype, static_cast<const uint8_t*>(v.data), v.dtype, v.numel());
  };
}

Json init_checkpoint(const std::string& dir, const ModelConfig& config, const InitOptions& opts) {
  const std::vector<ParamSpec> manifest = parameter_manifest(config, true);
  std::map<std::string, uint64_t> offset;
  for (size_t i = 0; i < manifest.size(); ++i) offset[manifest[i].name] = i;
  ContextOptions co;
  co.seed = opts.seed;
  auto ctx = Context::cpu(co);
  const double stddev = config.initializer_range;
  TensorFill fill = [&](const ParamSpec& spec, const TensorView& dst) {
    float* d = dst.ptr<float>();
    switch (spec.kind) {
      case ParamKind::embedding:
      case ParamKind::matrix:
      case ParamKind::router:
        kernels::random_normal(dst, 0.0, stddev, opts.seed, offset.at(spec.name), *ctx);
        return;
      case ParamKind::norm:
        std::fill(d, d + dst.numel(), 1.0f);
        return;
      case ParamKind::bias:
      case ParamKind::correction_bias:
        std::fill(d, d + dst.numel(), 0.0f);
        return;
    }
  };
  SaveOptions so;
  so.dtype = opts.dtype;
  so.max_shard_bytes = opts.max_shard_bytes;
  so.tokenizer_dir = opts.tokenizer_dir;
  so.overwrite = opts.overwrite;
  Json summary = save_checkpoint(dir, config, fill, so);
  const ParamCounts p = count_parameters(config);
  summary["model_type"] = model_arch_name(config.arch);
  summary["architecture"] = model_arch_class(config.arch);
  summary["seed"] = opts.seed;
  summary["parameters"] = {{"total", p.total}, {"active", p.active}, {"mtp", p.mtp}};
  return summary;
}

}  // namespace r1kit::policy
