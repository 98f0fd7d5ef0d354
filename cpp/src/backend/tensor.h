// Tensor: a non-owning, strided view of memory that lives on a backend's device.
// Buffer: an owning allocation made by a Backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "util/check.h"

namespace pagedllm {

enum class DType : int32_t { kFloat32 = 0, kBFloat16, kFloat16, kInt32, kInt64 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "float32", "bfloat16", ...

struct Tensor {
  static constexpr int kMaxDims = 4;
  void* data = nullptr;
  DType dtype = DType::kFloat32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {0, 0, 0, 0};
  int64_t stride[kMaxDims] = {0, 0, 0, 0};  // in elements

  // A contiguous (row-major) view.
  static Tensor contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape);

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool is_contiguous() const;
  int64_t size(int dim) const { return shape[dim]; }
  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }
  // Rows [begin, end) along dim 0.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // Columns [begin, end) along the last dim (keeps the row stride: a strided view).
  Tensor slice_cols(int64_t begin, int64_t end) const;
  // Same memory with a new contiguous shape; precondition: is_contiguous() and equal numel.
  Tensor view(std::initializer_list<int64_t> shape) const;
};

}  // namespace pagedllm
