// FlashInferAttention (flashinfer_attention.cuh): scratch, the step's page table, lazy plans.
#include "flashinfer/flashinfer_attention.cuh"

#include <algorithm>

#include "flashinfer/flashinfer_kernels.cuh"

namespace pagedllm {
namespace {

constexpr size_t kFloatWorkspaceBytes = size_t{128} << 20;  // FlashInfer's split-KV partials
constexpr size_t kIntWorkspaceBytes = size_t{8} << 20;      // FlashInfer's plan index arrays

const fi::FlashInferKernels* kernels_for(DType dtype, int64_t head_dim) {
  if (dtype == DType::kBFloat16) {
    if (head_dim == 64) return fi::flashinfer_kernels_bf16_hd64();
    if (head_dim == 128) return fi::flashinfer_kernels_bf16_hd128();
    if (head_dim == 256) return fi::flashinfer_kernels_bf16_hd256();
  }
#if PAGEDLLM_FLASHINFER_FP16
  if (dtype == DType::kFloat16) {
    if (head_dim == 64) return fi::flashinfer_kernels_fp16_hd64();
    if (head_dim == 128) return fi::flashinfer_kernels_fp16_hd128();
    if (head_dim == 256) return fi::flashinfer_kernels_fp16_hd256();
  }
#endif
  return nullptr;
}

bool contiguous_rows(const Tensor& t) {
  return t.ndim == 3 && t.stride[2] == 1 && t.stride[1] == t.shape[2] && t.stride[0] == t.shape[1] * t.shape[2];
}

}  // namespace

struct FlashInferAttention::Impl {
  int64_t max_seqs = 0, max_pages = 0;
  fi::Scratch scratch;
  int32_t* table_dev = nullptr;   // [3 * max_seqs + 2 + max_pages]: qo_indptr | kv_indptr | last | indices
  int32_t* table_host = nullptr;  // page-locked staging of table_dev
  gpuEvent_t uploaded = nullptr;  // after the last upload from table_host / scratch.int_ws_host
  fi::DevicePageTable dev;
  FlashInferPageTable table;
  std::vector<int32_t> qo_indptr;  // [B + 1] host copy of the step's query_start_loc
  fi::PlanInputs plan_in;
  bool step_ok = false;
  enum class Planned { kNone, kDecode, kPrefill } planned = Planned::kNone;
  const fi::FlashInferKernels* planned_kernels = nullptr;
  std::vector<int64_t> plan_info;
};

FlashInferAttention::FlashInferAttention(const AttentionPlanInputs& limits) : impl_(new Impl) {
  Impl& s = *impl_;
  s.max_seqs = std::max<int64_t>(limits.max_num_seqs, 1);
  s.max_pages = std::max<int64_t>(s.max_seqs * limits.block_table_stride, 1);
  s.scratch.float_ws_bytes = kFloatWorkspaceBytes;
  s.scratch.int_ws_bytes = kIntWorkspaceBytes;
  PAGEDLLM_GPU_CHECK(gpuMalloc(&s.scratch.float_ws, s.scratch.float_ws_bytes));
  PAGEDLLM_GPU_CHECK(gpuMalloc(&s.scratch.int_ws, s.scratch.int_ws_bytes));
  PAGEDLLM_GPU_CHECK(gpuMallocHost(&s.scratch.int_ws_host, s.scratch.int_ws_bytes));
  const size_t table_bytes = static_cast<size_t>(3 * s.max_seqs + 2 + s.max_pages) * sizeof(int32_t);
  PAGEDLLM_GPU_CHECK(gpuMalloc(reinterpret_cast<void**>(&s.table_dev), table_bytes));
  PAGEDLLM_GPU_CHECK(gpuMallocHost(reinterpret_cast<void**>(&s.table_host), table_bytes));
  PAGEDLLM_GPU_CHECK(gpuEventCreateWithFlags(&s.uploaded, gpuEventDisableTiming));
  s.dev.qo_indptr = s.table_dev;
  s.dev.kv_indptr = s.table_dev + s.max_seqs + 1;
  s.dev.last_page_len = s.table_dev + 2 * (s.max_seqs + 1);
  s.dev.kv_indices = s.dev.last_page_len + s.max_seqs;
}

FlashInferAttention::~FlashInferAttention() {
  Impl& s = *impl_;
  gpuEventSynchronize(s.uploaded);
  gpuEventDestroy(s.uploaded);
  gpuFreeHost(s.table_host);
  gpuFree(s.table_dev);
  gpuFreeHost(s.scratch.int_ws_host);
  gpuFree(s.scratch.int_ws);
  gpuFree(s.scratch.float_ws);
}

size_t FlashInferAttention::device_bytes() const {
  const Impl& s = *impl_;
  return s.scratch.float_ws_bytes + s.scratch.int_ws_bytes +
         static_cast<size_t>(3 * s.max_seqs + 2 + s.max_pages) * sizeof(int32_t);
}

bool FlashInferAttention::plan(const AttentionPlanInputs& in, gpuStream_t stream) {
  Impl& s = *impl_;
  s.step_ok = false;
  s.planned = Impl::Planned::kNone;
  last_error_.clear();
  build_flashinfer_page_table(in, &s.table);
  const int64_t b = in.num_seqs, pages = static_cast<int64_t>(s.table.indices.size());
  if (b < 1 || b > s.max_seqs || pages > s.max_pages) {
    last_error_ = "step of " + std::to_string(b) + " sequences / " + std::to_string(pages) +
                  " pages is outside FlashInfer's scratch limits";
    return false;
  }
  // The previous upload must have consumed the page-locked staging before it is rewritten.
  PAGEDLLM_GPU_CHECK(gpuEventSynchronize(s.uploaded));
  s.qo_indptr.assign(in.query_start_loc, in.query_start_loc + b + 1);
  int32_t* h = s.table_host;
  std::copy(s.qo_indptr.begin(), s.qo_indptr.end(), h);
  std::copy(s.table.indptr.begin(), s.table.indptr.end(), h + s.max_seqs + 1);
  std::copy(s.table.last_page_len.begin(), s.table.last_page_len.end(), h + 2 * (s.max_seqs + 1));
  std::copy(s.table.indices.begin(), s.table.indices.end(), h + 3 * s.max_seqs + 2);
  const size_t bytes = static_cast<size_t>(3 * s.max_seqs + 2 + pages) * sizeof(int32_t);
  PAGEDLLM_GPU_CHECK(gpuMemcpyAsync(s.table_dev, s.table_host, bytes, gpuMemcpyHostToDevice, stream));
  PAGEDLLM_GPU_CHECK(gpuEventRecord(s.uploaded, stream));
  s.plan_in.qo_indptr = s.qo_indptr.data();
  s.plan_in.kv_indptr = s.table.indptr.data();
  s.plan_in.num_seqs = static_cast<int32_t>(b);
  s.plan_in.num_tokens = s.qo_indptr[b];
  s.plan_in.num_q_heads = static_cast<int32_t>(in.num_q_heads);
  s.plan_in.num_kv_heads = static_cast<int32_t>(in.num_kv_heads);
  s.plan_in.page_size = static_cast<int32_t>(in.block_size);
  s.step_ok = true;
  return true;
}

bool FlashInferAttention::run(const PagedAttentionParams& p, gpuStream_t stream) {
  Impl& s = *impl_;
  if (!s.step_ok) return false;
  const fi::FlashInferKernels* k = kernels_for(p.q.dtype, p.q.ndim == 3 ? p.q.shape[2] : 0);
  const bool shapes_ok = k != nullptr && p.out.dtype == p.q.dtype && p.k_cache.dtype == p.q.dtype &&
                         p.v_cache.dtype == p.q.dtype && contiguous_rows(p.out) && p.q.stride[2] == 1 &&
                         p.k_cache.is_contiguous() && p.v_cache.is_contiguous() &&
                         p.seq_lens.shape[0] == s.plan_in.num_seqs && p.q.shape[0] == s.plan_in.num_tokens &&
                         p.q.shape[1] == s.plan_in.num_q_heads && p.k_cache.shape[1] == s.plan_in.num_kv_heads &&
                         p.k_cache.shape[2] == s.plan_in.page_size;
  if (!shapes_ok) {
    last_error_ = "step not covered by the FlashInfer kernels of this build";
    return false;
  }
  const bool decode = s.plan_in.num_tokens == s.plan_in.num_seqs && p.max_query_len == 1 &&
                      fi::flashinfer_decode_group_supported(s.plan_in.num_q_heads / s.plan_in.num_kv_heads);
  const Impl::Planned want = decode ? Impl::Planned::kDecode : Impl::Planned::kPrefill;
  if (s.planned != want || s.planned_kernels != k) {
    PAGEDLLM_GPU_CHECK(gpuEventSynchronize(s.uploaded));  // the plan rewrites int_ws_host
    std::string error;
    const bool ok = decode ? k->plan_decode(s.scratch, s.plan_in, stream, &s.plan_info, &error)
                           : k->plan_prefill(s.scratch, s.plan_in, stream, &s.plan_info, &error);
    PAGEDLLM_GPU_CHECK(gpuEventRecord(s.uploaded, stream));
    if (!ok) {
      last_error_ = error;
      s.step_ok = false;
      return false;
    }
    s.planned = want;
    s.planned_kernels = k;
  }
  std::string error;
  const bool ok = decode ? k->run_decode(s.scratch, s.plan_info, p, s.dev, stream, &error)
                         : k->run_prefill(s.scratch, s.plan_info, p, s.dev, stream, &error);
  PAGEDLLM_CHECK(ok, "FlashInfer launch failed: " << error);
  return true;
}

}  // namespace pagedllm
