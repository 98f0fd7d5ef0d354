// LlamaModel: the Llama family (Llama, Mistral, Qwen2 with qkv bias, Qwen3 with q/k norms)
// written against the Backend ops. It owns its device weights and a workspace sized for the
// largest step (max_num_tokens tokens), so forward() never allocates.
//
// Forward of one step (T tokens of B sequences, R logits rows):
//   residual = embed(input_ids)
//   per layer: h = rms_norm(residual [+= previous mlp out]); q,k,v = h @ Wqkv (+ bias);
//              [q,k = head_rms_norm]; rope(q, k); write k,v to the paged cache;
//              a = paged_attention(q); residual += a @ Wo; h = rms_norm(residual);
//              mlp = (silu(h @ Wg) * (h @ Wu)) @ Wd
//   hidden = rms_norm(residual += mlp); logits = gather(hidden, logits_indices) @ Wlm
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/model_config.h"
#include "pagedllm/status.h"
#include "weights/safetensors.h"

namespace pagedllm {

// Device tensors describing one step; built by the ModelRunner.
struct ForwardBatch {
  Tensor input_ids;        // [T] int32
  Tensor positions;        // [T] int32
  Tensor slot_mapping;     // [T] int64
  Tensor block_tables;     // [B, max_blocks_per_seq] int32
  Tensor query_start_loc;  // [B + 1] int32
  Tensor seq_lens;         // [B] int32
  Tensor logits_indices;   // [R] int32, rows of the step whose logits are wanted
  int32_t max_query_len = 0;
  int32_t max_seq_len = 0;
};

// One layer's paged KV cache.
struct KvCacheLayer {
  Tensor k;  // [num_blocks, num_kv_heads, block_size, head_dim]
  Tensor v;  // [num_blocks, num_kv_heads, block_size, head_dim]
};

class LlamaModel {
 public:
  // Checks every tensor's presence and shape (kCorruptData naming the tensor otherwise) and
  // uploads the weights in `dtype`. max_num_tokens bounds T; max_position bounds positions.
  static Result<std::unique_ptr<LlamaModel>> load(const ModelConfig& config, const WeightSet& weights,
                                                  Backend* backend, DType dtype,
                                                  int64_t max_num_tokens, int64_t max_position);

  const ModelConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  // Bytes of K and V for one block of block_size tokens over all layers.
  int64_t kv_cache_bytes_per_block(int64_t block_size) const;

  // Runs the layers for `batch` and writes the final hidden states of the logits rows into
  // hidden_out ([R, hidden_size], R = batch.logits_indices rows). Precondition: T <= max_num_tokens.
  void forward(const ForwardBatch& batch, const std::vector<KvCacheLayer>& kv_cache, Tensor hidden_out);
  // logits_out [R, vocab] = hidden [R, hidden_size] @ Wlm^T.
  void compute_logits(const Tensor& hidden, Tensor logits_out);

 private:
  struct Layer {
    Tensor input_norm, post_norm;   // [H] float32
    Tensor q_proj, k_proj, v_proj;  // [heads * D, H]
    Tensor q_bias, k_bias, v_bias;  // [heads * D] float32 or empty
    Tensor q_norm, k_norm;          // [D] float32 or empty
    Tensor o_proj;                  // [H, num_q_heads * D]
    Tensor gate_proj, up_proj;      // [I, H]
    Tensor down_proj;               // [H, I]
    // Backend-packed fusions (Backend::pack_linear_weight), or empty; when set, the parts
    // above are empty. qkv_proj: rows [q; k; v] (only without attention bias; with it
    // q/k/v_proj are packed one by one); gate_up_proj: rows [gate; up]. o_proj, down_proj
    // and lm_head_ are packed in place when the backend packs.
    Tensor qkv_proj;                // [(nq + 2 * nkv) * D, H] packed
    Tensor gate_up_proj;            // [2 * I, H] packed
  };

  LlamaModel(const ModelConfig& config, Backend* backend, DType dtype)
      : config_(config), backend_(backend), dtype_(dtype) {}
  Status load_weights(const WeightSet& weights);
  // Loads the linear weights `names` ([N_i, K] `shapes`) in dtype_ into outs, packed by the
  // backend when it can: one packed weight of their row concatenation into *fused (outs left
  // empty) when fused is set, else each packed in place.
  // Packs parts into one linear weight (Backend::pack_linear_weight) kept in storage_; false,
  // with *out untouched, when the backend has no packed layout.
  bool try_pack(const std::vector<Tensor>& parts, Tensor* out);
  Status load_linear(const WeightSet& weights, const std::vector<std::string>& names,
                     const std::vector<std::vector<int64_t>>& shapes, const std::vector<Tensor*>& outs,
                     Tensor* fused);
  void allocate_workspace(int64_t max_num_tokens, int64_t max_position);
  void attention(const Layer& layer, const ForwardBatch& batch, const KvCacheLayer& kv, int64_t num_tokens);

  ModelConfig config_;
  Backend* backend_;
  DType dtype_;
  std::vector<Buffer> storage_;  // owned weight conversions (empty when weights are mmapped views)
  Tensor embed_tokens_;          // [V, H]
  Tensor final_norm_;            // [H] float32
  Tensor lm_head_;               // [V, H] (embed_tokens_ when tied)
  std::vector<Layer> layers_;

  int64_t max_num_tokens_ = 0;
  Buffer cos_sin_cache_;  // [max_position, D] float32
  Buffer residual_;       // [max_num_tokens, H]
  Buffer normed_;         // [max_num_tokens, H]
  Buffer qkv_;            // [max_num_tokens, (nq + 2 * nkv) * D]
  Buffer attn_out_;       // [max_num_tokens, nq * D]
  Buffer proj_out_;       // [max_num_tokens, H]  (o_proj and down_proj outputs)
  Buffer gate_up_;        // [max_num_tokens, 2 * I]
  Buffer act_;            // [max_num_tokens, I]
  int64_t max_position_ = 0;
};

}  // namespace pagedllm
