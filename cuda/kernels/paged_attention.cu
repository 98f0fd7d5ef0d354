// launch_paged_attention: checks PagedAttentionParams, flattens it into AttnArgs and picks the
// decode (split-K + merge) or the prefill (tiled) path, see paged_attention.cuh.
#include "kernels/paged_attention.cuh"

#include <algorithm>

#include "kernels/paged_attention_common.cuh"

namespace pagedllm {
namespace {

// Decode thread blocks worth filling the GPU with before splitting sequences further.
constexpr int64_t kDecodeTargetBlocks = 1024;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void launch_paged_attention(const PagedAttentionParams& p, const PagedAttentionWorkspace& ws, gpuStream_t stream) {
  PAGEDLLM_CHECK(p.q.ndim == 3 && p.out.ndim == 3, "paged_attention wants q and out [T, heads, D]");
  PAGEDLLM_CHECK(p.k_cache.ndim == 4 && p.v_cache.ndim == 4, "paged_attention wants 4-d caches");
  PAGEDLLM_CHECK(p.q.dtype == p.out.dtype && p.q.dtype == p.k_cache.dtype && p.q.dtype == p.v_cache.dtype,
                 "native paged_attention wants q, out and caches of one dtype, got q " << dtype_name(p.q.dtype)
                     << ", cache " << dtype_name(p.k_cache.dtype) << ", out " << dtype_name(p.out.dtype));
  PAGEDLLM_CHECK(p.block_tables.dtype == DType::kInt32 && p.query_start_loc.dtype == DType::kInt32 &&
                     p.seq_lens.dtype == DType::kInt32,
                 "paged_attention wants int32 block_tables, query_start_loc and seq_lens");
  const int64_t num_tokens = p.q.shape[0], hq = p.q.shape[1], d = p.q.shape[2];
  const int64_t hkv = p.k_cache.shape[1], block_size = p.k_cache.shape[2];
  const int64_t num_seqs = p.seq_lens.shape[0];
  PAGEDLLM_CHECK(p.out.shape[0] == num_tokens && p.out.shape[1] == hq && p.out.shape[2] == d,
                 "paged_attention: out shape differs from q");
  PAGEDLLM_CHECK(p.k_cache.shape[3] == d && p.v_cache.shape[1] == hkv && p.v_cache.shape[2] == block_size &&
                     p.v_cache.shape[3] == d && p.v_cache.shape[0] == p.k_cache.shape[0],
                 "paged_attention: k_cache, v_cache and q disagree on [num_kv_heads, block_size, D]");
  PAGEDLLM_CHECK(p.k_cache.is_contiguous() && p.v_cache.is_contiguous(), "paged_attention wants contiguous caches");
  PAGEDLLM_CHECK(hkv > 0 && hq % hkv == 0, "num_q_heads " << hq << " is not a multiple of num_kv_heads " << hkv);
  PAGEDLLM_CHECK(block_size >= 1, "block_size must be positive");
  PAGEDLLM_CHECK(p.query_start_loc.shape[0] == num_seqs + 1 && p.block_tables.shape[0] == num_seqs,
                 "paged_attention: block_tables / query_start_loc / seq_lens disagree on the number of sequences");
  PAGEDLLM_CHECK(p.block_tables.stride[1] == 1, "paged_attention wants block-table rows with unit stride");
  PAGEDLLM_CHECK(p.q.stride[2] == 1 && p.out.stride[2] == 1, "paged_attention wants unit stride along D");
  const int64_t esize = static_cast<int64_t>(dtype_size(p.q.dtype));
  PAGEDLLM_CHECK(aligned16(p.q.data) && aligned16(p.k_cache.data) && aligned16(p.v_cache.data) &&
                     (p.q.stride[0] * esize) % 16 == 0 && (p.q.stride[1] * esize) % 16 == 0 && (d * esize) % 16 == 0,
                 "native paged_attention wants 16-byte aligned q rows and cache rows");
  if (num_tokens == 0 || num_seqs == 0) return;
  PAGEDLLM_CHECK(p.max_query_len >= 1 && p.max_seq_len >= 1,
                 "paged_attention needs max_query_len and max_seq_len (got " << p.max_query_len << ", " << p.max_seq_len << ")");

  attn::AttnArgs a;
  a.q = p.q.data;
  a.out = p.out.data;
  a.k_cache = p.k_cache.data;
  a.v_cache = p.v_cache.data;
  a.block_tables = p.block_tables.ptr<const int32_t>();
  a.query_start_loc = p.query_start_loc.ptr<const int32_t>();
  a.seq_lens = p.seq_lens.ptr<const int32_t>();
  a.q_stride_tok = p.q.stride[0];
  a.q_stride_head = p.q.stride[1];
  a.out_stride_tok = p.out.stride[0];
  a.out_stride_head = p.out.stride[1];
  a.block_table_stride = p.block_tables.stride[0];
  a.num_seqs = static_cast<int>(num_seqs);
  a.num_q_heads = static_cast<int>(hq);
  a.num_kv_heads = static_cast<int>(hkv);
  a.group = static_cast<int>(hq / hkv);
  a.block_size = static_cast<int>(block_size);
  a.scale = p.scale;
  a.max_query_len = p.max_query_len;

  if (p.max_query_len > 1 || a.group > 16) {
    attn::run_prefill_path(a, p.q.dtype, static_cast<int>(d), stream);
    return;
  }
  if (ws.data == nullptr) {
    a.num_partitions = 1;
  } else {
    // Enough partitions to keep about kDecodeTargetBlocks blocks busy, at most one per
    // kPagedAttentionPartitionTokens keys of max_seq_len: a function of the static shape only.
    const int64_t blocks = num_seqs * hkv;
    const int64_t parts = std::max<int64_t>(
        1, std::min((kDecodeTargetBlocks + blocks - 1) / blocks, paged_attention_num_partitions(p.max_seq_len)));
    const size_t need = static_cast<size_t>(num_seqs * hq * parts * (d + 2)) * sizeof(float);
    PAGEDLLM_CHECK(need <= ws.nbytes, "paged_attention workspace of " << ws.nbytes << " bytes is too small for "
                                          << num_seqs << " sequences x " << hq << " heads x " << parts
                                          << " partitions x D " << d << " (" << need << " bytes)");
    PAGEDLLM_CHECK(parts <= 65535, "max_seq_len " << p.max_seq_len << " needs too many partitions");
    float* base = static_cast<float*>(ws.data);
    const int64_t rows = num_seqs * hq * parts;
    a.num_partitions = static_cast<int>(parts);
    a.part_out = base;
    a.part_max = base + rows * d;
    a.part_sum = a.part_max + rows;
  }
  attn::run_decode_path(a, p.q.dtype, static_cast<int>(d), stream);
}

}  // namespace pagedllm
