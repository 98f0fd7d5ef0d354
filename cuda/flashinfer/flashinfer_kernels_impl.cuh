// FlashInferKernels for one (dtype T, head_dim D): the host glue around FlashInfer's
// DecodePlan / BatchDecodeWithPagedKVCacheDispatched and PrefillPlan /
// BatchPrefillWithPagedKVCacheDispatched, modelled on FlashInfer's csrc/batch_decode.cu and
// csrc/batch_prefill_paged.cuh (our own code; FlashInfer is used as headers only). Included once
// by each flashinfer_<dtype>_hd<D>.cu, which expands PAGEDLLM_FLASHINFER_KERNELS.
#pragma once

#include <exception>
#include <string>

// decode.cuh before scheduler.cuh: the decode work estimation names the decode kernel.
#include <flashinfer/attention/decode.cuh>
#include <flashinfer/attention/default_decode_params.cuh>
#include <flashinfer/attention/default_prefill_params.cuh>
#include <flashinfer/attention/prefill.cuh>
#include <flashinfer/attention/scheduler.cuh>
#include <flashinfer/attention/variants.cuh>
#include <flashinfer/page.cuh>

#include "flashinfer/flashinfer_kernels.cuh"

namespace pagedllm {
namespace fi {

template <typename T, uint32_t D>
struct FlashInferGlue {
  using Variant = flashinfer::DefaultAttention</*custom_mask=*/false, /*sliding_window=*/false,
                                               /*logits_soft_cap=*/false, /*alibi=*/false>;
  using DecodeParams = flashinfer::BatchDecodeParams<T, T, T, int32_t>;
  using PrefillParams = flashinfer::BatchPrefillPagedParams<T, T, T, int32_t>;
  static constexpr flashinfer::PosEncodingMode kPos = flashinfer::PosEncodingMode::kNone;

  static bool failed(cudaError_t st, const char* what, std::string* error) {
    if (st == cudaSuccess) return false;
    *error = std::string(what) + ": " + cudaGetErrorString(st);
    return true;
  }

  // Our [blocks, kv heads, block_size, D] cache is FlashInfer's HND layout.
  static flashinfer::paged_kv_t<T, int32_t> paged_kv(const PagedAttentionParams& p, const DevicePageTable& pt) {
    return flashinfer::paged_kv_t<T, int32_t>(
        static_cast<uint32_t>(p.k_cache.shape[1]), static_cast<uint32_t>(p.k_cache.shape[2]), D,
        static_cast<uint32_t>(p.seq_lens.shape[0]), flashinfer::QKVLayout::kHND, p.k_cache.ptr<T>(), p.v_cache.ptr<T>(),
        pt.kv_indices, pt.kv_indptr, pt.last_page_len);
  }

  static bool plan_decode(const Scratch& s, const PlanInputs& in, gpuStream_t stream, std::vector<int64_t>* plan,
                          std::string* error) {
    flashinfer::DecodePlanInfo info;
    cudaError_t st = cudaErrorInvalidValue;
    try {
      DISPATCH_GQA_GROUP_SIZE(in.num_q_heads / in.num_kv_heads, GROUP_SIZE, {
        auto work = flashinfer::BatchDecodeWithPagedKVCacheWorkEstimationDispatched<GROUP_SIZE, D, kPos, Variant,
                                                                                    DecodeParams>;
        st = flashinfer::DecodePlan<D, kPos, Variant, DecodeParams>(
            s.float_ws, s.float_ws_bytes, s.int_ws, s.int_ws_host, s.int_ws_bytes, info,
            const_cast<int32_t*>(in.kv_indptr), in.num_seqs, in.num_q_heads, in.page_size,
            /*enable_cuda_graph=*/false, stream, work);
      });
    } catch (const std::exception& e) {
      *error = std::string("FlashInfer DecodePlan: ") + e.what();
      return false;
    }
    if (failed(st, "FlashInfer DecodePlan", error)) return false;
    *plan = info.ToVector();
    return true;
  }

  static bool run_decode(const Scratch& s, const std::vector<int64_t>& plan, const PagedAttentionParams& p,
                         const DevicePageTable& pt, gpuStream_t stream, std::string* error) {
    flashinfer::DecodePlanInfo info;
    info.FromVector(plan);
    DecodeParams params;
    params.q = p.q.ptr<T>();
    params.paged_kv = paged_kv(p, pt);
    params.o = p.out.ptr<T>();
    params.lse = nullptr;
    params.num_qo_heads = static_cast<uint32_t>(p.q.shape[1]);
    params.q_stride_n = static_cast<int32_t>(p.q.stride[0]);
    params.q_stride_h = static_cast<int32_t>(p.q.stride[1]);
    params.window_left = -1;
    params.logits_soft_cap = 0.0f;
    params.sm_scale = p.scale;
    params.rope_rcp_scale = 1.0f;
    params.rope_rcp_theta = 1.0f;
    params.request_indices = flashinfer::GetPtrFromBaseOffset<int32_t>(s.int_ws, info.request_indices_offset);
    params.kv_tile_indices = flashinfer::GetPtrFromBaseOffset<int32_t>(s.int_ws, info.kv_tile_indices_offset);
    params.o_indptr = flashinfer::GetPtrFromBaseOffset<int32_t>(s.int_ws, info.o_indptr_offset);
    params.kv_chunk_size_ptr = flashinfer::GetPtrFromBaseOffset<int32_t>(s.int_ws, info.kv_chunk_size_ptr_offset);
    T* tmp_v = nullptr;
    float* tmp_s = nullptr;
    if (info.split_kv) {
      tmp_v = flashinfer::GetPtrFromBaseOffset<T>(s.float_ws, info.v_offset);
      tmp_s = flashinfer::GetPtrFromBaseOffset<float>(s.float_ws, info.s_offset);
    }
    params.padded_batch_size = static_cast<uint32_t>(info.padded_batch_size);
    cudaError_t st = cudaErrorInvalidValue;
    try {
      st = flashinfer::BatchDecodeWithPagedKVCacheDispatched<D, kPos, Variant>(params, tmp_v, tmp_s,
                                                                               /*enable_pdl=*/false, stream);
    } catch (const std::exception& e) {
      *error = std::string("FlashInfer batch decode: ") + e.what();
      return false;
    }
    return !failed(st, "FlashInfer batch decode", error);
  }

  static bool plan_prefill(const Scratch& s, const PlanInputs& in, gpuStream_t stream, std::vector<int64_t>* plan,
                           std::string* error) {
    flashinfer::PrefillPlanInfo info;
    cudaError_t st = cudaErrorInvalidValue;
    try {
      st = flashinfer::PrefillPlan<int32_t>(
          s.float_ws, s.float_ws_bytes, s.int_ws, s.int_ws_host, s.int_ws_bytes, info,
          const_cast<int32_t*>(in.qo_indptr), const_cast<int32_t*>(in.kv_indptr), in.num_tokens, in.num_seqs,
          in.num_q_heads, in.num_kv_heads, D, D, in.page_size, /*enable_cuda_graph=*/false,
          /*sizeof_dtype_o=*/sizeof(T), /*window_left=*/-1, /*fixed_split_size=*/-1, /*disable_split_kv=*/false,
          /*num_colocated_ctas=*/0, /*uniform_q_len=*/0, stream, /*kv_dtype_bytes=*/sizeof(T));
    } catch (const std::exception& e) {
      *error = std::string("FlashInfer PrefillPlan: ") + e.what();
      return false;
    }
    if (failed(st, "FlashInfer PrefillPlan", error)) return false;
    *plan = info.ToVector();
    return true;
  }

  template <uint32_t kTileQ>
  static cudaError_t launch_prefill(const PrefillParams& params, T* tmp_v, float* tmp_s, gpuStream_t stream) {
    return flashinfer::BatchPrefillWithPagedKVCacheDispatched<
        /*SAME_KV_STRIDES=*/true, kTileQ, D, D, kPos, /*USE_FP16_QK_REDUCTION=*/false, flashinfer::MaskMode::kCausal,
        Variant, PrefillParams>(params, tmp_v, tmp_s, /*enable_pdl=*/false, stream);
  }

  static bool run_prefill(const Scratch& s, const std::vector<int64_t>& plan, const PagedAttentionParams& p,
                          const DevicePageTable& pt, gpuStream_t stream, std::string* error) {
    flashinfer::PrefillPlanInfo info;
    info.FromVector(plan);
    PrefillParams params;
    params.q = p.q.ptr<T>();
    params.paged_kv = paged_kv(p, pt);
    params.q_indptr = pt.qo_indptr;
    params.o = p.out.ptr<T>();
    params.lse = nullptr;
    params.num_qo_heads = static_cast<uint32_t>(p.q.shape[1]);
    params.group_size = flashinfer::uint_fastdiv(static_cast<uint32_t>(p.q.shape[1] / p.k_cache.shape[1]));
    params.q_stride_n = static_cast<int32_t>(p.q.stride[0]);
    params.q_stride_h = static_cast<int32_t>(p.q.stride[1]);
    params.window_left = -1;
    params.logits_soft_cap = 0.0f;
    params.sm_scale = p.scale;
    params.rope_rcp_scale = 1.0f;
    params.rope_rcp_theta = 1.0f;
    params.request_indices = flashinfer::GetPtrFromBaseOffset<int32_t>(s.int_ws, info.request_indices_offset);
    params.qo_tile_indices = flashinfer::GetPtrFromBaseOffset<int32_t>(s.int_ws, info.qo_tile_indices_offset);
    params.kv_tile_indices = flashinfer::GetPtrFromBaseOffset<int32_t>(s.int_ws, info.kv_tile_indices_offset);
    params.o_indptr = flashinfer::GetPtrFromBaseOffset<int32_t>(s.int_ws, info.o_indptr_offset);
    params.kv_chunk_size_ptr = flashinfer::GetPtrFromBaseOffset<int32_t>(s.int_ws, info.kv_chunk_size_ptr_offset);
    T* tmp_v = nullptr;
    float* tmp_s = nullptr;
    if (info.split_kv) {
      params.merge_indptr = flashinfer::GetPtrFromBaseOffset<int32_t>(s.int_ws, info.merge_indptr_offset);
      tmp_v = flashinfer::GetPtrFromBaseOffset<T>(s.float_ws, info.v_offset);
      tmp_s = flashinfer::GetPtrFromBaseOffset<float>(s.float_ws, info.s_offset);
    }
    params.padded_batch_size = static_cast<uint32_t>(info.padded_batch_size);
    params.max_total_num_rows = static_cast<uint32_t>(info.total_num_rows);
    cudaError_t st = cudaErrorInvalidValue;
    try {
      switch (info.cta_tile_q) {
        case 128: st = launch_prefill<128>(params, tmp_v, tmp_s, stream); break;
        case 64: st = launch_prefill<64>(params, tmp_v, tmp_s, stream); break;
        case 16: st = launch_prefill<16>(params, tmp_v, tmp_s, stream); break;
        default:
          *error = "FlashInfer prefill plan chose CTA_TILE_Q " + std::to_string(info.cta_tile_q) + ", not instantiated";
          return false;
      }
    } catch (const std::exception& e) {
      *error = std::string("FlashInfer batch prefill: ") + e.what();
      return false;
    }
    return !failed(st, "FlashInfer batch prefill", error);
  }

  static const FlashInferKernels* table() {
    static const FlashInferKernels k{&plan_decode, &run_decode, &plan_prefill, &run_prefill};
    return &k;
  }
};

}  // namespace fi
}  // namespace pagedllm

// Defines `const FlashInferKernels* NAME()` for element type T and head_dim D.
#define PAGEDLLM_FLASHINFER_KERNELS(NAME, T, D) \
  namespace pagedllm {                           \
  namespace fi {                                 \
  const FlashInferKernels* NAME() { return FlashInferGlue<T, D>::table(); } \
  }                                              \
  }
