// Host-side inputs of a step's attention, handed to Backend::plan_attention before the forward
// pass, and the pure host arithmetic GPU attention needs from them: the size of the native
// kernel's split-K workspace and FlashInfer's page table (CSR of KV pages per sequence).
// Everything here is plain C++ so it is tested on the CPU.
//
// Invariants: the arrays describe exactly the step the next paged_attention calls run, in the
// layout of PagedAttentionParams (ops.h); a sequence's pages are the first
// ceil(seq_lens[b] / block_size) entries of its block-table row.
#pragma once

#include <cstdint>
#include <vector>

#include "util/check.h"

namespace pagedllm {

// The native decode kernel splits a context of up to L tokens into at most ceil(L / this)
// partitions (thread blocks), merged by a second kernel; the workspace holds the partials.
constexpr int64_t kPagedAttentionPartitionTokens = 512;

// The host copies of one step's batch layout (views owned by the caller, valid during the call)
// plus the static limits the buffers were sized for.
struct AttentionPlanInputs {
  const int32_t* query_start_loc = nullptr;  // [num_seqs + 1]
  const int32_t* seq_lens = nullptr;         // [num_seqs]
  const int32_t* block_tables = nullptr;     // [num_seqs, block_table_stride]
  int64_t num_seqs = 0;
  int64_t block_table_stride = 0;  // entries per block-table row (max_blocks_per_seq)
  int64_t block_size = 16;         // tokens per KV block
  int64_t num_q_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_num_seqs = 0;            // sequences per step the buffers are sized for
  int64_t max_num_batched_tokens = 0;  // tokens per step the buffers are sized for
  int64_t max_model_len = 0;           // tokens per sequence the buffers are sized for
};

// Partitions of kPagedAttentionPartitionTokens covering `max_seq_len` tokens (at least 1).
inline int64_t paged_attention_num_partitions(int64_t max_seq_len) {
  return max_seq_len <= 0 ? 1 : (max_seq_len + kPagedAttentionPartitionTokens - 1) / kPagedAttentionPartitionTokens;
}

// Bytes of the native decode workspace for steps of up to max_num_seqs sequences of up to
// max_model_len tokens: per (sequence, query head, partition) a float32 partial output [D],
// its running max and its sum, laid out as
// out [B, Hq, P, D] | max [B, Hq, P] | sum [B, Hq, P] with P = num_partitions(max_model_len).
inline size_t paged_attention_workspace_bytes(int64_t max_num_seqs, int64_t num_q_heads, int64_t max_model_len,
                                              int64_t head_dim) {
  PAGEDLLM_CHECK(max_num_seqs >= 0 && num_q_heads >= 0 && head_dim >= 0, "negative attention workspace limits");
  const int64_t p = paged_attention_num_partitions(max_model_len);
  return static_cast<size_t>(max_num_seqs * num_q_heads * p * (head_dim + 2)) * sizeof(float);
}

// FlashInfer's paged-KV description of a step (its page_size = our block_size, its page index =
// our block id): sequence b owns pages indices[indptr[b], indptr[b + 1]) and its last page holds
// last_page_len[b] tokens (1..block_size; a sequence with no tokens has no pages and 0).
struct FlashInferPageTable {
  std::vector<int32_t> indptr;         // [num_seqs + 1]
  std::vector<int32_t> indices;        // [indptr[num_seqs]]
  std::vector<int32_t> last_page_len;  // [num_seqs]
};

// Builds the page table of `in` into *out (vectors reused across steps).
inline void build_flashinfer_page_table(const AttentionPlanInputs& in, FlashInferPageTable* out) {
  PAGEDLLM_CHECK(in.block_size > 0, "block_size must be positive");
  out->indptr.resize(in.num_seqs + 1);
  out->last_page_len.resize(in.num_seqs);
  out->indices.clear();
  out->indptr[0] = 0;
  for (int64_t b = 0; b < in.num_seqs; ++b) {
    const int64_t len = in.seq_lens[b];
    PAGEDLLM_CHECK(len >= 0, "negative seq_len " << len << " of sequence " << b);
    const int64_t pages = (len + in.block_size - 1) / in.block_size;
    PAGEDLLM_CHECK(pages <= in.block_table_stride,
                   "sequence " << b << " needs " << pages << " blocks, its table row holds " << in.block_table_stride);
    const int32_t* row = in.block_tables + b * in.block_table_stride;
    out->indices.insert(out->indices.end(), row, row + pages);
    out->indptr[b + 1] = static_cast<int32_t>(out->indices.size());
    out->last_page_len[b] = static_cast<int32_t>(pages == 0 ? 0 : len - (pages - 1) * in.block_size);
  }
}

}  // namespace pagedllm
