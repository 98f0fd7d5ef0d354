// Request: the scheduler's record of one request's tokens and progress.
// Invariants: 0 <= num_computed_tokens <= num_tokens(); token_ids holds the prompt then the
// outputs; a request in the running set owns KV blocks for at least num_computed_tokens tokens.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pagedllm/request_output.h"
#include "pagedllm/sampling_params.h"

namespace pagedllm {

enum class RequestStatus { kWaiting, kRunning, kFinished };

struct Request {
  std::string request_id;
  uint64_t seq_id = 0;        // handle in KVCacheManager; unique per engine, never reused
  int64_t arrival_idx = 0;    // order of add_request (FCFS)
  // Requests with the same nonzero group_id are parallel samples of one prompt (added together)
  // and share the prompt's KV blocks; 0 = none.
  uint64_t group_id = 0;
  // Requests with the same nonzero beam_group_id are the live beams of one beam search: the
  // scheduler runs, preempts and admits them as a unit and leaves their tokens to the engine's
  // beam step (Scheduler::fork_beams, engine/beam_groups.h); 0 = none.
  uint64_t beam_group_id = 0;
  int64_t beam_width = 0;      // beams the group may hold (seats reserved in max_num_seqs)
  // A beam whose last token's logits have been turned into beam_candidates: it has no work
  // until its group's beam step replaces it. Preemption clears it.
  bool beam_ready = false;
  std::vector<std::pair<int32_t, float>> beam_candidates;  // best (token id, logprob), best first
  double beam_cum_logprob = 0.0;     // sum of beam_logprobs
  std::vector<float> beam_logprobs;  // [num_output_tokens] logprob of each generated token
  std::vector<int32_t> token_ids;  // [num_prompt_tokens + num_output_tokens]
  int64_t num_prompt_tokens = 0;
  int64_t num_computed_tokens = 0;  // tokens whose KV is in the cache
  SamplingParams params;
  uint64_t seed = 0;          // params.seed, or derived from the engine seed and arrival_idx
  RequestStatus status = RequestStatus::kWaiting;
  FinishReason finish_reason = FinishReason::kNone;
  int32_t stop_token_id = -1;
  // First prompt position whose logprob is not yet reported (position 0 never has one).
  int64_t next_prompt_logprob_pos = 1;
  int64_t num_preemptions = 0;
  // Prefix-cache hit in tokens when the request was first admitted; -1 before that.
  int64_t num_cached_tokens = -1;

  int64_t num_tokens() const { return static_cast<int64_t>(token_ids.size()); }
  int64_t num_output_tokens() const { return num_tokens() - num_prompt_tokens; }
  const int32_t* output_token_ids() const { return token_ids.data() + num_prompt_tokens; }
  bool is_finished() const { return status == RequestStatus::kFinished; }
};

}  // namespace pagedllm
