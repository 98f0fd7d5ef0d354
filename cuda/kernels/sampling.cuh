// Device sampling (SampleParams in ops.h): one token per logits row with the host Sampler's
// semantics (sample/sampler.h), so equal logits and rows give the host's token.
#pragma once

#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// Preconditions (checked): logits [R, V] float32 with unit column stride, V < 2^31; rows
// [R, kSampleRowInts] int32, contiguous and 8-byte aligned; token_lists int32 holding every
// range the rows name, with ids < V; work [R, V] float32 contiguous; token_ids [R] int32;
// logprobs [R] float32 and ranks [R] int32, each optional (data == nullptr). Reads no device
// memory on the host, allocates nothing: capturable in a graph.
void launch_sample(const SampleParams& p, gpuStream_t stream);

}  // namespace pagedllm
