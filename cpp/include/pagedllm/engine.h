// Engine: the public embedding API. Add requests, call step() until none is unfinished.
//
//   auto engine = pagedllm::Engine::create(config);       // Result<std::unique_ptr<Engine>>
//   engine.value()->add_request("r1", prompt_ids, params);
//   while (engine.value()->has_unfinished_requests()) {
//     auto outputs = engine.value()->step();              // Result<std::vector<RequestOutput>>
//   }
//
// An Engine is not thread-safe: call it from one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pagedllm/beam_search_params.h"
#include "pagedllm/config.h"
#include "pagedllm/request_output.h"
#include "pagedllm/sampling_params.h"
#include "pagedllm/status.h"

namespace pagedllm {

// Facts about the loaded model and the cache, fixed after create().
struct ModelInfo {
  std::string architecture;            // e.g. "LlamaForCausalLM"
  std::string dtype;                   // "float32" or "bfloat16"
  int64_t vocab_size = 0;
  int64_t max_model_len = 0;           // tokens
  std::vector<int32_t> eos_token_ids;  // from config.json and generation_config.json
  int64_t block_size = 0;              // tokens per KV block
  int64_t num_kv_blocks = 0;
  int64_t kv_cache_bytes = 0;
  int64_t max_num_batched_tokens = 0;
  int64_t max_num_seqs = 0;
};

// Counters at the moment of the call.
struct EngineStats {
  int64_t num_running = 0;
  int64_t num_waiting = 0;
  int64_t num_kv_blocks_total = 0;
  int64_t num_kv_blocks_used = 0;
  int64_t num_kv_slots_used = 0;         // tokens whose KV is stored
  int64_t num_preemptions = 0;           // since start
  int64_t num_steps = 0;                 // since start
  int64_t num_prompt_tokens_computed = 0;      // since start, including recomputation
  int64_t num_generation_tokens = 0;           // since start
  int64_t last_step_num_scheduled_tokens = 0;  // tokens computed by the latest step
  int64_t last_step_num_scheduled_seqs = 0;    // requests in the latest step
  int64_t num_prefix_cache_queries = 0;  // since start: tokens of admitted requests looked up
  int64_t num_prefix_cache_hits = 0;     // since start: of those, tokens found in the cache
  int64_t num_cached_blocks = 0;         // free KV blocks still holding a cached prefix
  // KV memory of the blocks held by running requests; a block shared by several requests (a
  // common prefix, the prompt of parallel samples) counts once.
  int64_t num_kv_slots_allocated = 0;    // token slots of the held blocks
  int64_t num_kv_slots_filled = 0;       // of those, slots holding a token's KV
  double kv_internal_waste = 0.0;        // (allocated - filled) / allocated; 0 when none held
  int64_t num_kv_blocks_saved_by_sharing = 0;  // blocks needed without sharing minus held
  int64_t num_graph_steps = 0;           // since start: steps run by replaying a captured graph
};

class EngineImpl;

class Engine {
 public:
  // Loads the model in config.model and sizes the KV cache. Fails with kNotFound,
  // kUnsupported, kCorruptData, kInvalidArgument or kResourceExhausted.
  static Result<std::unique_ptr<Engine>> create(const EngineConfig& config);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. Fails (and changes nothing) on a duplicate id, an empty prompt, a token id
  // outside the vocabulary, a prompt + max_tokens that cannot fit max_model_len or the whole KV
  // cache, or invalid params.
  Status add_request(const std::string& request_id, std::vector<int32_t> prompt_token_ids,
                     const SamplingParams& params);

  // Queues parallel samples of one prompt (vLLM's SamplingParams.n): request_ids[i] runs with
  // params[i] (typically the same params with per-sample seeds) and reports like any request,
  // but the samples share the prompt's KV blocks: the first one admitted computes the prompt,
  // the others then start from its full blocks (ref count > 1) and compute only the last,
  // partial block. Outputs equal those of add_request calls in the same order. Fails (and
  // changes nothing) as add_request does for any sample, on a repeated id, or on a size mismatch.
  Status add_parallel_requests(const std::vector<std::string>& request_ids, std::vector<int32_t> prompt_token_ids,
                               const std::vector<SamplingParams>& params);

  // Queues a beam search over one prompt, with Hugging Face transformers' semantics. Its beams
  // are requests that share KV blocks: a beam that forks hands its full blocks to its children
  // (ref count + 1) and its partially filled last block is copied (copy-on-write); dropped
  // beams free theirs. request_id reports one RequestOutput, when the search ends, whose
  // `beams` hold the beam_width best finished sequences. Fails (and changes nothing) on a
  // duplicate id, invalid params, an empty or oversize prompt, a token id outside the
  // vocabulary, beam_width > max_num_seqs, or beam_width unshared sequences of prompt +
  // max_tokens tokens that cannot fit the KV cache together.
  Status add_beam_search_request(const std::string& request_id, std::vector<int32_t> prompt_token_ids,
                                 const BeamSearchParams& params);

  // Runs one iteration: schedule, forward, sample, update. Returns one output per request that
  // produced tokens, prompt logprobs or finished in this step. Requests aborted since the last
  // step are reported here with FinishReason::kAbort.
  Result<std::vector<RequestOutput>> step();

  // Aborts a waiting or running request and frees its KV blocks. False if the id is unknown.
  bool abort_request(const std::string& request_id);

  // Drops every cached prefix block (e.g. after changing weights). Returns false and changes
  // nothing while any request holds KV blocks, as vLLM does.
  bool reset_prefix_cache();

  bool has_unfinished_requests() const;
  EngineStats stats() const;
  const ModelInfo& model_info() const;

 private:
  explicit Engine(std::unique_ptr<EngineImpl> impl);
  std::unique_ptr<EngineImpl> impl_;
};

}  // namespace pagedllm
