// BeamGroups: beam search requests between the scheduler and BeamSearchState (beam_groups.h).
#include "engine/beam_groups.h"

#include <algorithm>

#include "engine/request_validation.h"
#include "util/check.h"

namespace pagedllm {

BeamGroups::BeamGroups(const ModelInfo& info, Scheduler* scheduler) : info_(info), scheduler_(scheduler) {}

Status BeamGroups::add(const std::string& request_id, std::vector<int32_t> prompt, const BeamSearchParams& params,
                       int64_t arrival_idx, uint64_t* next_seq_id) {
  Status valid = params.validate();
  if (!valid.ok()) return valid;
  if (request_id.empty()) return Status(StatusCode::kInvalidArgument, "request_id must not be empty");
  if (scheduler_->contains(request_id) || contains(request_id)) {
    return Status(StatusCode::kAlreadyExists, "request_id '" + request_id + "' is already in flight");
  }
  SamplingParams one;
  one.max_tokens = params.max_tokens;
  valid = validate_request(info_, prompt, one);
  if (!valid.ok()) return valid;
  if (params.beam_width > info_.max_num_seqs) {
    return Status(StatusCode::kInvalidArgument, "beam_width " + std::to_string(params.beam_width) +
                                                    " exceeds max_num_seqs (" + std::to_string(info_.max_num_seqs) + ")");
  }
  const int64_t P = static_cast<int64_t>(prompt.size());
  const int64_t max_len = std::min(P + params.max_tokens, info_.max_model_len);
  const int64_t blocks = params.beam_width * ((max_len + info_.block_size - 1) / info_.block_size);
  if (blocks > info_.num_kv_blocks) {
    return Status(StatusCode::kInvalidArgument,
                  std::to_string(params.beam_width) + " beams of up to " + std::to_string(max_len) + " tokens need " +
                      std::to_string(blocks) + " KV blocks but the cache has " + std::to_string(info_.num_kv_blocks));
  }
  const uint64_t group_id = next_group_id_++;
  const int64_t max_new_tokens = std::max<int64_t>(1, std::min(params.max_tokens, info_.max_model_len - P));
  groups_.emplace(group_id, Group{request_id, BeamSearchState(params, info_.eos_token_ids, max_new_tokens), P,
                                  params.temperature});
  ids_[request_id] = group_id;
  auto r = std::make_unique<Request>();
  r->request_id = request_id + '\x1f' + "0";
  r->seq_id = (*next_seq_id)++;
  r->arrival_idx = arrival_idx;
  r->beam_group_id = group_id;
  r->beam_width = params.beam_width;
  r->token_ids = std::move(prompt);
  r->num_prompt_tokens = P;
  r->params = one;
  scheduler_->add_request(std::move(r));
  return Status();
}

void BeamGroups::collect_candidates(Request& request, const float* logits) const {
  const Group& group = groups_.at(request.beam_group_id);
  top_logprobs(logits, info_.vocab_size, group.state.num_candidates(), group.temperature, &request.beam_candidates);
}

void BeamGroups::advance(const SchedulerOutput& out, uint64_t* next_seq_id,
                         std::vector<std::pair<int32_t, int32_t>>* copies, std::vector<RequestOutput>* outputs) {
  std::vector<uint64_t> touched;
  for (const ScheduledRequest& s : out.scheduled) {
    const uint64_t g = s.request->beam_group_id;
    if (g != 0 && std::find(touched.begin(), touched.end(), g) == touched.end()) touched.push_back(g);
  }
  for (uint64_t g : touched) {
    const std::vector<Request*> beams = scheduler_->beam_group(g);
    if (beams.empty() || !std::all_of(beams.begin(), beams.end(), [](const Request* r) { return r->beam_ready; })) {
      continue;
    }
    Group& group = groups_.at(g);
    std::vector<BeamView> views(beams.size());
    for (size_t b = 0; b < beams.size(); ++b) {
      const Request& r = *beams[b];
      views[b] = {r.beam_cum_logprob, &r.token_ids, r.num_prompt_tokens, &r.beam_logprobs, &r.beam_candidates};
    }
    const std::vector<BeamChoice> choices = group.state.step(views);
    if (choices.empty()) {
      RequestOutput o = final_output(group, FinishReason::kNone);
      o.num_cached_tokens = std::max<int64_t>(0, beams.front()->num_cached_tokens);
      outputs->push_back(std::move(o));
      scheduler_->finish_beam_group(g, FinishReason::kStop);
      ids_.erase(group.request_id);
      groups_.erase(g);
      continue;
    }
    std::vector<Scheduler::BeamChild> children;
    for (const BeamChoice& c : choices) children.push_back({beams[c.parent], c.token_id, c.logprob});
    const std::vector<std::pair<int32_t, int32_t>> forked = scheduler_->fork_beams(g, children, next_seq_id);
    copies->insert(copies->end(), forked.begin(), forked.end());
  }
}

RequestOutput BeamGroups::final_output(const Group& group, FinishReason reason) const {
  RequestOutput o;
  o.request_id = group.request_id;
  o.finished = true;
  o.num_prompt_tokens = group.num_prompt_tokens;
  o.beams = group.state.finished();
  o.finish_reason = reason;
  if (!o.beams.empty()) {
    if (reason == FinishReason::kNone) o.finish_reason = o.beams.front().finish_reason;
    o.num_output_tokens = static_cast<int64_t>(o.beams.front().token_ids.size());
  }
  return o;
}

bool BeamGroups::abort(const std::string& request_id, RequestOutput* output) {
  auto id = ids_.find(request_id);
  if (id == ids_.end()) return false;
  const uint64_t g = id->second;
  Group& group = groups_.at(g);
  *output = final_output(group, FinishReason::kAbort);
  output->beams.clear();
  output->num_output_tokens = 0;
  scheduler_->finish_beam_group(g, FinishReason::kAbort);
  ids_.erase(id);
  groups_.erase(g);
  return true;
}

}  // namespace pagedllm
