// Native paged attention (PagedAttentionParams in ops.h: causal GQA over the paged KV cache for
// batches that mix prefill chunks and decodes).
//
// Two paths, chosen from p.max_query_len:
//  - decode (max_query_len <= 1, GQA group <= 16): one thread block per (KV head, sequence,
//    partition) serves all query heads of the KV group, so each K/V block is read once per KV
//    head. With a workspace, P = min(ceil(1024 / (B * num_kv_heads)), ceil(max_seq_len / 512))
//    partitions (enough blocks to fill the GPU); each sequence is cut into at most P parts of a
//    multiple of 128 keys computed on the device, and a second kernel merges the per-partition
//    (output, max, sum). The grid depends only on B, the heads and p.max_seq_len: set it to
//    max_model_len for graph capture; blocks past a sequence's parts exit at once. Rows with
//    q_len 0 are skipped.
//  - prefill / mixed: a FlashAttention-2 style tiled kernel, one thread block per (tile of query
//    rows x group heads, KV head, sequence), online softmax over key tiles in shared memory.
// Supported: float32 / bfloat16 / float16 (q, caches and out of one dtype), head_dim 16, 32, 64,
// 128 or 256, any block_size >= 1, contiguous caches, 16-byte aligned rows.
#pragma once

#include <cstddef>

#include "backend/attention_plan.h"
#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// Device scratch of the decode path, preallocated by the caller with
// paged_attention_workspace_bytes(max_num_seqs, num_q_heads, max_model_len, head_dim) bytes.
// data == nullptr: every sequence is attended by one thread block (no split, no merge).
struct PagedAttentionWorkspace {
  void* data = nullptr;  // float32 partials, see paged_attention_workspace_bytes
  size_t nbytes = 0;
};

// Preconditions (checked): shapes as in ops.h, head_dim supported, num_q_heads a multiple of
// num_kv_heads, the workspace large enough for [B, Hq, num_partitions(max_seq_len), D + 2]
// floats when given. Enqueues on `stream`; no allocation, no synchronization, no host reads of
// device memory.
void launch_paged_attention(const PagedAttentionParams& p, const PagedAttentionWorkspace& ws, gpuStream_t stream);

}  // namespace pagedllm
