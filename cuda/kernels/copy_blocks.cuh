// Copy-on-write of KV blocks in every layer's K and V cache, see CopyBlocksParams in ops.h.
#pragma once

#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// Preconditions (checked): key_caches and value_caches contiguous int64 [L] holding device
// addresses; block_mapping contiguous int64 [N, 2]; all three live in device memory;
// num_blocks and block_bytes positive. Not checked (device memory): a pair with an id outside
// [0, num_blocks) is skipped; sources and destinations must be disjoint (ops.h).
void launch_copy_blocks(const CopyBlocksParams& p, gpuStream_t stream);

}  // namespace pagedllm
