// The FlashInfer kernels pagedllm instantiates: batch decode and batch prefill (paged KV, causal,
// no positional encoding inside the kernel, no soft cap, no sliding window) over our cache in
// FlashInfer's HND layout ([pages, kv heads, page_size, D] = our [blocks, kv heads, block_size, D]),
// q / cache / out of one dtype. Each flashinfer_<dtype>_hd<D>.cu instantiates FlashInferKernels
// for one (dtype, head_dim) through PAGEDLLM_FLASHINFER_KERNELS; flashinfer_attention.cu picks
// the table that matches a step. Only this header and those TUs include FlashInfer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {
namespace fi {

// Device and page-locked host scratch FlashInfer's plan and run use (preallocated by the caller).
struct Scratch {
  void* float_ws = nullptr;      // device, split-KV partials
  size_t float_ws_bytes = 0;
  void* int_ws = nullptr;        // device, the plan's index arrays
  void* int_ws_host = nullptr;   // page-locked mirror of int_ws the plan fills, then uploads
  size_t int_ws_bytes = 0;
};

// The step's paged-KV description on the device (see FlashInferPageTable in attention_plan.h).
struct DevicePageTable {
  int32_t* qo_indptr = nullptr;      // [B + 1] (= query_start_loc)
  int32_t* kv_indptr = nullptr;      // [B + 1]
  int32_t* kv_indices = nullptr;     // [kv_indptr[B]]
  int32_t* last_page_len = nullptr;  // [B]
};

// Host inputs of a plan.
struct PlanInputs {
  const int32_t* qo_indptr = nullptr;  // [B + 1] host
  const int32_t* kv_indptr = nullptr;  // [B + 1] host
  int32_t num_seqs = 0, num_tokens = 0;
  int32_t num_q_heads = 0, num_kv_heads = 0, page_size = 0;
};

// One (dtype, head_dim) instantiation. plan_* run on the host (FlashInfer's scheduler: work split
// and index arrays, uploaded on `stream`) and return false with *error when FlashInfer fails;
// run_* enqueue the kernels for params p whose step was planned, returning false with *error on
// a launch failure. `plan` holds FlashInfer's plan info (DecodePlanInfo / PrefillPlanInfo).
struct FlashInferKernels {
  bool (*plan_decode)(const Scratch& s, const PlanInputs& in, gpuStream_t stream, std::vector<int64_t>* plan,
                      std::string* error);
  bool (*run_decode)(const Scratch& s, const std::vector<int64_t>& plan, const PagedAttentionParams& p,
                     const DevicePageTable& pt, gpuStream_t stream, std::string* error);
  bool (*plan_prefill)(const Scratch& s, const PlanInputs& in, gpuStream_t stream, std::vector<int64_t>* plan,
                       std::string* error);
  bool (*run_prefill)(const Scratch& s, const std::vector<int64_t>& plan, const PagedAttentionParams& p,
                      const DevicePageTable& pt, gpuStream_t stream, std::string* error);
};

// The instantiated tables (nullptr entries are absent from this build).
const FlashInferKernels* flashinfer_kernels_bf16_hd64();
const FlashInferKernels* flashinfer_kernels_bf16_hd128();
const FlashInferKernels* flashinfer_kernels_bf16_hd256();
const FlashInferKernels* flashinfer_kernels_fp16_hd64();
const FlashInferKernels* flashinfer_kernels_fp16_hd128();
const FlashInferKernels* flashinfer_kernels_fp16_hd256();

// GQA group sizes FlashInfer's decode kernels are compiled for.
inline bool flashinfer_decode_group_supported(int group) {
  return group == 1 || group == 2 || group == 3 || group == 4 || group == 6 || group == 8 || group == 16;
}

}  // namespace fi
}  // namespace pagedllm
