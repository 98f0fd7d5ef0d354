// Packed linear weights of the CPU backend: the layout CpuBackend::pack_linear_weight builds
// once at load and the packed linear kernels (packed_linear_impl.h) read; no per-call packing.
//
// A packed [N, K] weight W is a contiguous Tensor [P, K, kPanelCols] with P = ceil(N / 32)
// panels. Panel p holds rows [32p, 32p + 32) of W (rows >= N are zero), k-major, so the 32
// weights one depth k contributes to the panel's 32 output columns are adjacent:
//   float32:  [p, k, j]              = W[32p + j, k]                    (j < 32)
//   bfloat16: [p, k, 2i], [p, k, 2i+1] = W[32p + i, k], W[32p + 16 + i, k] (i < 16)
// i.e. as 32-bit words, word i holds column i in its low half and column 16 + i in its high
// half: shifting a word left by 16 or masking it to its high half widens a column to float32
// exactly. N is not stored: linear() takes it from out ([M, N]).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/tensor.h"

namespace pagedllm {

class ThreadPool;

namespace cpu {

constexpr int64_t kPanelCols = 32;

inline int64_t packed_panels(int64_t n) { return (n + kPanelCols - 1) / kPanelCols; }

// A packed weight has ndim 3 and kPanelCols columns per panel (an unpacked one has ndim 2).
inline bool is_packed_weight(const Tensor& w) { return w.ndim == 3 && w.shape[2] == kPanelCols; }

// Writes the packed layout of the row concatenation of `parts` ([N_i, K] each, contiguous,
// one dtype: float32 or bfloat16) into `dst` and returns the packed view of it.
// Precondition (checked by the caller): dst holds packed_panels(sum N_i) * K * 32 elements of
// the parts' dtype and is zero-filled.
Tensor pack_linear_rows(const std::vector<Tensor>& parts, void* dst, ThreadPool& pool);

}  // namespace cpu
}  // namespace pagedllm
