// Scheduler: FCFS continuous batching with recompute preemption (spec at the top of scheduler.h).
// Invariants: waiting_ is sorted by arrival_idx (the beams of a group share theirs); running_
// is in admission order; every record in requests_ is in exactly one of waiting_, running_ or
// finished_ids_, matching its status; only running requests have a KV table.
#include "sched/scheduler.h"

#include <algorithm>
#include <unordered_set>

#include "util/check.h"

namespace pagedllm {

namespace {

bool contains_token(const std::vector<int32_t>& ids, int32_t token_id) {
  return std::find(ids.begin(), ids.end(), token_id) != ids.end();
}

}  // namespace

Scheduler::Scheduler(const SchedulerConfig& config, KVCacheManager* kv) : config_(config), kv_(kv) {
  PAGEDLLM_CHECK(kv_ != nullptr, "Scheduler needs a KVCacheManager");
  PAGEDLLM_CHECK(config_.max_num_seqs >= 1, "max_num_seqs must be >= 1");
  PAGEDLLM_CHECK(config_.max_num_batched_tokens >= 1, "max_num_batched_tokens must be >= 1");
  PAGEDLLM_CHECK(config_.max_model_len >= 1, "max_model_len must be >= 1");
  PAGEDLLM_CHECK(config_.enable_chunked_prefill ||
                     config_.max_num_batched_tokens >= config_.max_model_len,
                 "without chunked prefill max_num_batched_tokens (" << config_.max_num_batched_tokens
                     << ") must be >= max_model_len (" << config_.max_model_len
                     << ") or long prompts never run");
}

void Scheduler::add_request(std::unique_ptr<Request> request) {
  PAGEDLLM_CHECK(request != nullptr, "add_request of a null request");
  const std::string& id = request->request_id;
  PAGEDLLM_CHECK(requests_.count(id) == 0, "request id '" << id << "' is already in flight");
  PAGEDLLM_CHECK(request->status == RequestStatus::kWaiting, "request '" << id << "' is not waiting");
  PAGEDLLM_CHECK(request->num_tokens() >= 1 && request->num_prompt_tokens == request->num_tokens(),
                 "request '" << id << "' must hold exactly its non-empty prompt");
  PAGEDLLM_CHECK(request->num_tokens() <= config_.max_model_len,
                 "request '" << id << "' prompt exceeds max_model_len");
  PAGEDLLM_CHECK(request->num_computed_tokens == 0, "request '" << id << "' has computed tokens");
  PAGEDLLM_CHECK(!kv_->has_sequence(request->seq_id), "seq_id " << request->seq_id << " is in use");
  PAGEDLLM_CHECK(waiting_.empty() || waiting_.back()->arrival_idx < request->arrival_idx,
                 "arrival_idx must increase across add_request calls (request '" << id << "')");
  Request* raw = request.get();
  if (raw->beam_group_id != 0) {
    std::vector<Request*>& beams = beam_groups_[raw->beam_group_id];
    PAGEDLLM_CHECK(beams.empty() && raw->beam_width >= 1, "beam group " << raw->beam_group_id << " added twice");
    beams.push_back(raw);
  }
  requests_.emplace(id, std::move(request));
  waiting_.push_back(raw);
}

bool Scheduler::contains(const std::string& request_id) const {
  return requests_.count(request_id) != 0;
}

SchedulerOutput Scheduler::schedule() {
  purge_finished();
  SchedulerOutput out;
  int64_t token_budget = config_.max_num_batched_tokens;
  bool preempted_any = false;

  size_t i = 0;
  while (i < running_.size() && token_budget > 0) {
    Request* request = running_[i];
    if (request->beam_ready) {
      ++i;
      continue;
    }
    int64_t num_wanted = request->num_tokens() - request->num_computed_tokens;
    PAGEDLLM_CHECK(num_wanted > 0, "running request '" << request->request_id << "' has no work");
    int64_t num_new = std::min(num_wanted, token_budget);
    if (!config_.enable_chunked_prefill && num_new < num_wanted) {
      ++i;
      continue;
    }
    bool allocated = false;
    int64_t num_total = request->num_computed_tokens + num_new;
    while (!(allocated = kv_->allocate_slots(request->seq_id, num_total))) {
      const std::vector<Request*> victims = preempt_newest(&out, &token_budget);
      preempted_any = true;
      if (std::find(victims.begin(), victims.end(), request) != victims.end()) break;
    }
    if (!allocated) break;
    out.scheduled.push_back(
        {request, request->num_computed_tokens, num_new, num_total == request->num_tokens()});
    token_budget -= num_new;
    ++i;
  }

  int64_t num_seats = num_seats_held();
  while (!preempted_any && token_budget > 0 && !waiting_.empty() && num_seats < config_.max_num_seqs) {
    Request* request = waiting_.front();
    if (request->beam_group_id != 0) {
      if (!admit_beam_group(&out, &token_budget, &num_seats)) break;
      continue;
    }
    bool wait_for_sibling = false;
    const ComputedBlocks computed = sibling_prefix(*request, &wait_for_sibling);
    if (wait_for_sibling) break;
    int64_t num_wanted = request->num_tokens() - computed.num_tokens;
    int64_t num_new = std::min(num_wanted, token_budget);
    if (!config_.enable_chunked_prefill && num_new < num_wanted) break;
    int64_t num_total = computed.num_tokens + num_new;
    if (!kv_->can_allocate(request->seq_id, num_total, computed)) break;
    bool allocated = kv_->allocate_slots(request->seq_id, num_total, computed);
    PAGEDLLM_CHECK(allocated, "allocate_slots failed after can_allocate succeeded");
    request->num_computed_tokens = computed.num_tokens;
    if (request->num_cached_tokens < 0) request->num_cached_tokens = computed.num_tokens;
    if (kv_->enable_caching() && request->params.prompt_logprobs < 0) {
      num_prefix_cache_queries_ += request->num_tokens();
      num_prefix_cache_hits_ += computed.num_tokens;
    }
    waiting_.pop_front();
    request->status = RequestStatus::kRunning;
    running_.push_back(request);
    ++num_seats;
    out.scheduled.push_back(
        {request, request->num_computed_tokens, num_new, num_total == request->num_tokens()});
    token_budget -= num_new;
  }

  out.num_scheduled_tokens = config_.max_num_batched_tokens - token_budget;
  return out;
}

std::vector<Request*> Scheduler::update(const SchedulerOutput& output,
                                        const std::vector<int32_t>& sampled_token_ids) {
  PAGEDLLM_CHECK(sampled_token_ids.size() == output.scheduled.size(),
                 "update got " << sampled_token_ids.size() << " sampled tokens for "
                               << output.scheduled.size() << " scheduled requests");
  std::vector<std::string> stale_ids;
  stale_ids.swap(finished_ids_);
  std::vector<Request*> finished;
  for (size_t i = 0; i < output.scheduled.size(); ++i) {
    const ScheduledRequest& entry = output.scheduled[i];
    Request* request = entry.request;
    if (request->status != RequestStatus::kRunning) continue;
    PAGEDLLM_CHECK(request->num_computed_tokens == entry.num_computed_before,
                   "request '" << request->request_id << "' changed between schedule and update");
    request->num_computed_tokens += entry.num_tokens;
    PAGEDLLM_CHECK(request->num_computed_tokens <= request->num_tokens(),
                   "request '" << request->request_id << "' computed past its tokens");
    kv_->cache_full_blocks(request->seq_id, request->token_ids, request->num_computed_tokens);
    if (!entry.samples) continue;
    if (request->beam_group_id != 0) {
      request->beam_ready = true;
      continue;
    }
    PAGEDLLM_CHECK(request->num_computed_tokens == request->num_tokens(),
                   "request '" << request->request_id << "' sampled before its last token");
    int32_t token_id = sampled_token_ids[i];
    request->token_ids.push_back(token_id);
    const SamplingParams& params = request->params;
    bool past_min_tokens = request->num_output_tokens() >= params.min_tokens;
    FinishReason reason = FinishReason::kNone;
    if (past_min_tokens && !params.ignore_eos && contains_token(config_.eos_token_ids, token_id)) {
      reason = FinishReason::kStop;
    } else if (past_min_tokens && contains_token(params.stop_token_ids, token_id)) {
      reason = FinishReason::kStop;
    } else if (request->num_output_tokens() >= params.max_tokens ||
               request->num_tokens() >= config_.max_model_len) {
      reason = FinishReason::kLength;
    }
    if (reason == FinishReason::kNone) continue;
    if (reason == FinishReason::kStop) request->stop_token_id = token_id;
    finish(request, reason);
    finished.push_back(request);
  }
  for (const std::string& id : stale_ids) requests_.erase(id);
  return finished;
}

Request* Scheduler::abort(const std::string& request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end() || it->second->is_finished()) return nullptr;
  Request* request = it->second.get();
  finish(request, FinishReason::kAbort);
  return request;
}

ComputedBlocks Scheduler::lookup_prefix(const Request& request) const {
  if (!kv_->enable_caching() || request.params.prompt_logprobs >= 0) return ComputedBlocks();
  PAGEDLLM_CHECK(request.num_computed_tokens == 0 && !kv_->has_sequence(request.seq_id),
                 "prefix lookup for '" << request.request_id << "', which already has KV");
  return kv_->get_computed_blocks(request.token_ids, request.num_tokens() - 1);
}

ComputedBlocks Scheduler::sibling_prefix(const Request& request, bool* wait) const {
  *wait = false;
  const int64_t block_size = kv_->block_size();
  // Whole blocks before the last prompt token, whose logits every sample needs.
  const int64_t num_shareable = (request.num_prompt_tokens - 1) / block_size * block_size;
  if (request.group_id == 0 || request.params.prompt_logprobs >= 0 || num_shareable == 0) {
    return lookup_prefix(request);
  }
  const Request* source = nullptr;
  for (const Request* r : running_) {
    if (r->group_id != request.group_id) continue;
    if (r->num_computed_tokens >= num_shareable) {
      source = r;
      break;
    }
    *wait = true;
  }
  if (source == nullptr) return *wait ? ComputedBlocks() : lookup_prefix(request);
  *wait = false;
  if (kv_->enable_caching()) return lookup_prefix(request);
  return kv_->shared_prefix(source->seq_id, num_shareable);
}

void Scheduler::preempt(Request* request) {
  PAGEDLLM_CHECK(request->status == RequestStatus::kRunning,
                 "preempt of '" << request->request_id << "', which is not running");
  kv_->free(request->seq_id);
  request->num_computed_tokens = 0;
  request->status = RequestStatus::kWaiting;
  request->beam_ready = false;
  request->beam_candidates.clear();
  ++request->num_preemptions;
  ++num_preemptions_;
  auto pos = std::find_if(waiting_.begin(), waiting_.end(),
                          [&](const Request* w) { return w->arrival_idx > request->arrival_idx; });
  waiting_.insert(pos, request);
}

void Scheduler::finish(Request* request, FinishReason reason) {
  if (request->status == RequestStatus::kRunning) {
    auto it = std::find(running_.begin(), running_.end(), request);
    PAGEDLLM_CHECK(it != running_.end(), "running '" << request->request_id << "' not in running_");
    running_.erase(it);
  } else {
    PAGEDLLM_CHECK(request->status == RequestStatus::kWaiting, "finish of a finished request");
    auto it = std::find(waiting_.begin(), waiting_.end(), request);
    PAGEDLLM_CHECK(it != waiting_.end(), "waiting '" << request->request_id << "' not in waiting_");
    waiting_.erase(it);
  }
  if (request->beam_group_id != 0) {
    auto group = beam_groups_.find(request->beam_group_id);
    PAGEDLLM_CHECK(group != beam_groups_.end(), "beam '" << request->request_id << "' has no group");
    std::vector<Request*>& beams = group->second;
    beams.erase(std::find(beams.begin(), beams.end(), request));
    if (beams.empty()) beam_groups_.erase(group);
  }
  kv_->free(request->seq_id);
  request->status = RequestStatus::kFinished;
  request->finish_reason = reason;
  finished_ids_.push_back(request->request_id);
}

void Scheduler::purge_finished() {
  for (const std::string& id : finished_ids_) requests_.erase(id);
  finished_ids_.clear();
  replaced_beams_.clear();
}

void Scheduler::check_invariants() const {
  std::unordered_set<const Request*> seen;
  for (const Request* r : running_) {
    PAGEDLLM_CHECK(seen.insert(r).second, "request '" << r->request_id << "' listed twice");
    PAGEDLLM_CHECK(r->status == RequestStatus::kRunning, "'" << r->request_id << "' in running_ but not kRunning");
    PAGEDLLM_CHECK(r->num_computed_tokens >= 0 && r->num_computed_tokens <= r->num_tokens(),
                   "'" << r->request_id << "' has computed tokens out of range");
    PAGEDLLM_CHECK(kv_->has_sequence(r->seq_id), "running '" << r->request_id << "' has no KV table");
    int64_t num_slots = static_cast<int64_t>(kv_->block_table(r->seq_id).size()) * kv_->block_size();
    PAGEDLLM_CHECK(num_slots >= r->num_computed_tokens,
                   "running '" << r->request_id << "' has KV for " << num_slots << " tokens but "
                               << r->num_computed_tokens << " computed");
    PAGEDLLM_CHECK(kv_->num_cached_blocks(r->seq_id) * kv_->block_size() <= r->num_computed_tokens,
                   "running '" << r->request_id << "' has cached blocks past its computed tokens");
    kv_->check_cached_tokens(r->seq_id, r->token_ids);
  }
  PAGEDLLM_CHECK(num_seats_held() <= config_.max_num_seqs, "running requests hold more than max_num_seqs seats");
  const Request* prev = nullptr;
  for (const Request* r : waiting_) {
    PAGEDLLM_CHECK(seen.insert(r).second, "request '" << r->request_id << "' listed twice");
    PAGEDLLM_CHECK(r->status == RequestStatus::kWaiting, "'" << r->request_id << "' in waiting_ but not kWaiting");
    PAGEDLLM_CHECK(r->num_computed_tokens == 0, "waiting '" << r->request_id << "' has computed tokens");
    PAGEDLLM_CHECK(!kv_->has_sequence(r->seq_id), "waiting '" << r->request_id << "' owns KV blocks");
    PAGEDLLM_CHECK(prev == nullptr || prev->arrival_idx < r->arrival_idx ||
                       (r->beam_group_id != 0 && prev->beam_group_id == r->beam_group_id),
                   "waiting queue is not FCFS");
    prev = r;
  }
  for (const std::string& id : finished_ids_) {
    auto it = requests_.find(id);
    PAGEDLLM_CHECK(it != requests_.end(), "finished '" << id << "' has no record");
    const Request* r = it->second.get();
    PAGEDLLM_CHECK(seen.insert(r).second, "request '" << id << "' listed twice");
    PAGEDLLM_CHECK(r->is_finished(), "'" << id << "' listed finished but not kFinished");
    PAGEDLLM_CHECK(!kv_->has_sequence(r->seq_id), "finished '" << id << "' owns KV blocks");
  }
  PAGEDLLM_CHECK(seen.size() == requests_.size(),
                 "" << requests_.size() << " records but " << seen.size() << " in the queues");
  for (const auto& kv : requests_) {
    PAGEDLLM_CHECK(seen.count(kv.second.get()) != 0, "record '" << kv.first << "' is in no queue");
    PAGEDLLM_CHECK(kv.first == kv.second->request_id, "record key '" << kv.first << "' is not its id");
  }
  check_beam_invariants();
  if (!has_unfinished_requests()) {
    PAGEDLLM_CHECK(kv_->num_used_blocks() == 0,
                   "no unfinished requests but " << kv_->num_used_blocks() << " blocks in use");
  }
  kv_->check_invariants();
}

}  // namespace pagedllm
