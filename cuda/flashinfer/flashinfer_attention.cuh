// FlashInferAttention: paged attention through FlashInfer's batch decode / batch prefill kernels
// (CUDA only: FlashInfer is a CUDA header library; the HIP build has no FlashInfer and uses the
// native kernels). Built when third_party/pagedllm_flashinfer.cmake found FlashInfer's headers.
//
// Per step: plan() builds the page table (indptr / indices / last_page_len from the block
// tables and seq_lens) on the host and uploads it; the first run() of the step makes FlashInfer's
// plan (its host-side work split) for the step's kind and every run() of the step (one per layer)
// reuses it. Steps FlashInfer does not cover return false from run() and take the native path:
// dtypes or head dims not instantiated, float32, GQA groups its decode kernel lacks, a
// non-contiguous out, a step larger than the limits. FlashInfer steps run eagerly (the host plan
// is not part of a captured graph; GpuAttention sends captured steps to the native kernels).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/attention_plan.h"
#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

class FlashInferAttention {
 public:
  // Allocates device and page-locked scratch for steps within the limits of `limits`
  // (max_num_seqs, block_table_stride).
  explicit FlashInferAttention(const AttentionPlanInputs& limits);
  ~FlashInferAttention();
  FlashInferAttention(const FlashInferAttention&) = delete;
  FlashInferAttention& operator=(const FlashInferAttention&) = delete;

  // Host part of a step; false when the step exceeds the limits (its runs then return false).
  bool plan(const AttentionPlanInputs& in, gpuStream_t stream);
  // Enqueues p on FlashInfer and returns true, or returns false (nothing enqueued) when the
  // step is not covered. Fails with a CHECK when a FlashInfer launch fails.
  bool run(const PagedAttentionParams& p, gpuStream_t stream);

  size_t device_bytes() const;
  // Why the last plan or run returned false ("" when it did not).
  const std::string& last_error() const { return last_error_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string last_error_;
};

}  // namespace pagedllm
