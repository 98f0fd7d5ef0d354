// out = silu(x[:, :I]) * x[:, I:] (the Llama MLP activation), see SiluAndMulParams in ops.h.
#pragma once

#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// Preconditions (checked): x [T, 2 * I] and out [T, I] have the same float dtype, unit column stride.
void launch_silu_and_mul(const SiluAndMulParams& p, gpuStream_t stream);

}  // namespace pagedllm
