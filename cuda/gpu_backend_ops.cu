// GpuBackend's model ops: each makes the device current and enqueues its launcher on the
// backend's stream (the launchers check shapes and never allocate or synchronize).
#include "attention_dispatch.cuh"
#include "gpu_backend.cuh"
#include "kernels/copy_blocks.cuh"
#include "kernels/embedding.cuh"
#include "kernels/gather_rows.cuh"
#include "kernels/head_rms_norm.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/rotary_embedding.cuh"
#include "kernels/sampling.cuh"
#include "kernels/silu_and_mul.cuh"
#include "kernels/write_kv_cache.cuh"

namespace pagedllm {

void GpuBackend::embedding(const EmbeddingParams& p) {
  use_device();
  launch_embedding(p, stream_);
}

void GpuBackend::rms_norm(const RmsNormParams& p) {
  use_device();
  launch_rms_norm(p, stream_);
}

void GpuBackend::head_rms_norm(const HeadRmsNormParams& p) {
  use_device();
  launch_head_rms_norm(p, stream_);
}

void GpuBackend::linear(const LinearParams& p) {
  use_device();
  gemm_->linear(p);
}

void GpuBackend::rotary_embedding(const RotaryParams& p) {
  use_device();
  launch_rotary_embedding(p, stream_);
}

void GpuBackend::silu_and_mul(const SiluAndMulParams& p) {
  use_device();
  launch_silu_and_mul(p, stream_);
}

void GpuBackend::write_kv_cache(const WriteKvCacheParams& p) {
  use_device();
  launch_write_kv_cache(p, stream_);
}

void GpuBackend::paged_attention(const PagedAttentionParams& p) {
  use_device();
  attention_->run(p, stream_);
}

void GpuBackend::gather_rows(const GatherRowsParams& p) {
  use_device();
  launch_gather_rows(p, stream_);
}

void GpuBackend::copy_blocks(const CopyBlocksParams& p) {
  use_device();
  launch_copy_blocks(p, stream_);
}

void GpuBackend::sample(const SampleParams& p) {
  use_device();
  launch_sample(p, stream_);
}

}  // namespace pagedllm
