// RMSNorm with the optional fused residual add, see RmsNormParams in ops.h:
//   residual += x (stored in the activation dtype), out = rms_norm(residual) * weight;
//   without a residual, out = rms_norm(x) * weight. x and out may alias.
#pragma once

#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// Preconditions (checked): x, out (and residual when set) [N, H] of one float dtype with unit
// column stride and any row stride; weight [H] of any float dtype, unit stride.
void launch_rms_norm(const RmsNormParams& p, gpuStream_t stream);

}  // namespace pagedllm
