// Tensors: a non-owning TensorView (pointer, dtype, device, up to 4 dims with strides, and a stable
// name that appears in errors), an owning move-only Tensor, and FlatArena, which carves many named
// tensors out of one allocation so optimizer, grad-norm and all-reduce run over one buffer.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace r1kit {

class Allocator;

constexpr int kMaxDims = 4;
using Shape = std::vector<int64_t>;

// Formats a shape as "(4, 7)".
std::string shape_str(const int64_t* dims, int ndim);
std::string shape_str(const Shape& s);

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::f32;
  Device device;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> stride{};  // in elements
  std::string name;                        // e.g. "layers.3.self_attn.kv_b_proj.weight"

  TensorView() = default;
  // A contiguous (row-major) view.
  TensorView(void* data, DType dtype, Device device, const Shape& shape, std::string name = "");

  int64_t size(int d) const;  // negative d counts from the end
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool is_contiguous() const;
  bool empty() const { return numel() == 0; }
  // False for a default-constructed view, which ops take as "no tensor given" for optional
  // arguments. (A default view has ndim 0 and so numel 1: test defined(), not empty().)
  bool defined() const { return data != nullptr || ndim > 0; }
  Shape dims() const { return Shape(shape.begin(), shape.begin() + ndim); }
  // "name (4, 7) bf16 cpu" for error messages.
  std::string describe() const;
  std::string shape_string() const { return shape_str(shape.data(), ndim); }

  template <class T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
  // Element pointer for a contiguous view's flat index.
  void* element(int64_t flat_index) const {
    return static_cast<char*>(data) + flat_index * static_cast<int64_t>(dtype_size(dtype));
  }

  // New views of the same memory.
  TensorView reshape(const Shape& new_shape) const;    // contiguous only; one -1 allowed
  TensorView slice(int64_t begin, int64_t end) const;  // rows [begin, end) of dim 0
  TensorView select(int64_t i) const;                  // drops dim 0
  TensorView flatten() const { return reshape({numel()}); }
  TensorView renamed(std::string new_name) const;
  // True when the byte ranges of the two views overlap.
  bool overlaps(const TensorView& other) const;
};

// Owning storage from an Allocator; move-only. The allocator must outlive the tensor.
class Tensor {
 public:
  Tensor() = default;
  Tensor(const Shape& shape, DType dtype, Allocator& alloc, std::string name = "");
  ~Tensor();
  Tensor(Tensor&& o) noexcept;
  Tensor& operator=(Tensor&& o) noexcept;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  const TensorView& view() const { return view_; }
  operator const TensorView&() const { return view_; }  // NOLINT: views are what ops take
  void* data() const { return view_.data; }
  template <class T>
  T* ptr() const {
    return view_.ptr<T>();
  }
  DType dtype() const { return view_.dtype; }
  Device device() const { return view_.device; }
  int64_t numel() const { return view_.numel(); }
  size_t nbytes() const { return view_.nbytes(); }
  int64_t size(int d) const { return view_.size(d); }
  const std::string& name() const { return view_.name; }
  bool defined() const { return view_.data != nullptr || view_.ndim > 0; }

 private:
  void release();
  TensorView view_;
  Allocator* alloc_ = nullptr;
  size_t capacity_ = 0;
};

// Many named tensors of one dtype in one allocation, each aligned to kAlignBytes; padding is
// zero so whole-buffer ops (AdamW, norms, all-reduce) can run over flat() safely.
class FlatArena {
 public:
  static constexpr size_t kAlignBytes = 256;

  explicit FlatArena(DType dtype) : dtype_(dtype) {}
  // Layout phase: returns the index of the new entry. Names must be unique.
  size_t add(std::string name, const Shape& shape);
  // Allocates the buffer and zero-fills it; no add() after this.
  void allocate(Allocator& alloc);
  // Same layout as `other` (e.g. gradients and optimizer state mirroring the parameters).
  static FlatArena like(const FlatArena& other, Allocator& alloc, DType dtype);

  size_t size() const { return entries_.size(); }
  bool allocated() const { return storage_.defined(); }
  TensorView view(size_t i) const;
  TensorView view(const std::string& name) const;  // throws naming the missing tensor
  bool contains(const std::string& name) const;
  const std::string& name(size_t i) const { return entries_.at(i).name; }
  TensorView flat() const { return storage_.view(); }  // the whole buffer, 1-D
  DType dtype() const { return dtype_; }
  int64_t numel_used() const;  // without padding

 private:
  struct Entry {
    std::string name;
    Shape shape;
    int64_t offset;  // elements
  };
  DType dtype_;
  std::vector<Entry> entries_;
  int64_t total_ = 0;
  Tensor storage_;
};

}  // namespace r1kit
