// Safetensors reader (header validation that no byte sequence can get past into an out-of-bounds
// read), writer, and the HF sharded-checkpoint layout. The format is documented in safetensors.h.
#include "core/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/error.h"

namespace r1kit {
namespace {

namespace fs = std::filesystem;

// Safetensors dtypes that exist in the format but that r1kit has no DType for.
constexpr std::string_view kUnsupportedDTypes[] = {"F4",          "F6_E2M3",     "F6_E3M2",
                                                   "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64"};
constexpr DType kAllDTypes[] = {DType::boolean, DType::u8,      DType::i8,      DType::u16,
                                DType::i16,     DType::u32,     DType::i32,     DType::u64,
                                DType::i64,     DType::f8_e4m3, DType::f8_e5m2, DType::f8_e8m0,
                                DType::f16,     DType::bf16,    DType::f32,     DType::f64};

// Rank of a dtype in the reference implementation's Dtype enum, which is ordered by alignment;
// its writer lays data out by descending rank, then by name.
int reference_rank(DType t) {
  constexpr DType kOrder[] = {DType::boolean, DType::u8,      DType::i8,  DType::f8_e5m2,
                              DType::f8_e4m3, DType::f8_e8m0, DType::i16, DType::u16,
                              DType::f16,     DType::bf16,    DType::i32, DType::u32,
                              DType::f32,     DType::f64,     DType::i64, DType::u64};
  for (int i = 0; i < static_cast<int>(std::size(kOrder)); ++i)
    if (kOrder[i] == t) return i;
  return 0;
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void append_u64_le(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string known_dtype_list() {
  std::string s;
  for (DType t : kAllDTypes) {
    if (!s.empty()) s += ", ";
    s += dtype_safetensors_name(t);
  }
  return s;
}

// A JSON value that must be a non-negative integer; false (with *why) otherwise.
bool json_to_u64(const Json& v, uint64_t* out, std::string* why) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {  // signed: "-0" parses as a signed zero
    int64_t i = v.get<int64_t>();
    if (i >= 0) {
      *out = static_cast<uint64_t>(i);
      return true;
    }
    *why = fmt::format("{} is negative", i);
    return false;
  }
  *why = fmt::format("{} {} is not an integer", json_type_name(v),
                     v.dump(-1, ' ', false, Json::error_handler_t::replace));
  return false;
}

// Validates one tensor entry of the header; the data buffer holds `data_bytes` bytes.
SafetensorsTensorInfo parse_tensor_entry(const std::string& name, const Json& e,
                                         uint64_t data_bytes, const std::string& label) {
  auto fail = [&](const std::string& what) -> Error {
    return Error(fmt::format("{}: tensor '{}': {}", label, name, what));
  };
  if (!e.is_object())
    throw fail(fmt::format("entry must be an object with dtype, shape and data_offsets, got {}",
                           json_type_name(e)));
  // Legal JSON, but r1kit names every tensor (and its writer refuses empty names).
  if (name.empty()) throw fail("a tensor with an empty name");
  SafetensorsTensorInfo t;
  t.name = name;

  auto dt = e.find("dtype");
  if (dt == e.end()) throw fail("missing field 'dtype'");
  if (!dt->is_string())
    throw fail(fmt::format("'dtype' must be a string, got {}", json_type_name(*dt)));
  const auto& dname = dt->get_ref<const std::string&>();
  if (!dtype_from_safetensors_name(dname, &t.dtype)) {
    for (auto u : kUnsupportedDTypes)
      if (dname == u)
        throw fail(fmt::format("dtype '{}' is not supported by r1kit (sub-byte and complex types)",
                               dname));
    throw fail(fmt::format("unknown dtype '{}'; expected one of {}", dname, known_dtype_list()));
  }

  auto sh = e.find("shape");
  if (sh == e.end()) throw fail("missing field 'shape'");
  if (!sh->is_array())
    throw fail(fmt::format("'shape' must be an array, got {}", json_type_name(*sh)));
  // numel is the product of all dims; `bound` is the product of the non-zero ones, kept below 2^63
  // so that a view's strides (computed from every dim) cannot overflow even when numel is 0.
  uint64_t numel = 1, bound = 1;
  for (size_t i = 0; i < sh->size(); ++i) {
    uint64_t d = 0;
    std::string why;
    if (!json_to_u64((*sh)[i], &d, &why)) throw fail(fmt::format("shape[{}]: {}", i, why));
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (d != 0 && __builtin_mul_overflow(bound, d, &bound)) ||
        bound > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw fail(
          fmt::format("shape[{}] = {} makes the shape too large (the element count "
                      "overflows)",
                      i, d));
    numel *= d;  // <= bound: cannot overflow
    t.shape.push_back(static_cast<int64_t>(d));
  }

  auto off = e.find("data_offsets");
  if (off == e.end()) throw fail("missing field 'data_offsets'");
  if (!off->is_array() || off->size() != 2)
    throw fail(fmt::format(
        "'data_offsets' must be an array [begin, end], got {}",
        off->is_array() ? fmt::format("{} elements", off->size()) : json_type_name(*off)));
  std::string why;
  if (!json_to_u64((*off)[0], &t.begin, &why)) throw fail("data_offsets begin: " + why);
  if (!json_to_u64((*off)[1], &t.end, &why)) throw fail("data_offsets end: " + why);
  if (t.end < t.begin)
    throw fail(fmt::format("data_offsets end {} is before begin {}", t.end, t.begin));
  if (t.end > data_bytes)
    throw fail(
        fmt::format("data_offsets [{}, {}) run past the end of the data buffer ({} bytes): "
                    "truncated file?",
                    t.begin, t.end, data_bytes));
  uint64_t expected = 0;
  const bool overflow =
      __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(t.dtype)), &expected);
  if (overflow || expected != t.end - t.begin)
    throw fail(fmt::format(
        "data_offsets [{}, {}) hold {} bytes but shape {} of {} needs {} ({} elements x {} bytes)",
        t.begin, t.end, t.end - t.begin, shape_str(t.shape), dname,
        overflow ? std::string("more than 2^64") : std::to_string(expected), numel,
        dtype_size(t.dtype)));
  return t;
}

}  // namespace

int64_t SafetensorsTensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size,
                                           const std::string& label) {
  if (size < 8)
    R1_THROW("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", label,
             size);
  SafetensorsHeader h;
  h.header_bytes = read_u64_le(bytes);
  if (h.header_bytes > kSafetensorsMaxHeaderBytes)
    R1_THROW(
        "{}: header length {} bytes exceeds the {}-byte limit (corrupt or not a safetensors "
        "file)",
        label, h.header_bytes, kSafetensorsMaxHeaderBytes);
  if (h.header_bytes > size - 8)
    R1_THROW(
        "{}: header length {} bytes runs past the end of the file ({} bytes): truncated or "
        "not a safetensors file",
        label, h.header_bytes, size);
  if (h.header_bytes == 0) R1_THROW("{}: empty header (header length 0)", label);
  h.data_bytes = size - 8 - h.header_bytes;

  std::string_view text(reinterpret_cast<const char*>(bytes + 8), h.header_bytes);
  Json j;
  if (auto f = try_parse_json(text, &j))
    R1_THROW("{}: the header is not valid JSON: line {}, column {} (header byte {}): {}", label,
             f->position.line, f->position.column, f->offset, f->message);
  if (!j.is_object())
    R1_THROW("{}: the header must be a JSON object, got {}", label, json_type_name(j));

  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        R1_THROW("{}: __metadata__ must be an object of strings, got {}", label,
                 json_type_name(value));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          R1_THROW("{}: __metadata__ entry '{}' must be a string, got {}", label, mk,
                   json_type_name(mv));
        h.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_tensor_entry(key, value, h.data_bytes, label));
  }
  // j.items() iterates a std::map, so h.tensors is already sorted by name.

  // The tensors must tile the data buffer exactly (as the reference implementation requires).
  std::vector<const SafetensorsTensorInfo*> by_offset;
  for (const auto& t : h.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  const SafetensorsTensorInfo* prev = nullptr;
  for (const auto* t : by_offset) {
    if (t->begin < pos)
      R1_THROW("{}: tensor '{}' bytes [{}, {}) overlap tensor '{}' bytes [{}, {})", label, t->name,
               t->begin, t->end, prev->name, prev->begin, prev->end);
    if (t->begin > pos)
      R1_THROW(
          "{}: bytes [{}, {}) of the data buffer, before tensor '{}', belong to no tensor "
          "(a hole: corrupt file?)",
          label, pos, t->begin, t->name);
    pos = t->end;
    prev = t;
  }
  if (pos != h.data_bytes)
    R1_THROW(
        "{}: bytes [{}, {}) at the end of the data buffer belong to no tensor{} (trailing "
        "data: corrupt file?)",
        label, pos, h.data_bytes,
        prev ? fmt::format(" (the last one is '{}')", prev->name) : std::string());
  return h;
}

// --- SafetensorsFile ----------------------------------------------------------------------------

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.label_ = path;
  f.map_ = MappedFile::open(path);
  f.base_ = f.map_.data();
  f.header_ = parse_safetensors_header(f.base_, f.map_.size(), path);
  return f;
}

SafetensorsFile SafetensorsFile::from_bytes(std::vector<uint8_t> bytes, std::string label) {
  SafetensorsFile f;
  f.label_ = std::move(label);
  f.owned_ = std::move(bytes);
  f.base_ = f.owned_.data();
  f.header_ = parse_safetensors_header(f.base_, f.owned_.size(), f.label_);
  return f;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(header_.tensors.size());
  for (const auto& t : header_.tensors) out.push_back(t.name);
  return out;
}

const SafetensorsTensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = std::lower_bound(
      header_.tensors.begin(), header_.tensors.end(), name,
      [](const SafetensorsTensorInfo& t, const std::string& n) { return t.name < n; });
  return it != header_.tensors.end() && it->name == name ? &*it : nullptr;
}

bool SafetensorsFile::has(const std::string& name) const {
  return find(name) != nullptr;
}

const SafetensorsTensorInfo& SafetensorsFile::info(const std::string& name) const {
  if (const auto* t = find(name)) return *t;
  auto near = closest_match(name, names());
  R1_THROW("{}: no tensor named '{}'{}", label_, name,
           near ? fmt::format(" (did you mean '{}'?)", *near) : std::string());
}

std::span<const uint8_t> SafetensorsFile::bytes(const std::string& name) const {
  const auto& t = info(name);
  return {base_ + header_.data_offset() + t.begin, static_cast<size_t>(t.nbytes())};
}

TensorView SafetensorsFile::view(const std::string& name) const {
  const auto& t = info(name);
  if (t.shape.size() > static_cast<size_t>(kMaxDims))
    R1_THROW("{}: tensor '{}' has {} dims {}; views support at most {} (use bytes() or copy_to())",
             label_, name, t.shape.size(), shape_str(t.shape), kMaxDims);
  const uint8_t* p = base_ + header_.data_offset() + t.begin;
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(t.dtype) != 0)
    R1_THROW(
        "{}: tensor '{}' ({}) starts at file offset {}, not aligned to its {}-byte elements; "
        "use copy_to() instead of a view",
        label_, name, dtype_name(t.dtype), header_.data_offset() + t.begin, dtype_size(t.dtype));
  return TensorView(const_cast<uint8_t*>(p), t.dtype, Device::cpu(), t.shape, t.name);
}

void SafetensorsFile::copy_to(const std::string& name, const TensorView& dst) const {
  const auto& t = info(name);
  R1_CHECK(dst.device.is_cpu() && dst.is_contiguous(),
           "{}: copy of tensor '{}' needs a contiguous CPU destination, got {}", label_, name,
           dst.describe());
  R1_CHECK(dst.dtype == t.dtype && dst.dims() == t.shape,
           "{}: tensor '{}' is {} {} but the destination is {}", label_, name, shape_str(t.shape),
           dtype_name(t.dtype), dst.describe());
  if (t.nbytes() > 0) std::memcpy(dst.data, base_ + header_.data_offset() + t.begin, t.nbytes());
}

// --- SafetensorsWriter --------------------------------------------------------------------------

void SafetensorsWriter::check_new_name(const std::string& name) {
  R1_CHECK(!name.empty(), "safetensors writer: a tensor has an empty name");
  R1_CHECK(name != "__metadata__", "safetensors writer: '__metadata__' is reserved");
  R1_CHECK(utf8_invalid_offset(name) == std::string_view::npos,
           "safetensors writer: tensor name '{}' is not valid UTF-8", name);
  R1_CHECK(names_.insert(name).second, "safetensors writer: tensor '{}' added twice", name);
}

void SafetensorsWriter::add(const TensorView& t) {
  R1_CHECK(t.device.is_cpu(),
           "safetensors writer: tensor {} is not on the CPU (copy it to the "
           "host, or use add() with a fill function)",
           t.describe());
  R1_CHECK(t.is_contiguous(), "safetensors writer: tensor {} is not contiguous", t.describe());
  R1_CHECK(t.data != nullptr || t.nbytes() == 0, "safetensors writer: tensor {} has no data",
           t.describe());
  check_new_name(t.name);
  entries_.push_back({t.name, t.dtype, t.dims(), t.nbytes(), t.data, nullptr});
}

void SafetensorsWriter::add(std::string name, DType dtype, const Shape& shape,
                            std::function<void(void* dst)> fill) {
  R1_CHECK(fill != nullptr, "safetensors writer: tensor '{}' has no fill function", name);
  uint64_t n = dtype_size(dtype);
  for (auto d : shape) {
    R1_CHECK(d >= 0, "safetensors writer: tensor '{}' has a negative dim in {}", name,
             shape_str(shape));
    R1_CHECK(!__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n),
             "safetensors writer: tensor '{}' shape {} is too large", name, shape_str(shape));
  }
  check_new_name(name);
  entries_.push_back({std::move(name), dtype, shape, n, nullptr, std::move(fill)});
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  R1_CHECK(utf8_invalid_offset(key) == std::string_view::npos &&
               utf8_invalid_offset(value) == std::string_view::npos,
           "safetensors writer: metadata '{}' is not valid UTF-8", key);
  metadata_[key] = value;
}

uint64_t SafetensorsWriter::data_bytes() const {
  uint64_t n = 0;
  for (const auto& e : entries_) n += e.nbytes;
  return n;
}

std::vector<const SafetensorsWriter::Entry*> SafetensorsWriter::in_file_order(
    std::vector<const Entry*> entries) {
  // Larger elements first: with the header padded to 8 bytes every tensor is then aligned.
  std::sort(entries.begin(), entries.end(), [](const Entry* a, const Entry* b) {
    int ra = reference_rank(a->dtype), rb = reference_rank(b->dtype);
    return ra != rb ? ra > rb : a->name < b->name;
  });
  return entries;
}

std::vector<const SafetensorsWriter::Entry*> SafetensorsWriter::sorted_entries() const {
  std::vector<const Entry*> out;
  for (const auto& e : entries_) out.push_back(&e);
  return in_file_order(std::move(out));
}

std::string SafetensorsWriter::header_for(const std::vector<const Entry*>& entries) const {
  // Built by hand rather than through nlohmann::json so the field order is the reference
  // writer's: "__metadata__" first, then {"dtype", "shape", "data_offsets"} per tensor.
  auto quote = [](const std::string& s) { return dump_json(Json(s), -1, "safetensors header"); };
  std::map<std::string, std::string> meta = metadata_;
  meta.emplace("format", "pt");  // kept when the caller set its own "format"
  std::string h = "{\"__metadata__\":{";
  bool first = true;
  for (const auto& [k, v] : meta) {
    if (!first) h += ',';
    first = false;
    h += quote(k) + ":" + quote(v);
  }
  h += '}';
  uint64_t offset = 0;
  for (const Entry* e : entries) {
    h += fmt::format(",{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                     quote(e->name), dtype_safetensors_name(e->dtype), fmt::join(e->shape, ","),
                     offset, offset + e->nbytes);
    offset += e->nbytes;
  }
  h += '}';
  while (h.size() % 8 != 0) h += ' ';
  return h;
}

std::string SafetensorsWriter::header() const {
  return header_for(sorted_entries());
}

void SafetensorsWriter::emit(const std::vector<const Entry*>& entries,
                             const std::function<void(const void*, size_t)>& sink) const {
  std::string head;
  std::string json = header_for(entries);
  append_u64_le(&head, json.size());
  head += json;
  sink(head.data(), head.size());
  std::vector<uint8_t> staging;
  for (const Entry* e : entries) {
    if (e->nbytes == 0) continue;
    if (e->fill) {
      staging.assign(e->nbytes, 0);
      e->fill(staging.data());
      sink(staging.data(), staging.size());
    } else {
      sink(e->data, e->nbytes);
    }
  }
}

void SafetensorsWriter::write_entries(const std::string& path,
                                      const std::vector<const Entry*>& entries) const {
  AtomicFileWriter w(path);
  emit(entries, [&](const void* p, size_t n) { w.write(p, n); });
  w.commit();
}

void SafetensorsWriter::write(const std::string& path) const {
  write_entries(path, sorted_entries());
}

std::vector<uint8_t> SafetensorsWriter::to_bytes() const {
  std::vector<uint8_t> out;
  emit(sorted_entries(), [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  });
  return out;
}

std::string safetensors_shard_name(size_t index, size_t count) {
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", index, count);
}

void SafetensorsWriter::write_sharded(const std::string& dir, uint64_t max_shard_bytes) const {
  R1_CHECK(max_shard_bytes > 0, "write_sharded('{}'): max_shard_bytes must be positive", dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) R1_THROW("cannot create checkpoint directory '{}': {}", dir, ec.message());

  // Split in name order; each shard then orders its own data (see in_file_order()).
  std::vector<const Entry*> by_name;
  for (const auto& e : entries_) by_name.push_back(&e);
  std::sort(by_name.begin(), by_name.end(),
            [](const Entry* a, const Entry* b) { return a->name < b->name; });
  std::vector<std::vector<const Entry*>> shards(1);
  uint64_t current = 0;
  for (const Entry* e : by_name) {
    if (!shards.back().empty() && current + e->nbytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(e);
    current += e->nbytes;
  }
  const fs::path root(dir);
  const std::string single = (root / kSafetensorsSingleFile).string();
  const std::string index = (root / kSafetensorsIndexFile).string();
  for (auto& shard : shards) shard = in_file_order(shard);
  if (shards.size() == 1) {
    write_entries(single, shards[0]);  // readers prefer it to a stale index from here on
    fs::remove(index, ec);
    return;
  }
  // Readers prefer model.safetensors to the index, so a stale one goes first: a crash part-way
  // then leaves an incomplete checkpoint that fails to open, never an old one that opens.
  fs::remove(single, ec);
  Json weight_map = Json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    std::string name = safetensors_shard_name(i + 1, shards.size());
    write_entries((root / name).string(), shards[i]);
    for (const Entry* e : shards[i]) weight_map[e->name] = name;
  }
  Json j = {{"metadata", {{"total_size", data_bytes()}}}, {"weight_map", std::move(weight_map)}};
  write_json_file_atomic(index, j, 2);
}

namespace {
SafetensorsWriter writer_for(const std::vector<TensorView>& tensors,
                             const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter w;
  for (const auto& t : tensors) w.add(t);
  for (const auto& [k, v] : metadata) w.set_metadata(k, v);
  return w;
}
}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  writer_for(tensors, metadata).write(path);
}

std::vector<uint8_t> safetensors_to_bytes(const std::vector<TensorView>& tensors,
                                          const std::map<std::string, std::string>& metadata) {
  return writer_for(tensors, metadata).to_bytes();
}

void write_sharded(const std::string& dir, const std::vector<TensorView>& tensors,
                   uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata) {
  writer_for(tensors, metadata).write_sharded(dir, max_shard_bytes);
}

// --- ShardedCheckpoint --------------------------------------------------------------------------

ShardedCheckpoint ShardedCheckpoint::open(const std::string& dir_or_file) {
  ShardedCheckpoint c;
  std::error_code ec;
  const fs::path arg(dir_or_file);
  fs::path root = arg;
  std::string index;
  auto open_single = [&](const std::string& path) {
    c.source_ = path;
    c.shards_.push_back(SafetensorsFile::open(path));
    for (const auto& t : c.shards_[0].tensors()) c.tensor_shard_[t.name] = 0;
  };
  if (fs::is_regular_file(arg, ec)) {
    if (arg.extension() != ".json") {
      open_single(dir_or_file);
      return c;
    }
    index = dir_or_file;  // an index file named directly; its shards sit beside it
    root = arg.parent_path();
  } else {
    if (!fs::is_directory(arg, ec))
      R1_THROW("checkpoint '{}' does not exist (expected a directory with {} or {})", dir_or_file,
               kSafetensorsSingleFile, kSafetensorsIndexFile);
    const std::string single = (root / kSafetensorsSingleFile).string();
    index = (root / kSafetensorsIndexFile).string();
    if (fs::exists(single, ec)) {
      open_single(single);
      return c;
    }
    if (!fs::exists(index, ec))
      R1_THROW("'{}' holds neither {} nor {}: not a checkpoint directory", dir_or_file,
               kSafetensorsSingleFile, kSafetensorsIndexFile);
  }

  c.source_ = index;
  Json j = read_json_file(index);
  require_object(j, index);
  Json weight_map = get_required<Json>(j, "weight_map", index);
  require_object(weight_map, json_where(index, "weight_map"));
  if (auto meta = get_optional<Json>(j, "metadata", index)) {
    require_object(*meta, json_where(index, "metadata"));
    c.index_metadata_ = std::move(*meta);
  }
  std::map<std::string, size_t> shard_ids;
  for (const auto& [name, shard] : weight_map.items()) {
    if (!shard.is_string())
      R1_THROW("{}: weight_map entry for tensor '{}' must be a shard file name, got {}", index,
               name, json_type_name(shard));
    const auto& file = shard.get_ref<const std::string&>();
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        file.find('\\') != std::string::npos)
      R1_THROW(
          "{}: tensor '{}' maps to shard '{}', which is not a file name inside the "
          "checkpoint directory",
          index, name, file);
    auto it = shard_ids.find(file);
    if (it == shard_ids.end()) {
      try {
        c.shards_.push_back(SafetensorsFile::open((root / file).string()));
      } catch (const Error& e) {
        R1_THROW("{}: tensor '{}' is in shard '{}', which cannot be read: {}", index, name, file,
                 e.what());
      }
      it = shard_ids.emplace(file, c.shards_.size() - 1).first;
    }
    if (!c.shards_[it->second].has(name))
      R1_THROW("{}: tensor '{}' is listed in shard '{}', but that file has no such tensor", index,
               name, file);
    c.tensor_shard_[name] = it->second;
  }
  return c;
}

std::vector<std::string> ShardedCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(tensor_shard_.size());
  for (const auto& [name, shard] : tensor_shard_) out.push_back(name);
  return out;
}

size_t ShardedCheckpoint::shard_index(const std::string& name) const {
  auto it = tensor_shard_.find(name);
  if (it == tensor_shard_.end()) {
    auto near = closest_match(name, names());
    R1_THROW("{}: no tensor named '{}'{}", source_, name,
             near ? fmt::format(" (did you mean '{}'?)", *near) : std::string());
  }
  return it->second;
}

const SafetensorsFile& ShardedCheckpoint::shard_of(const std::string& name) const {
  return shards_[shard_index(name)];
}

const SafetensorsTensorInfo& ShardedCheckpoint::info(const std::string& name) const {
  return shard_of(name).info(name);
}

TensorView ShardedCheckpoint::view(const std::string& name) const {
  return shard_of(name).view(name);
}

std::span<const uint8_t> ShardedCheckpoint::bytes(const std::string& name) const {
  return shard_of(name).bytes(name);
}

void ShardedCheckpoint::copy_to(const std::string& name, const TensorView& dst) const {
  shard_of(name).copy_to(name, dst);
}

}  // namespace r1kit
