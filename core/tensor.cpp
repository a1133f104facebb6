// TensorView, Tensor and FlatArena.
#include "core/tensor.h"

#include <cstring>

#include "core/allocator.h"
#include "core/cuda_check.h"

namespace r1kit {

std::string shape_str(const int64_t* dims, int ndim) {
  std::string s = "(";
  for (int i = 0; i < ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + ")";
}
std::string shape_str(const Shape& s) {
  return shape_str(s.data(), static_cast<int>(s.size()));
}

TensorView::TensorView(void* d, DType t, Device dev, const Shape& s, std::string n)
    : data(d), dtype(t), device(dev), ndim(static_cast<int>(s.size())), name(std::move(n)) {
  R1_CHECK(s.size() <= kMaxDims, "tensor '{}' has {} dims {}; at most {} are supported", name,
           s.size(), shape_str(s), kMaxDims);
  int64_t st = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    R1_CHECK(s[i] >= 0, "tensor '{}' has a negative dim in {}", name, shape_str(s));
    shape[i] = s[i];
    stride[i] = st;
    st *= s[i];
  }
}

int64_t TensorView::size(int d) const {
  int dd = d < 0 ? d + ndim : d;
  R1_CHECK(dd >= 0 && dd < ndim, "dim {} out of range for '{}' {}", d, name, shape_string());
  return shape[dd];
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

bool TensorView::is_contiguous() const {
  int64_t st = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] != 1 && stride[i] != st) return false;
    st *= shape[i];
  }
  return true;
}

std::string TensorView::describe() const {
  return fmt::format("'{}' {} {} {}", name.empty() ? "<unnamed>" : name, shape_string(),
                     dtype_name(dtype), device.str());
}

TensorView TensorView::reshape(const Shape& new_shape) const {
  R1_CHECK(is_contiguous(), "reshape of non-contiguous tensor {}", describe());
  Shape s = new_shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      R1_CHECK(infer < 0, "reshape of {} to {}: at most one -1", describe(), shape_str(new_shape));
      infer = static_cast<int>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    R1_CHECK(known > 0 && numel() % known == 0, "cannot reshape {} to {}", describe(),
             shape_str(new_shape));
    s[infer] = numel() / known;
  }
  int64_t n = 1;
  for (auto v : s) n *= v;
  R1_CHECK(n == numel(), "cannot reshape {} ({} elements) to {}", describe(), numel(),
           shape_str(new_shape));
  return TensorView(data, dtype, device, s, name);
}

TensorView TensorView::slice(int64_t begin, int64_t end) const {
  R1_CHECK(ndim >= 1 && 0 <= begin && begin <= end && end <= shape[0],
           "slice [{}, {}) out of range for {}", begin, end, describe());
  TensorView v = *this;
  v.shape[0] = end - begin;
  v.data = static_cast<char*>(data) + begin * stride[0] * static_cast<int64_t>(dtype_size(dtype));
  return v;
}

TensorView TensorView::select(int64_t i) const {
  R1_CHECK(ndim >= 1 && 0 <= i && i < shape[0], "select {} out of range for {}", i, describe());
  TensorView v;
  v.data = static_cast<char*>(data) + i * stride[0] * static_cast<int64_t>(dtype_size(dtype));
  v.dtype = dtype;
  v.device = device;
  v.ndim = ndim - 1;
  for (int d = 1; d < ndim; ++d) {
    v.shape[d - 1] = shape[d];
    v.stride[d - 1] = stride[d];
  }
  v.name = name + "[" + std::to_string(i) + "]";
  return v;
}

TensorView TensorView::renamed(std::string new_name) const {
  TensorView v = *this;
  v.name = std::move(new_name);
  return v;
}

bool TensorView::overlaps(const TensorView& other) const {
  if (data == nullptr || other.data == nullptr || !(device == other.device)) return false;
  if (empty() || other.empty()) return false;
  // Conservative span: from the first element to one past the furthest one.
  auto span = [](const TensorView& v) {
    int64_t last = 0;
    for (int i = 0; i < v.ndim; ++i) last += (v.shape[i] - 1) * v.stride[i];
    auto b = reinterpret_cast<uintptr_t>(v.data);
    return std::pair<uintptr_t, uintptr_t>(b, b + (last + 1) * dtype_size(v.dtype));
  };
  auto [a0, a1] = span(*this);
  auto [b0, b1] = span(other);
  return a0 < b1 && b0 < a1;
}

// --- Tensor ----------------------------------------------------------------------------------

Tensor::Tensor(const Shape& shape, DType dtype, Allocator& alloc, std::string name)
    : view_(nullptr, dtype, alloc.device(), shape, std::move(name)), alloc_(&alloc) {
  capacity_ = view_.nbytes();
  if (capacity_ > 0) view_.data = alloc.allocate(capacity_);
}

Tensor::~Tensor() {
  release();
}

void Tensor::release() {
  if (alloc_ && view_.data) alloc_->deallocate(view_.data, capacity_);
  view_.data = nullptr;
  alloc_ = nullptr;
  capacity_ = 0;
}

Tensor::Tensor(Tensor&& o) noexcept
    : view_(std::move(o.view_)), alloc_(o.alloc_), capacity_(o.capacity_) {
  o.view_.data = nullptr;
  o.view_.ndim = 0;
  o.alloc_ = nullptr;
  o.capacity_ = 0;
}

Tensor& Tensor::operator=(Tensor&& o) noexcept {
  if (this != &o) {
    release();
    view_ = std::move(o.view_);
    alloc_ = o.alloc_;
    capacity_ = o.capacity_;
    o.view_.data = nullptr;
    o.view_.ndim = 0;
    o.alloc_ = nullptr;
    o.capacity_ = 0;
  }
  return *this;
}

// --- FlatArena -------------------------------------------------------------------------------

size_t FlatArena::add(std::string name, const Shape& shape) {
  R1_CHECK(!allocated(), "FlatArena: add('{}') after allocate()", name);
  R1_CHECK(!contains(name), "FlatArena: duplicate tensor name '{}'", name);
  R1_CHECK(shape.size() <= kMaxDims, "FlatArena: '{}' has too many dims {}", name,
           shape_str(shape));
  int64_t n = 1;
  for (auto d : shape) {
    R1_CHECK(d >= 0, "FlatArena: '{}' has a negative dim {}", name, shape_str(shape));
    n *= d;
  }
  const int64_t align = static_cast<int64_t>(kAlignBytes / dtype_size(dtype_));
  int64_t offset = (total_ + align - 1) / align * align;
  entries_.push_back({std::move(name), shape, offset});
  total_ = offset + n;
  return entries_.size() - 1;
}

void FlatArena::allocate(Allocator& alloc) {
  R1_CHECK(!allocated(), "FlatArena: allocate() called twice");
  const int64_t align = static_cast<int64_t>(kAlignBytes / dtype_size(dtype_));
  int64_t padded = std::max<int64_t>(align, (total_ + align - 1) / align * align);
  storage_ = Tensor({padded}, dtype_, alloc, "arena");
  if (alloc.device().is_cpu()) {
    std::memset(storage_.data(), 0, storage_.nbytes());
  } else {
    cuda_memset_zero(storage_.data(), storage_.nbytes());
  }
}

FlatArena FlatArena::like(const FlatArena& other, Allocator& alloc, DType dtype) {
  FlatArena a(dtype);
  for (const auto& e : other.entries_) a.add(e.name, e.shape);
  a.allocate(alloc);
  return a;
}

TensorView FlatArena::view(size_t i) const {
  R1_CHECK(allocated(), "FlatArena: view() before allocate()");
  R1_CHECK(i < entries_.size(), "FlatArena: index {} out of range ({} tensors)", i,
           entries_.size());
  const Entry& e = entries_[i];
  return TensorView(static_cast<char*>(storage_.data()) + e.offset * dtype_size(dtype_), dtype_,
                    storage_.device(), e.shape, e.name);
}

TensorView FlatArena::view(const std::string& name) const {
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name == name) return view(i);
  R1_THROW("no tensor named '{}' in this arena ({} tensors)", name, entries_.size());
}

bool FlatArena::contains(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return true;
  return false;
}

int64_t FlatArena::numel_used() const {
  int64_t n = 0;
  for (const auto& e : entries_) {
    int64_t k = 1;
    for (auto d : e.shape) k *= d;
    n += k;
  }
  return n;
}

}  // namespace r1kit
