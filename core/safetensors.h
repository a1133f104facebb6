// Safetensors files (Hugging Face's tensor container) and sharded checkpoints: a validating,
// memory-mapped reader whose views point into the file, an atomic writer, and the HF sharded
// layout (model-0000i-of-0000N.safetensors + model.safetensors.index.json).
//
// File format, field by field (all integers little-endian):
//   bytes [0, 8)        u64 N: length of the header in bytes.
//   bytes [8, 8+N)      the header: UTF-8 JSON, one object. Writers pad it with trailing spaces so
//                       that 8+N is a multiple of 8 (then every tensor of a well-laid-out file is
//                       aligned for its dtype). Readers accept any N up to
//                       kSafetensorsMaxHeaderBytes.
//     "__metadata__"    optional; an object of string → string (free text: "format": "pt", ...).
//     "<tensor name>"   every other key is a tensor: an object with
//       "dtype"         one of BOOL U8 I8 U16 I16 U32 I32 U64 I64 F8_E4M3 F8_E5M2 F8_E8M0 F16 BF16
//                       F32 F64 (F4, F6_E2M3, F6_E3M2 and C64 exist in the format; r1kit rejects
//                       them as unsupported);
//       "shape"         array of non-negative integers, row-major; [] is a scalar;
//       "data_offsets"  [begin, end]: byte range of the tensor relative to the start of the data
//                       buffer (NOT the file); end - begin == numel * dtype size.
//   bytes [8+N, EOF)    the data buffer. As in the reference implementation, tensors must tile it
//                       exactly when sorted by offset: no overlaps, no holes, nothing after the
//                       last tensor. Readers accept any order of header keys and of data.
// A sharded checkpoint is a directory with model-00001-of-0000N.safetensors ... and
// model.safetensors.index.json = {"metadata": {"total_size": <sum of tensor bytes>},
// "weight_map": {"<tensor name>": "<shard file name>", ...}}; a one-shard checkpoint is a plain
// model.safetensors with no index.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/tensor.h"

namespace r1kit {

constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
constexpr const char* kSafetensorsSingleFile = "model.safetensors";
constexpr const char* kSafetensorsIndexFile = "model.safetensors.index.json";

struct SafetensorsTensorInfo {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;         // any number of dims; view() needs at most kMaxDims
  uint64_t begin = 0;  // byte range in the data buffer (relative to its start)
  uint64_t end = 0;
  uint64_t nbytes() const { return end - begin; }
  int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<SafetensorsTensorInfo> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
  uint64_t header_bytes = 0;  // N
  uint64_t data_bytes = 0;    // size of the data buffer
  uint64_t data_offset() const { return 8 + header_bytes; }
};

// Parses and fully validates the first `size` bytes of a safetensors file (see the format above).
// Every error is an r1kit::Error that starts with `label` (the path) and names the tensor when one
// is at fault. Reads only bytes [0, size) whatever they contain.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size,
                                           const std::string& label);

// A validated safetensors file in memory: memory-mapped (open) or owned bytes (from_bytes).
// Move-only; views stay valid while the object lives.
class SafetensorsFile {
 public:
  SafetensorsFile() = default;
  static SafetensorsFile open(const std::string& path);
  // Parses a copy of `bytes`; `label` stands in for the path in errors.
  static SafetensorsFile from_bytes(std::vector<uint8_t> bytes, std::string label);

  const std::string& path() const { return label_; }
  // Tensor names sorted by byte value (like Python's safe_open().keys()), independent of the
  // header's or the data's order.
  std::vector<std::string> names() const;
  size_t size() const { return header_.tensors.size(); }
  bool has(const std::string& name) const;
  // Throws naming the file and the tensor (with a "did you mean" when a name is close).
  const SafetensorsTensorInfo& info(const std::string& name) const;
  const std::vector<SafetensorsTensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const SafetensorsHeader& header() const { return header_; }

  // A CPU view into the file named like the tensor. The memory is read-only (writing through the
  // view faults). Throws when the tensor has more than kMaxDims dims or its data is not aligned
  // to its element size (possible in files from other writers; bytes() and copy_to() still work).
  TensorView view(const std::string& name) const;
  // The tensor's raw little-endian bytes.
  std::span<const uint8_t> bytes(const std::string& name) const;
  // Copies the tensor into `dst` (a contiguous CPU view of the same dtype and shape).
  void copy_to(const std::string& name, const TensorView& dst) const;

 private:
  const SafetensorsTensorInfo* find(const std::string& name) const;
  std::string label_;
  MappedFile map_;
  std::vector<uint8_t> owned_;
  const uint8_t* base_ = nullptr;
  SafetensorsHeader header_;
};

// Collects tensors and metadata, then writes one safetensors file (atomically) or a sharded
// checkpoint, laid out exactly as the reference (Rust) writer does: data ordered by dtype
// alignment, largest first (U64 I64 F64 F32 U32 I32 BF16 F16 U16 I16 F8_E8M0 F8_E4M3 F8_E5M2 I8 U8
// BOOL), then by name, so every tensor is aligned for its dtype with no padding between tensors;
// the header lists "__metadata__" first (keys sorted) and then the tensors in that same order,
// padded with spaces to a multiple of 8 bytes. For one dtype this is plain name order. For equal
// tensors and metadata {"format": "pt"} the output is byte-identical to the reference writer's.
// "__metadata__" holds {"format": "pt"} unless a "format" entry is set. Tensor bytes are read when
// write() runs, so views must stay valid until then.
class SafetensorsWriter {
 public:
  // A contiguous CPU view; its name is the tensor name (non-empty, unique, not "__metadata__").
  void add(const TensorView& t);
  // Any other source: `fill(dst)` must write the tensor's numel * dtype_size bytes to dst (a host
  // buffer), e.g. by copying from the GPU. Called once, during write().
  void add(std::string name, DType dtype, const Shape& shape, std::function<void(void* dst)> fill);
  void set_metadata(const std::string& key, const std::string& value);

  size_t size() const { return entries_.size(); }
  uint64_t data_bytes() const;
  // The header as written: JSON padded with spaces to a multiple of 8 bytes.
  std::string header() const;
  void write(const std::string& path) const;
  std::vector<uint8_t> to_bytes() const;
  // HF sharded layout in `dir` (created if missing): tensors in name order, a new shard started
  // when the next tensor would push the current one past max_shard_bytes (a tensor larger than
  // the limit gets a shard of its own). Shards are written first, the index last; every file is
  // written atomically. One shard is written as a plain model.safetensors with no index, as HF
  // does. The layout not written (the index, or model.safetensors) is removed if present, so the
  // directory never holds two checkpoints that disagree. Rewriting a directory in place is not
  // crash-safe as a whole (each file is); for that, write a fresh directory and rename it.
  void write_sharded(const std::string& dir, uint64_t max_shard_bytes) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t nbytes;
    const void* data;  // CPU view data, or nullptr when fill is used
    std::function<void(void*)> fill;
  };
  void check_new_name(const std::string& name);
  std::string header_for(const std::vector<const Entry*>& entries) const;
  // Streams the file made of `entries` (already in name order) into `sink`.
  void emit(const std::vector<const Entry*>& entries,
            const std::function<void(const void*, size_t)>& sink) const;
  void write_entries(const std::string& path, const std::vector<const Entry*>& entries) const;
  // Data order of the reference writer: dtype alignment descending, then name.
  static std::vector<const Entry*> in_file_order(std::vector<const Entry*> entries);
  std::vector<const Entry*> sorted_entries() const;  // all entries, in_file_order

  std::vector<Entry> entries_;
  std::set<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

// Convenience wrappers around SafetensorsWriter for CPU views (names from the views).
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
std::vector<uint8_t> safetensors_to_bytes(const std::vector<TensorView>& tensors,
                                          const std::map<std::string, std::string>& metadata = {});
void write_sharded(const std::string& dir, const std::vector<TensorView>& tensors,
                   uint64_t max_shard_bytes,
                   const std::map<std::string, std::string>& metadata = {});

// A checkpoint directory in the HF layout: model.safetensors.index.json and its shards, or a
// single model.safetensors (preferred when both exist, as transformers does). open() also accepts
// the path of a .safetensors file, or of an index .json file (its shards are read beside it). Every
// shard is mapped and validated at open(), and every tensor of the weight map must be in its shard;
// tensors a shard holds beyond the weight map are ignored. Errors name the index file, the tensor
// and the shard.
class ShardedCheckpoint {
 public:
  static ShardedCheckpoint open(const std::string& dir_or_file);

  std::vector<std::string> names() const;  // sorted
  size_t size() const { return tensor_shard_.size(); }
  bool has(const std::string& name) const { return tensor_shard_.count(name) != 0; }
  const SafetensorsTensorInfo& info(const std::string& name) const;
  TensorView view(const std::string& name) const;
  std::span<const uint8_t> bytes(const std::string& name) const;
  void copy_to(const std::string& name, const TensorView& dst) const;
  // The shard holding `name`.
  const SafetensorsFile& shard_of(const std::string& name) const;

  size_t num_shards() const { return shards_.size(); }
  const SafetensorsFile& shard(size_t i) const { return shards_.at(i); }
  // The index's "metadata" object ({} for a single file), e.g. {"total_size": 123}.
  const Json& index_metadata() const { return index_metadata_; }
  // Where the tensor list came from: the index file, or the single .safetensors file.
  const std::string& source() const { return source_; }

 private:
  size_t shard_index(const std::string& name) const;
  std::string source_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> tensor_shard_;
  Json index_metadata_ = Json::object();
};

// "model-00002-of-00005.safetensors" (1-based index).
std::string safetensors_shard_name(size_t index, size_t count);

}  // namespace r1kit
