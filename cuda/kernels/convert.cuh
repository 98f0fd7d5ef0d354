// Element-wise dtype cast between the float types (float32, bfloat16, float16; either way,
// including same-type copies), rounding to nearest even. Used by the backend for weight upload.
#pragma once

#include "backend/tensor.h"
#include "gpu_compat.cuh"

namespace pagedllm {

struct ConvertParams {
  Tensor src;  // [...] float32, bfloat16 or float16, contiguous
  Tensor dst;  // same shape as src, float32, bfloat16 or float16, contiguous
};

// Preconditions (checked): same shape, both contiguous, float dtypes.
void launch_convert(const ConvertParams& p, gpuStream_t stream);

}  // namespace pagedllm
