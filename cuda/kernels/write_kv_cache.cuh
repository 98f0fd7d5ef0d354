// Stores this step's K and V rows in the paged cache, see WriteKvCacheParams in ops.h: token t
// goes to block slot / block_size, offset slot % block_size; slots < 0 are skipped.
#pragma once

#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// Preconditions (checked): k, v [T, num_kv_heads, D] of one float dtype with unit stride over
// D (any token and head strides); slot_mapping contiguous int64 [T]; k_cache and v_cache
// contiguous [num_blocks, num_kv_heads, block_size, D] of one float dtype (may differ from
// k's; values are rounded to nearest even). Not checked (device memory): the slots; a slot
// >= num_blocks * block_size is skipped like a negative one.
void launch_write_kv_cache(const WriteKvCacheParams& p, gpuStream_t stream);

}  // namespace pagedllm
