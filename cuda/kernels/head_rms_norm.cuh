// Per-head RMSNorm in place over D (Qwen3 q/k norms), see HeadRmsNormParams in ops.h.
#pragma once

#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// Preconditions (checked): x [T, num_heads, D] float dtype, unit stride over D, any token and
// head strides; weight [D] of any float dtype, unit stride.
void launch_head_rms_norm(const HeadRmsNormParams& p, gpuStream_t stream);

}  // namespace pagedllm
