// ModelRunner: turns a SchedulerOutput into the flat inputs of one forward pass, owns the paged
// KV cache and returns logits on the host.
//
// Flat layout of a step: the scheduled requests' tokens are concatenated in schedule order.
// For request b with num_computed_before = s and n tokens: input_ids = token_ids[s, s + n),
// positions = s .. s + n - 1, slot_mapping[t] = block_table[pos / block_size] * block_size +
// pos % block_size, seq_lens[b] = s + n, query_start_loc[b + 1] = query_start_loc[b] + n.
// Invariant: host staging vectors and device buffers are sized once for the largest step
// (max_num_batched_tokens tokens, max_num_seqs requests, max_model_len tokens per request).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_cache_manager.h"
#include "model/llama.h"
#include "sched/scheduler.h"

namespace pagedllm {

struct RunnerConfig {
  int64_t num_kv_blocks = 0;
  int64_t block_size = 16;
  int64_t max_num_batched_tokens = 2048;
  int64_t max_num_seqs = 256;
  int64_t max_model_len = 2048;
};

class ModelRunner {
 public:
  // Allocates the KV cache ([num_kv_blocks, num_kv_heads, block_size, head_dim] per layer for K
  // and for V, in the model's dtype) and the step buffers.
  ModelRunner(const RunnerConfig& config, Backend* backend, LlamaModel* model);

  // Runs the forward pass of `output` and returns the logits of the requested flat token
  // indices: [logits_indices.size(), vocab_size] float32 on the host, valid until the next call.
  // Precondition: every scheduled request has KV slots for num_computed_before + num_tokens.
  const float* execute(const SchedulerOutput& output, const KVCacheManager& kv,
                       const std::vector<int32_t>& logits_indices);

  int64_t kv_cache_bytes() const;

 private:
  void build_inputs(const SchedulerOutput& output, const KVCacheManager& kv,
                    const std::vector<int32_t>& logits_indices);

  RunnerConfig config_;
  Backend* backend_;
  LlamaModel* model_;
  int64_t max_blocks_per_seq_ = 0;
  int64_t vocab_size_ = 0;
  int64_t logits_chunk_rows_ = 0;
  std::vector<Buffer> kv_storage_;       // 2 per layer
  std::vector<KvCacheLayer> kv_cache_;   // views into kv_storage_

  // Host staging, sized once.
  std::vector<int32_t> input_ids_;        // [max_num_batched_tokens]
  std::vector<int32_t> positions_;        // [max_num_batched_tokens]
  std::vector<int64_t> slot_mapping_;     // [max_num_batched_tokens]
  std::vector<int32_t> block_tables_;     // [max_num_seqs, max_blocks_per_seq]
  std::vector<int32_t> query_start_loc_;  // [max_num_seqs + 1]
  std::vector<int32_t> seq_lens_;         // [max_num_seqs]
  std::vector<float> logits_host_;        // [R, vocab] grows to the largest R seen

  // Device copies of the above.
  Buffer d_input_ids_, d_positions_, d_slot_mapping_, d_block_tables_, d_query_start_loc_, d_seq_lens_;
  Buffer d_logits_indices_;  // [max_num_batched_tokens] int32
  Buffer d_hidden_;          // [max_num_batched_tokens, hidden] activation
  Buffer d_logits_;          // [logits_chunk_rows, vocab] float32
};

}  // namespace pagedllm
