// Naive host references of the GPU ops, one per launcher, taking the same params structs with
// tensors that point into host memory (TestTensor::host()). Math in double from the stored
// input values; each stored result is rounded to its tensor's dtype (round_to_dtype), and a
// value a kernel stores and reads back (rms_norm's residual) is read back rounded, as on the
// device. Shape preconditions are the launchers'; the references do not re-check them.
#pragma once

#include "backend/ops.h"
#include "kernels/convert.cuh"

namespace pagedllm_test {
namespace ref {

// Element `off` (in elements) of t decoded to double / stored rounded to t's dtype.
double load(const pagedllm::Tensor& t, int64_t off);
void store(const pagedllm::Tensor& t, int64_t off, double v);

void embedding(const pagedllm::EmbeddingParams& p);
void rms_norm(const pagedllm::RmsNormParams& p);
void head_rms_norm(const pagedllm::HeadRmsNormParams& p);
void rotary_embedding(const pagedllm::RotaryParams& p);
void silu_and_mul(const pagedllm::SiluAndMulParams& p);
// Slots < 0 and slots >= num_blocks * block_size are skipped.
void write_kv_cache(const pagedllm::WriteKvCacheParams& p);
void gather_rows(const pagedllm::GatherRowsParams& p);
// key_caches / value_caches hold host addresses here; pairs with an id outside [0, num_blocks)
// are skipped.
void copy_blocks(const pagedllm::CopyBlocksParams& p);
void convert(const pagedllm::ConvertParams& p);

}  // namespace ref
}  // namespace pagedllm_test
