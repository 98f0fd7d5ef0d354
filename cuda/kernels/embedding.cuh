// Embedding lookup: out[t, :] = table[token_ids[t], :], see EmbeddingParams in ops.h.
#pragma once

#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// Preconditions (checked): token_ids contiguous int32 [T]; table [V, H] and out [T, H] float
// dtypes (they may differ) with unit column stride. Not checked (device memory): the ids; a
// row whose id is outside [0, V) is written as NaN.
void launch_embedding(const EmbeddingParams& p, gpuStream_t stream);

}  // namespace pagedllm
