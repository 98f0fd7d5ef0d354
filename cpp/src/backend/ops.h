// Parameters of every model op a backend implements. One struct per op, fields named and
// shape-commented. T = tokens in the step, B = sequences in the step, H = hidden size,
// D = head_dim. Activations are float32 on the CPU backend (GPU backends may use bfloat16);
// weights are float32 or bfloat16.
#pragma once

#include <cstdint>

#include "backend/tensor.h"

namespace pagedllm {

// out[t, :] = table[token_ids[t], :]
struct EmbeddingParams {
  Tensor token_ids;  // [T] int32
  Tensor table;      // [V, H] weight
  Tensor out;        // [T, H] activation
};

// If residual is set: residual += x, then out = rms_norm(residual) * weight.
// Else out = rms_norm(x) * weight. x and out may alias. Rows may be strided views
// (per-head norms use x = [T * num_heads, D] views of a [T, num_heads * D] buffer).
struct RmsNormParams {
  Tensor x;         // [N, H] activation
  Tensor residual;  // [N, H] activation or empty (data == nullptr)
  Tensor weight;    // [H] weight
  Tensor out;       // [N, H] activation
  float eps = 1e-6f;
};

// Per-head RMSNorm over D for q/k norms (Qwen3): x is [T, num_heads, D] with any token stride.
struct HeadRmsNormParams {
  Tensor x;       // [T, num_heads, D] activation, normalized in place
  Tensor weight;  // [D] weight
  float eps = 1e-6f;
};

// out = x @ weight^T (+ bias). M rows of activations against an [N, K] weight.
struct LinearParams {
  Tensor x;       // [M, K] activation (row stride may exceed K)
  Tensor weight;  // [N, K] weight, or a result of Backend::pack_linear_weight (backend layout)
  Tensor bias;    // [N] or empty
  Tensor out;     // [M, N] activation (row stride may exceed N)
};

// Rotary embedding (NeoX / rotate_half layout, as Hugging Face Llama), in place on q and k.
// cos_sin_cache row p holds cos(p * inv_freq[i]) for i < D/2, then sin(p * inv_freq[i]).
struct RotaryParams {
  Tensor positions;      // [T] int32
  Tensor q;              // [T, num_q_heads, D] activation (token stride may exceed heads * D)
  Tensor k;              // [T, num_kv_heads, D] activation
  Tensor cos_sin_cache;  // [max_position, D] float32
};

// out = silu(x[:, :I]) * x[:, I:]
struct SiluAndMulParams {
  Tensor x;    // [T, 2 * I] activation
  Tensor out;  // [T, I] activation
};

// Stores this step's K and V in the paged cache: token t goes to slot slot_mapping[t]
// (block = slot / block_size, offset = slot % block_size). Slots < 0 are skipped.
struct WriteKvCacheParams {
  Tensor k;             // [T, num_kv_heads, D] activation
  Tensor v;             // [T, num_kv_heads, D] activation
  Tensor slot_mapping;  // [T] int64
  Tensor k_cache;       // [num_blocks, num_kv_heads, block_size, D] cache dtype
  Tensor v_cache;       // [num_blocks, num_kv_heads, block_size, D] cache dtype
};

// Causal grouped-query attention over the paged cache for a batch that mixes prefill chunks
// and decodes. Sequence b owns query rows [query_start_loc[b], query_start_loc[b+1]); its
// context holds seq_lens[b] tokens (including this step's, already written to the cache), so
// query row i of b sits at position seq_lens[b] - q_len_b + i and attends to positions <= it.
// Query head h reads KV head h / (num_q_heads / num_kv_heads).
struct PagedAttentionParams {
  Tensor q;                // [T, num_q_heads, D] activation (token stride may exceed heads * D)
  Tensor k_cache;          // [num_blocks, num_kv_heads, block_size, D]
  Tensor v_cache;          // [num_blocks, num_kv_heads, block_size, D]
  Tensor block_tables;     // [B, max_blocks_per_seq] int32
  Tensor query_start_loc;  // [B + 1] int32
  Tensor seq_lens;         // [B] int32
  Tensor out;              // [T, num_q_heads, D] activation
  float scale = 1.0f;      // softmax scale, usually 1 / sqrt(D)
  int32_t max_query_len = 0;  // max over b of q_len_b (a hint for launch shapes)
  int32_t max_seq_len = 0;    // max over b of seq_lens[b]
};

// Copy-on-write of KV blocks: for every pair n, block block_mapping[n, 1] of every layer's K and
// V cache becomes a copy of block block_mapping[n, 0] (all heads, all block_size slots). No block
// is both a source and a destination, and no destination appears twice. The cache of layer l is
// [num_blocks, num_kv_heads, block_size, D] of one cache dtype, contiguous; a block of it is
// block_bytes contiguous bytes at byte offset block_id * block_bytes.
struct CopyBlocksParams {
  Tensor key_caches;     // [L] int64 device addresses of the layers' K caches
  Tensor value_caches;   // [L] int64 device addresses of the layers' V caches
  Tensor block_mapping;  // [N, 2] int64 (src block id, dst block id); N may be 0
  int64_t num_blocks = 0;   // blocks per layer cache; every id in block_mapping is < num_blocks
  int64_t block_bytes = 0;  // num_kv_heads * block_size * D * dtype size
};

// out[r, :] = x[indices[r], :]
struct GatherRowsParams {
  Tensor x;        // [T, H] activation
  Tensor indices;  // [R] int32
  Tensor out;      // [R, H] activation
};

}  // namespace pagedllm
