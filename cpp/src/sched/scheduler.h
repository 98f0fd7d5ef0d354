// Scheduler: iteration-level continuous batching under a token budget.
//
// The scheduling model. There are no prefill and decode phases. Every request has
// num_computed_tokens <= num_tokens; each step the scheduler hands out a token budget
// (max_num_batched_tokens tokens, max_num_seqs requests) so that computed catches up with total.
// A decode (1 token), a chunk of a long prompt (chunked prefill), a prompt whose prefix is
// already cached, and speculative tokens are the same code path: "schedule n tokens of request r".
//
// Order of one schedule():
//  1. Running requests, oldest first, each get min(remaining, budget) tokens. When the KV pool
//     cannot hold them, the newest running request is preempted (blocks freed,
//     num_computed_tokens = 0, back to the front of the waiting queue) until it fits; if the
//     request itself is the newest, it is preempted and the loop stops.
//  2. Then, only if nothing was preempted in this step, waiting requests in FCFS order join
//     while budget, max_num_seqs and free blocks allow. Without chunked prefill a prompt joins
//     only when all its remaining tokens fit the budget; with it, the head of the queue may take
//     a partial chunk. Admission is a dry run (can_allocate) before any state changes.
//     With prefix caching on, an admitted request (new or resumed after preemption) first looks
//     up its longest cached prefix of whole blocks, at most num_tokens - 1 tokens so the last
//     token's logits are computed, and starts with num_computed_tokens there: the rest is the
//     ordinary (chunked) prefill. Requests asking for prompt logprobs skip the lookup (they
//     need logits at every prompt position) but still fill the cache.
//     Parallel samples (requests with one group_id) share their prompt: while a sibling is
//     running and has not yet computed the prompt's full blocks up to the last prompt token,
//     the next sibling waits at the head of the queue; once it has, the sibling is admitted
//     starting from those blocks (shared, ref count + 1; with caching on, found by the prefix
//     lookup, otherwise taken from the running sibling's table) and computes only the rest: the
//     last, partial block is recomputed into a block of its own rather than copied. A sample
//     that asks for prompt logprobs neither waits nor shares.
//     Beam search groups (requests with one beam_group_id) run as a unit: a group holds
//     beam_width seats of max_num_seqs from its admission on; its beams are admitted together
//     or not at all (a re-admitted group recomputes every beam, without a prefix lookup; beams
//     past the token budget join with nothing scheduled and continue in later steps), and
//     preempting one preempts all. A beam that sampled (beam_ready) has no work until the
//     engine's beam step replaces the group's beams by their children (fork_beams).
// A preempted request recomputes its prompt and outputs later; since sampling depends only on
// (seed, output index) and the logits, its output does not change.
//
// Invariants: budgets are never exceeded; a request is in exactly one of waiting, running or
// finished; only running requests own KV blocks; all blocks are free when nothing is unfinished;
// a running request's cached blocks hold its own tokens and lie within its computed tokens.
// Pure host code: it never touches a device pointer.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kv/kv_cache_manager.h"
#include "sched/request.h"

namespace pagedllm {

struct SchedulerConfig {
  int64_t max_num_seqs = 256;
  int64_t max_num_batched_tokens = 2048;
  int64_t max_model_len = 2048;
  bool enable_chunked_prefill = true;
  std::vector<int32_t> eos_token_ids;
};

struct ScheduledRequest {
  Request* request = nullptr;
  int64_t num_computed_before = 0;  // request->num_computed_tokens when scheduled
  int64_t num_tokens = 0;           // tokens computed for it in this step (>= 1)
  // True when this step reaches the end of the request's known tokens, so its last logits row
  // yields a new token.
  bool samples = false;
};

struct SchedulerOutput {
  std::vector<ScheduledRequest> scheduled;  // in running order
  std::vector<std::string> preempted;       // request ids preempted in this step
  int64_t num_scheduled_tokens = 0;         // sum of scheduled[i].num_tokens
  bool empty() const { return scheduled.empty(); }
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, KVCacheManager* kv);

  // Queues a validated request (status kWaiting). Precondition: its id is not in flight.
  void add_request(std::unique_ptr<Request> request);
  bool contains(const std::string& request_id) const;

  // Chooses this step's work and allocates its KV slots (see the order above).
  SchedulerOutput schedule();

  // After the forward pass: advances num_computed_tokens of every scheduled request (and
  // registers its newly full blocks in the prefix cache), appends
  // sampled_token_ids[i] for each scheduled[i] with samples == true (entries for others are
  // ignored), applies the stop checks (EOS unless ignore_eos, stop_token_ids, both only after
  // min_tokens; max_tokens; max_model_len), and frees finished requests' blocks.
  // Returns the requests that finished in this step; they stay valid until the next call to
  // schedule() or update(), which deletes them.
  std::vector<Request*> update(const SchedulerOutput& output, const std::vector<int32_t>& sampled_token_ids);

  // One child of a beam step: a new beam continuing `parent` (a live beam of the group) with
  // token_id, whose logprob is `logprob`.
  struct BeamChild {
    const Request* parent = nullptr;
    int32_t token_id = 0;
    float logprob = 0.0f;
  };
  // Replaces the live beams of beam group beam_group_id (all running and beam_ready) by one
  // running beam per child, in order, in their place in the running order. A parent's first
  // child takes over its KV table; its other children fork it (kv fork(): full blocks shared,
  // the partial last block copied, seq ids from *next_seq_id); parents without children are
  // freed first. Returns the (src, dst) block copies the caller must apply before the next
  // forward pass. The replaced records stay valid until the next schedule().
  std::vector<std::pair<int32_t, int32_t>> fork_beams(uint64_t beam_group_id, const std::vector<BeamChild>& children,
                                                      uint64_t* next_seq_id);
  // Finishes every live beam of the group with `reason` and frees their blocks (no output is
  // reported for them). No-op for an unknown group.
  void finish_beam_group(uint64_t beam_group_id, FinishReason reason);
  // The live beams of a group in order; empty for an unknown group.
  const std::vector<Request*>& beam_group(uint64_t beam_group_id) const;

  // Finishes a waiting or running request with kAbort and frees its blocks. The record stays
  // valid until the next schedule() or update(). Returns nullptr for an unknown id.
  Request* abort(const std::string& request_id);

  bool has_unfinished_requests() const { return !waiting_.empty() || !running_.empty(); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t num_preemptions() const { return num_preemptions_; }
  // Prefix-cache lookups of admitted requests, in tokens, as vLLM counts them: queries are the
  // tokens looked up, hits the cached tokens found.
  int64_t num_prefix_cache_queries() const { return num_prefix_cache_queries_; }
  int64_t num_prefix_cache_hits() const { return num_prefix_cache_hits_; }
  const SchedulerConfig& config() const { return config_; }

  // CHECK-fails on any broken invariant (also runs the KV manager's check).
  void check_invariants() const;

 private:
  // The cached prefix `request` may start from (empty when caching is off or it wants prompt
  // logprobs). Never changes state.
  ComputedBlocks lookup_prefix(const Request& request) const;
  // For a waiting parallel sample: sets *wait when a running sibling is still computing the
  // shareable prompt blocks; returns the computed prefix to start from (a cache lookup, or the
  // running sibling's blocks with caching off; empty when there is none). Never changes state.
  ComputedBlocks sibling_prefix(const Request& request, bool* wait) const;
  void preempt(Request* request);
  // Preempts running_.back(), with its whole beam group; their entries leave `out` (tokens
  // refunded to *token_budget). Returns the preempted requests.
  std::vector<Request*> preempt_newest(SchedulerOutput* out, int64_t* token_budget);
  // Admits the beam group at the head of waiting_ as a unit. False (nothing changed) when its
  // seats, the token budget or the free blocks do not allow it.
  bool admit_beam_group(SchedulerOutput* out, int64_t* token_budget, int64_t* num_seats);
  // Seats of max_num_seqs held by running requests: 1 each, beam_width per beam group.
  int64_t num_seats_held() const;
  void check_beam_invariants() const;
  void finish(Request* request, FinishReason reason);
  void purge_finished();

  SchedulerConfig config_;
  KVCacheManager* kv_;
  std::unordered_map<std::string, std::unique_ptr<Request>> requests_;  // all in flight
  std::deque<Request*> waiting_;
  std::vector<Request*> running_;  // oldest scheduled first
  std::vector<std::string> finished_ids_;  // purged on the next schedule()/update()
  std::unordered_map<uint64_t, std::vector<Request*>> beam_groups_;  // live beams of each group
  std::vector<std::unique_ptr<Request>> replaced_beams_;  // purged on the next schedule()
  uint64_t next_beam_serial_ = 0;
  int64_t num_preemptions_ = 0;
  int64_t num_prefix_cache_queries_ = 0;
  int64_t num_prefix_cache_hits_ = 0;
};

}  // namespace pagedllm
