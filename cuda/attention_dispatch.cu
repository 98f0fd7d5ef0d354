// GpuAttention: routes each paged_attention call to FlashInfer or the native kernels, see
// attention_dispatch.cuh.
#include "attention_dispatch.cuh"

#ifndef PAGEDLLM_WITH_FLASHINFER
#define PAGEDLLM_WITH_FLASHINFER 0
#endif

#include "kernels/paged_attention.cuh"
#if PAGEDLLM_WITH_FLASHINFER
#include "flashinfer/flashinfer_attention.cuh"
#endif

namespace pagedllm {

#if !PAGEDLLM_WITH_FLASHINFER
// Stand-in for builds without FlashInfer: never constructed (resolve_attention_backend refuses).
class FlashInferAttention {};
#endif

bool flashinfer_compiled() { return PAGEDLLM_WITH_FLASHINFER != 0; }

bool resolve_attention_backend(const std::string& name, AttentionBackendKind* kind, std::string* error) {
  if (name == "native") {
    *kind = AttentionBackendKind::kNative;
  } else if (name == "flashinfer") {
    if (!flashinfer_compiled()) {
      *error = "attention_backend 'flashinfer' is not available: this build has no FlashInfer (its headers were not "
               "found when building; see third_party/pagedllm_flashinfer.cmake); use 'auto' or 'native'";
      return false;
    }
    *kind = AttentionBackendKind::kFlashInfer;
  } else if (name == "auto") {
    *kind = flashinfer_compiled() ? AttentionBackendKind::kFlashInferPrefill : AttentionBackendKind::kNative;
  } else {
    *error = "unknown attention_backend '" + name + "': use 'auto', 'flashinfer' or 'native'";
    return false;
  }
  return true;
}

GpuAttention::GpuAttention(AttentionBackendKind kind) : kind_(kind) {
  PAGEDLLM_CHECK(kind == AttentionBackendKind::kNative || flashinfer_compiled(),
                 "GpuAttention: FlashInfer requested in a build without it");
}

const char* GpuAttention::name() const {
  switch (kind_) {
    case AttentionBackendKind::kFlashInfer: return "flashinfer";
    case AttentionBackendKind::kFlashInferPrefill: return "auto (flashinfer prefill, native decode)";
    default: return "native";
  }
}

GpuAttention::~GpuAttention() {
  if (workspace_ != nullptr) gpuFree(workspace_);
}

size_t GpuAttention::device_bytes() const {
  size_t n = workspace_bytes_;
#if PAGEDLLM_WITH_FLASHINFER
  if (flashinfer_) n += flashinfer_->device_bytes();
#endif
  return n;
}

void GpuAttention::plan(const AttentionPlanInputs& in, gpuStream_t stream) {
  if (workspace_ == nullptr) {
    const size_t bytes = paged_attention_workspace_bytes(in.max_num_seqs, in.num_q_heads, in.max_model_len, in.head_dim);
    if (bytes > 0) {
      PAGEDLLM_GPU_CHECK(gpuMalloc(&workspace_, bytes));
      workspace_bytes_ = bytes;
    }
  }
#if PAGEDLLM_WITH_FLASHINFER
  planned_ = false;
  if (kind_ == AttentionBackendKind::kNative) return;
  if (kind_ == AttentionBackendKind::kFlashInferPrefill) {
    bool decode_only = true;
    for (int64_t b = 0; b < in.num_seqs && decode_only; ++b) {
      decode_only = in.query_start_loc[b + 1] - in.query_start_loc[b] <= 1;
    }
    if (decode_only) return;
  }
  if (!flashinfer_) flashinfer_ = std::make_unique<FlashInferAttention>(in);
  planned_ = flashinfer_->plan(in, stream);
#endif
}

void GpuAttention::run(const PagedAttentionParams& p, gpuStream_t stream) {
#if PAGEDLLM_WITH_FLASHINFER
  const bool wanted = kind_ == AttentionBackendKind::kFlashInfer ||
                      (kind_ == AttentionBackendKind::kFlashInferPrefill && p.max_query_len > 1);
  if (wanted && planned_ && !gpu_stream_is_capturing(stream) && flashinfer_->run(p, stream)) {
    return;
  }
#endif
  launch_paged_attention(p, PagedAttentionWorkspace{workspace_, workspace_bytes_}, stream);
}

}  // namespace pagedllm
