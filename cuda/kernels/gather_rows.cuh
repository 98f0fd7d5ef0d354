// Row gather: out[r, :] = x[indices[r], :], see GatherRowsParams in ops.h.
#pragma once

#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// Preconditions (checked): x [N, H] and out [R, H] of one dtype (any dtype: rows are copied as
// bytes) with unit column stride; indices contiguous int32 [R]. Not checked (device memory):
// the indices; a row whose index is outside [0, N) is filled with 0xff bytes (NaN for the
// float dtypes, -1 for the integer ones).
void launch_gather_rows(const GatherRowsParams& p, gpuStream_t stream);

}  // namespace pagedllm
