// Rotary embedding in place on q and k, NeoX / rotate_half layout (as Hugging Face Llama), see
// RotaryParams in ops.h: for i < D/2, with c = cache[pos, i] and s = cache[pos, D/2 + i],
//   x[i] = x[i] * c - x[i + D/2] * s,   x[i + D/2] = x[i + D/2] * c + x[i] * s.
#pragma once

#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// Preconditions (checked): positions contiguous int32 [T]; q [T, num_q_heads, D] and k
// [T, num_kv_heads, D] of one float dtype, unit stride over D, any token and head strides;
// D even; cos_sin_cache float32 [max_position, D] with unit column stride. Not checked (device
// memory): the positions; a token whose position is outside [0, max_position) gets NaN q and k.
void launch_rotary_embedding(const RotaryParams& p, gpuStream_t stream);

}  // namespace pagedllm
