// Packing of linear weights into the panel layout of packed_weight.h (plain x86-64 code, run
// once per weight at load).
#include "backend/cpu/packed_weight.h"

#include <functional>

#include "util/thread_pool.h"

namespace pagedllm {
namespace cpu {

namespace {

// Column slot of panel column j in a packed row of 32 elements.
int64_t slot_of(int64_t j, bool bf16) {
  if (!bf16) return j;
  return j < kPanelCols / 2 ? 2 * j : 2 * (j - kPanelCols / 2) + 1;
}

template <typename T>
void pack_panels(const std::vector<const T*>& rows, int64_t k, bool bf16, T* dst, int64_t p0,
                 int64_t p1) {
  const int64_t n = static_cast<int64_t>(rows.size());
  for (int64_t p = p0; p < p1; ++p) {
    T* panel = dst + p * k * kPanelCols;  // [K, 32]
    for (int64_t j = 0; j < kPanelCols && p * kPanelCols + j < n; ++j) {
      const T* src = rows[p * kPanelCols + j];  // [K]
      T* col = panel + slot_of(j, bf16);
      for (int64_t kk = 0; kk < k; ++kk) col[kk * kPanelCols] = src[kk];
    }
  }
}

}  // namespace

Tensor pack_linear_rows(const std::vector<Tensor>& parts, void* dst, ThreadPool& pool) {
  const DType dtype = parts.front().dtype;
  const int64_t k = parts.front().shape[1];
  const bool bf16 = dtype == DType::kBFloat16;
  std::vector<const char*> rows;  // [N] start of each row of the concatenation
  const size_t row_bytes = static_cast<size_t>(k) * dtype_size(dtype);
  for (const Tensor& t : parts)
    for (int64_t r = 0; r < t.shape[0]; ++r) rows.push_back(static_cast<const char*>(t.data) + r * row_bytes);
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t panels = packed_panels(n);
  auto body = [&](int64_t p0, int64_t p1, int) {
    if (bf16) {
      std::vector<const uint16_t*> r16(rows.size());
      for (size_t i = 0; i < rows.size(); ++i) r16[i] = reinterpret_cast<const uint16_t*>(rows[i]);
      pack_panels(r16, k, true, static_cast<uint16_t*>(dst), p0, p1);
    } else {
      std::vector<const uint32_t*> r32(rows.size());
      for (size_t i = 0; i < rows.size(); ++i) r32[i] = reinterpret_cast<const uint32_t*>(rows[i]);
      pack_panels(r32, k, false, static_cast<uint32_t*>(dst), p0, p1);
    }
  };
  pool.parallel_for(panels, 1, std::cref(body));
  return Tensor::contiguous(dst, dtype, {panels, k, kPanelCols});
}

}  // namespace cpu
}  // namespace pagedllm
