// ModelRunner: turns a SchedulerOutput into the flat inputs of one forward pass, owns the paged
// KV cache, runs the model eagerly or as a replayed graph, and returns logits on the host.
//
// Flat layout of a step: the scheduled requests' tokens are concatenated in schedule order.
// For request b with num_computed_before = s and n tokens: input_ids = token_ids[s, s + n),
// positions = s .. s + n - 1, slot_mapping[t] = block_table[pos / block_size] * block_size +
// pos % block_size, seq_lens[b] = s + n, query_start_loc[b + 1] = query_start_loc[b] + n.
//
// Graphs (backends with supports_graphs()): capture_graphs() records the decode step (model
// forward and logits) once per padded batch size against the fixed-address buffers of
// StepInputs, the model's workspace and the KV cache, which every graph shares; a decode-only
// step of B requests pads its inputs to the next captured size and replays that graph
// (graph_sizes.h). Captured steps pass max_seq_len = max_model_len to attention, so launch
// shapes never depend on the step.
//
// Invariants: buffers are sized once for the largest step (max_num_batched_tokens tokens,
// max_num_seqs requests, max_model_len tokens per request); every step ends by waiting for
// the device (copy_to_host of the logits or, with device logits, of the tokens sampled from
// them; a synchronize when there are none), so the host staging buffer is free again when the
// next step fills it.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_cache_manager.h"
#include "model/llama.h"
#include "runner/step_inputs.h"
#include "sched/scheduler.h"

namespace pagedllm {

struct RunnerConfig {
  int64_t block_size = 16;
  int64_t max_num_batched_tokens = 2048;
  int64_t max_num_seqs = 256;
  int64_t max_model_len = 2048;
};

class ModelRunner {
 public:
  // Allocates the step buffers. The KV cache comes later (allocate_kv_cache), once its size is
  // known, possibly from profile_run().
  ModelRunner(const RunnerConfig& config, Backend* backend, LlamaModel* model);

  // Runs the largest step the scheduler can produce once and waits for it: max_num_batched_tokens
  // prompt tokens spread over max_num_seqs sequences, logits of max_num_seqs rows, against a
  // temporary cache of the few blocks it reads (slots -1: nothing is written). For measuring
  // the peak device memory before allocate_kv_cache.
  void profile_run();

  // Allocates the KV cache: [num_blocks, num_kv_heads, block_size, head_dim] per layer for K
  // and for V, in the model's dtype. Called once, before execute().
  void allocate_kv_cache(int64_t num_blocks);

  // Captures the decode step at each of `sizes` (ascending, from graph_capture_sizes) as a
  // graph. Preconditions: allocate_kv_cache was called; backend->supports_graphs().
  void capture_graphs(const std::vector<int64_t>& sizes);
  const std::vector<int64_t>& graph_sizes() const { return graph_sizes_; }
  int64_t num_graph_steps() const { return num_graph_steps_; }  // steps replayed since start

  // Runs the forward pass of `output` and returns the logits of the requested flat token
  // indices: [logits_indices.size(), vocab_size] float32 on the host, valid until the next call.
  // Precondition: every scheduled request has KV slots for num_computed_before + num_tokens.
  // With device_logits set, the logits stay on the device instead (device sampling):
  // *device_logits = [R, vocab] float32 view (R <= max_num_seqs) and execute returns nullptr.
  const float* execute(const SchedulerOutput& output, const KVCacheManager& kv,
                       const std::vector<int32_t>& logits_indices, Tensor* device_logits = nullptr);

  int64_t kv_cache_bytes() const;

  // Copy-on-write: block dst of every layer's K and V cache becomes a copy of block src, for
  // each (src, dst) pair, before the next forward pass. No src is also a dst.
  void copy_blocks(const std::vector<std::pair<int32_t, int32_t>>& pairs);

 private:
  // One K and one V buffer per layer of num_blocks blocks, appended to *storage, viewed as
  // [num_blocks, num_kv_heads, block_size, head_dim] in the model's dtype.
  std::vector<KvCacheLayer> make_kv_layers(int64_t num_blocks, std::vector<Buffer>* storage);
  // Fills the host staging arrays of `output`; returns max_seq_len over its requests.
  int32_t stage(const SchedulerOutput& output, const KVCacheManager& kv, const std::vector<int32_t>& logits_indices);
  // Enqueues the upload of a staged step of num_seqs sequences; the one place inputs reach the
  // device before a forward pass, eager or replayed.
  void upload_inputs(int64_t num_seqs);
  // The captured body: forward and logits of a padded decode step of `padded` sequences.
  void run_decode(int64_t padded);
  Tensor logits_rows(int64_t rows) const;  // [rows, vocab] float32 view of d_logits_
  const float* logits_to_host(const Tensor& logits, int64_t begin_row);

  RunnerConfig config_;
  Backend* backend_;
  LlamaModel* model_;
  int64_t max_blocks_per_seq_ = 0;
  int64_t vocab_size_ = 0;
  int64_t logits_chunk_rows_ = 0;
  int64_t num_kv_blocks_ = 0;
  std::vector<Buffer> kv_storage_;       // 2 per layer
  std::vector<KvCacheLayer> kv_cache_;   // views into kv_storage_

  std::unique_ptr<StepInputs> inputs_;   // host staging + device inputs, fixed addresses
  std::vector<float> logits_host_;       // [R, vocab] grows to the largest R seen
  std::vector<int64_t> block_mapping_;   // [max_num_seqs, 2] (src, dst) block pairs
  Buffer d_hidden_;          // [max_num_batched_tokens, hidden] activation
  Buffer d_logits_;          // [logits_chunk_rows, vocab] float32
  Buffer d_cache_ptrs_;      // [2, num_layers] int64 addresses of the K caches, then the V caches
  Buffer d_block_mapping_;   // [max_num_seqs, 2] int64

  std::vector<int64_t> graph_sizes_;  // ascending captured batch sizes
  std::vector<int64_t> graph_ids_;    // graph_ids_[i] replays graph_sizes_[i]
  int64_t num_graph_steps_ = 0;
};

}  // namespace pagedllm
