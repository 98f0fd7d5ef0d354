// BeamGroups: the engine's beam search requests. Each is a BeamSearchState plus a beam group in
// the scheduler (requests sharing a beam_group_id). A beam's sampled logits row becomes its
// candidates (collect_candidates); once every live beam of a group has them, advance() runs the
// group's beam step: the scheduler forks the chosen beams (copy-on-write of their KV blocks,
// returned as block copies for the runner) or, when the search is over, finishes the group and
// the request reports its sequences.
// Invariant: groups_ and ids_ describe the same requests; every group has live beams in the
// scheduler until its final output (or abort) is produced, and then leaves both maps.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/beam_search.h"
#include "pagedllm/engine.h"
#include "sched/scheduler.h"

namespace pagedllm {

class BeamGroups {
 public:
  BeamGroups(const ModelInfo& info, Scheduler* scheduler);

  bool contains(const std::string& request_id) const { return ids_.count(request_id) != 0; }
  // Validates (changing nothing on failure) and queues the search's first beam, whose seq id is
  // *next_seq_id (then incremented). kAlreadyExists when the id is in flight in the scheduler or
  // here; kInvalidArgument as Engine::add_beam_search_request says.
  Status add(const std::string& request_id, std::vector<int32_t> prompt, const BeamSearchParams& params,
             int64_t arrival_idx, uint64_t* next_seq_id);
  // Stores the best candidates of beam `request` from its next-token logits [vocab_size].
  void collect_candidates(Request& request, const float* logits) const;
  // Runs the beam step of every group with a beam in `out` whose beams are all ready. Appends
  // the block copies of forks to *copies and the final outputs of ended searches to *outputs.
  void advance(const SchedulerOutput& out, uint64_t* next_seq_id, std::vector<std::pair<int32_t, int32_t>>* copies,
               std::vector<RequestOutput>* outputs);
  // Aborts a search: finishes its beams and fills *output. False for an unknown id.
  bool abort(const std::string& request_id, RequestOutput* output);

 private:
  struct Group {
    std::string request_id;
    BeamSearchState state;
    int64_t num_prompt_tokens = 0;
    float temperature = 0.0f;
  };
  RequestOutput final_output(const Group& group, FinishReason reason) const;

  const ModelInfo& info_;
  Scheduler* scheduler_;
  std::unordered_map<uint64_t, Group> groups_;
  std::unordered_map<std::string, uint64_t> ids_;  // request id -> beam group id
  uint64_t next_group_id_ = 1;
};

}  // namespace pagedllm
