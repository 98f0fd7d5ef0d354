// Tensor views. Invariant: a view never owns memory; strides are in elements and a slice keeps
// the parent's strides. A tensor with ndim == 0 is empty (numel() == 0).
#include "backend/tensor.h"

namespace pagedllm {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return 4;
    case DType::kBFloat16: return 2;
    case DType::kFloat16: return 2;
    case DType::kInt32: return 4;
    case DType::kInt64: return 8;
  }
  PAGEDLLM_CHECK(false, "unknown dtype " << static_cast<int>(dtype));
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kBFloat16: return "bfloat16";
    case DType::kFloat16: return "float16";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
  }
  return "unknown";
}

Tensor Tensor::contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape) {
  PAGEDLLM_CHECK(shape.size() <= static_cast<size_t>(kMaxDims),
                 "a Tensor has at most " << kMaxDims << " dims, got " << shape.size());
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) {
    PAGEDLLM_CHECK(s >= 0, "negative dim " << s << " at index " << i);
    t.shape[i++] = s;
  }
  int64_t stride = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.stride[d] = stride;
    stride *= t.shape[d];
  }
  return t;
}

int64_t Tensor::numel() const {
  if (ndim == 0) return 0;
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] != 1 && stride[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  PAGEDLLM_CHECK(ndim >= 1, "slice_rows on a tensor without dims");
  PAGEDLLM_CHECK(0 <= begin && begin <= end && end <= shape[0],
                 "slice_rows [" << begin << ", " << end << ") out of [0, " << shape[0] << ")");
  Tensor t = *this;
  t.data = static_cast<char*>(data) + begin * stride[0] * static_cast<int64_t>(dtype_size(dtype));
  t.shape[0] = end - begin;
  return t;
}

Tensor Tensor::slice_cols(int64_t begin, int64_t end) const {
  PAGEDLLM_CHECK(ndim >= 1, "slice_cols on a tensor without dims");
  int last = ndim - 1;
  PAGEDLLM_CHECK(0 <= begin && begin <= end && end <= shape[last],
                 "slice_cols [" << begin << ", " << end << ") out of [0, " << shape[last] << ")");
  Tensor t = *this;
  t.data = static_cast<char*>(data) +
           begin * stride[last] * static_cast<int64_t>(dtype_size(dtype));
  t.shape[last] = end - begin;
  return t;
}

Tensor Tensor::view(std::initializer_list<int64_t> new_shape) const {
  PAGEDLLM_CHECK(is_contiguous(), "view of a non-contiguous tensor");
  Tensor t = contiguous(data, dtype, new_shape);
  PAGEDLLM_CHECK(t.numel() == numel(),
                 "view changes the number of elements: " << numel() << " -> " << t.numel());
  return t;
}

}  // namespace pagedllm
