// The attention_backend choice of the GPU backend: FlashInfer's kernels or the native ones
// (kernels/paged_attention.cuh), and the per-backend state both need (the native split-K
// workspace, FlashInfer's plan and buffers).
//
// Use from GpuBackend: construct one GpuAttention from EngineConfig.attention_backend; forward
// Backend::plan_attention(in) to plan(in, stream) and Backend::paged_attention(p) to run(p, stream).
// Invariants: plan() runs on the host before the step's forward pass (never inside graph
// capture the first time: it allocates on its first call); run() never allocates, synchronizes
// or reads device memory on the host. A step under graph capture always takes the native path
// (its grid depends only on the static limits), so graph replay is independent of any host
// plan; FlashInfer serves eager steps. "auto" keeps decode steps (max_query_len <= 1) native
// even when eager, so graphs on and off compute decode identically.
#pragma once

#include <memory>
#include <string>

#include "backend/attention_plan.h"
#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// kNative: the native kernels. kFlashInfer: FlashInfer for every eager step it covers.
// kFlashInferPrefill ("auto" with FlashInfer): FlashInfer for prefill / mixed steps, native decode.
enum class AttentionBackendKind { kNative, kFlashInfer, kFlashInferPrefill };

// True when this build has the FlashInfer glue (FlashInfer headers were found at configure time).
bool flashinfer_compiled();

// "native", "flashinfer" or "auto" (kFlashInferPrefill when FlashInfer is compiled in, else
// kNative; FlashInfer's decode vs native decode is still to be measured on a GPU) -> *kind. Returns
// false with *error set for an unknown name or "flashinfer" in a build without it.
bool resolve_attention_backend(const std::string& name, AttentionBackendKind* kind, std::string* error);

class FlashInferAttention;

class GpuAttention {
 public:
  explicit GpuAttention(AttentionBackendKind kind);
  ~GpuAttention();
  GpuAttention(const GpuAttention&) = delete;
  GpuAttention& operator=(const GpuAttention&) = delete;

  AttentionBackendKind kind() const { return kind_; }
  const char* name() const;

  // Host part of a step: on the first call allocates the native workspace for the limits in
  // `in` (max_num_seqs, num_q_heads, max_model_len, head_dim) and FlashInfer's buffers; then
  // (FlashInfer) builds the step's page table and plan, uploading it on `stream`.
  void plan(const AttentionPlanInputs& in, gpuStream_t stream);

  // Enqueues the attention of p on stream (see the invariants above). Without a prior plan()
  // the native path runs without split-K (correct, slower for long contexts).
  void run(const PagedAttentionParams& p, gpuStream_t stream);

  // Bytes of device memory this object holds.
  size_t device_bytes() const;

 private:
  AttentionBackendKind kind_;
  void* workspace_ = nullptr;  // native split-K partials, paged_attention_workspace_bytes
  size_t workspace_bytes_ = 0;
  bool planned_ = false;       // plan() ran for the current step (FlashInfer has a valid plan)
  std::unique_ptr<FlashInferAttention> flashinfer_;
};

}  // namespace pagedllm
