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
// KV cache layout: [num_blocks, num_kv_heads, block_size, D] elements; the order of the
// block_size x D elements of one (block, head) slab is the backend's own, written by its
// write_kv_cache and read by its paged_attention only (V: [block_size, D] on every backend; K:
// [block_size, D] on CUDA/HIP, transposed [D, block_size] on the CPU). Ops that move whole
// blocks (copy_blocks) do not care.
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

// One row's sampling controls for Backend::sample (the layout the kernels read): the fields of
// SamplingParams the host Sampler uses, the draw's counter (seed, step) and where the row's
// token lists sit in SampleParams::token_lists.
struct SampleRowParams {
  float temperature = 1.0f;         // < 1e-5 means greedy
  float top_p = 1.0f;               // 1 = off
  float min_p = 0.0f;               // 0 = off
  float repetition_penalty = 1.0f;  // 1 = off
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  int32_t top_k = 0;                // off unless 0 < top_k < V
  int32_t num_mask_ids = 0;         // ids set to -inf (stop/EOS ids while under min_tokens)
  uint64_t seed = 0;                // Sampler::uniform(seed, step) is the draw's number
  int64_t step = 0;                 // the request's num_output_tokens
  int32_t mask_begin = 0;           // token_lists[mask_begin, + num_mask_ids)
  int32_t repetition_begin = 0;     // token_lists[repetition_begin, + num_repetition_ids):
  int32_t num_repetition_ids = 0;   //   distinct prompt and output ids
  int32_t output_begin = 0;         // token_lists[output_begin, + num_output_ids): distinct
  int32_t num_output_ids = 0;       //   output ids, then their counts at + num_output_ids
  int32_t reserved = 0;
};
constexpr int64_t kSampleRowInts = static_cast<int64_t>(sizeof(SampleRowParams) / sizeof(int32_t));

// Samples one token per row with the host Sampler's semantics (sample/sampler.h): same
// masking, penalties, greedy argmax and filters, and the same counter-based draw, so equal
// logits and rows give the token the host would pick, whatever the batch. logprobs/ranks are
// the chosen token's log-softmax of the raw logits and 1 + the number of larger raw logits.
struct SampleParams {
  Tensor logits;       // [R, V] float32 (row stride may exceed V), read only
  Tensor rows;         // [R, kSampleRowInts] int32: SampleRowParams records
  Tensor token_lists;  // [N] int32: the ids and counts the rows point into
  Tensor work;         // [R, V] float32 scratch (contiguous), overwritten
  Tensor token_ids;    // [R] int32 output
  Tensor logprobs;     // [R] float32 output, or empty
  Tensor ranks;        // [R] int32 output, or empty
};

}  // namespace pagedllm
