// A sequential model of the GPU sampling kernel (cuda/kernels/sampling.cu): the same steps on
// one packed row (SampleRowParams + token lists, sample/device_sampling.h), with the kernel's
// key searches (one bit per step here, kDigitBits per pass on the GPU: the same answer) instead of
// the host Sampler's sorts, and its double exp rounded to float.
// Used by the CPU tests to check the kernel's algorithm against the host Sampler without a GPU.
#pragma once

#include <cstdint>

#include "backend/ops.h"

namespace pagedllm {

// The token the kernel picks for logits [n] and a packed row; lists: the pack's token lists.
int model_kernel(const float* logits, int n, const SampleRowParams& row, const int32_t* lists);

}  // namespace pagedllm
