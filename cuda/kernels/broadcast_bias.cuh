// out[m, :] = bias for every row m: the first half of a GEMM with bias (the GEMM then adds
// x @ weight^T with beta = 1, so the sum is rounded once), see gemm.cuh.
#pragma once

#include "backend/tensor.h"
#include "gpu_compat.cuh"

namespace pagedllm {

struct BroadcastBiasParams {
  Tensor bias;  // [N] float32, bfloat16 or float16, contiguous
  Tensor out;   // [M, N] float32, bfloat16 or float16 (row stride may exceed N)
};

// Preconditions (checked): out is 2-d with unit column stride, bias is [N].
void launch_broadcast_bias(const BroadcastBiasParams& p, gpuStream_t stream);

}  // namespace pagedllm
