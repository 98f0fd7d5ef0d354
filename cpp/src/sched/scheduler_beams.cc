// Scheduler: beam search groups (spec at the top of scheduler.h), preemption of the newest
// running request, and the seats of max_num_seqs.
// Invariants: the beams of a group are all running or all waiting; running beams of a group
// are contiguous in running_ and waiting ones in waiting_ (they share an arrival_idx); only
// running beams are beam_ready; beam_groups_[g] lists exactly the unfinished beams of g.
#include <algorithm>
#include <unordered_set>

#include "sched/scheduler.h"
#include "util/check.h"

namespace pagedllm {

int64_t Scheduler::num_seats_held() const {
  int64_t num_seats = 0;
  uint64_t prev_group = 0;
  for (const Request* r : running_) {
    if (r->beam_group_id == 0) {
      ++num_seats;
    } else if (r->beam_group_id != prev_group) {
      num_seats += r->beam_width;
    }
    prev_group = r->beam_group_id;
  }
  return num_seats;
}

std::vector<Request*> Scheduler::preempt_newest(SchedulerOutput* out, int64_t* token_budget) {
  Request* newest = running_.back();
  std::vector<Request*> victims = {newest};
  if (newest->beam_group_id != 0) victims = beam_groups_.at(newest->beam_group_id);
  for (Request* victim : victims) {
    auto it = std::find(running_.begin(), running_.end(), victim);
    PAGEDLLM_CHECK(it != running_.end(), "preempted beam '" << victim->request_id << "' is not running");
    running_.erase(it);
    auto entry = std::find_if(out->scheduled.begin(), out->scheduled.end(),
                              [&](const ScheduledRequest& s) { return s.request == victim; });
    if (entry != out->scheduled.end()) {
      *token_budget += entry->num_tokens;
      out->scheduled.erase(entry);
    }
    preempt(victim);
    out->preempted.push_back(victim->request_id);
  }
  return victims;
}

bool Scheduler::admit_beam_group(SchedulerOutput* out, int64_t* token_budget, int64_t* num_seats) {
  const std::vector<Request*> beams = beam_groups_.at(waiting_.front()->beam_group_id);
  const int64_t n = static_cast<int64_t>(beams.size());
  if (*num_seats + beams.front()->beam_width > config_.max_num_seqs) return false;
  // A lone beam (a new search) starts from its cached prefix; a re-admitted group recomputes.
  std::vector<ComputedBlocks> computed(beams.size());
  if (n == 1) computed[0] = lookup_prefix(*beams[0]);
  // Beams past the token budget join with nothing scheduled; the running loop serves them.
  std::vector<int64_t> num_new(beams.size());
  int64_t budget = *token_budget, num_blocks = 0;
  for (int64_t j = 0; j < n; ++j) {
    const Request& r = *beams[j];
    PAGEDLLM_CHECK(r.status == RequestStatus::kWaiting, "beam '" << r.request_id << "' of a waiting group runs");
    const int64_t num_wanted = r.num_tokens() - computed[j].num_tokens;
    num_new[j] = std::min(num_wanted, budget);
    if (!config_.enable_chunked_prefill && num_new[j] < num_wanted) num_new[j] = 0;
    budget -= num_new[j];
    num_blocks += kv_->num_blocks_needed(r.seq_id, computed[j].num_tokens + num_new[j], computed[j]);
  }
  if (num_new[0] == 0 || num_blocks > kv_->num_free_blocks()) return false;
  for (int64_t j = 0; j < n; ++j) {
    Request* r = beams[j];
    const int64_t num_total = computed[j].num_tokens + num_new[j];
    PAGEDLLM_CHECK(kv_->allocate_slots(r->seq_id, num_total, computed[j]), "beam allocation failed after the dry run");
    r->num_computed_tokens = computed[j].num_tokens;
    if (r->num_cached_tokens < 0) r->num_cached_tokens = computed[j].num_tokens;
    if (kv_->enable_caching() && n == 1) {
      num_prefix_cache_queries_ += r->num_tokens();
      num_prefix_cache_hits_ += computed[j].num_tokens;
    }
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), r));
    r->status = RequestStatus::kRunning;
    running_.push_back(r);
    if (num_new[j] > 0) out->scheduled.push_back({r, r->num_computed_tokens, num_new[j], num_total == r->num_tokens()});
  }
  *token_budget = budget;
  *num_seats += beams.front()->beam_width;
  return true;
}

std::vector<std::pair<int32_t, int32_t>> Scheduler::fork_beams(uint64_t beam_group_id,
                                                               const std::vector<BeamChild>& children,
                                                               uint64_t* next_seq_id) {
  auto group = beam_groups_.find(beam_group_id);
  PAGEDLLM_CHECK(group != beam_groups_.end(), "fork_beams of unknown beam group " << beam_group_id);
  const std::vector<Request*> parents = group->second;
  PAGEDLLM_CHECK(!children.empty() && static_cast<int64_t>(children.size()) <= parents.front()->beam_width,
                 "beam group " << beam_group_id << " forks into " << children.size() << " beams");
  std::unordered_set<const Request*> has_child;
  for (const BeamChild& c : children) {
    PAGEDLLM_CHECK(std::find(parents.begin(), parents.end(), c.parent) != parents.end(),
                   "beam child of a request outside group " << beam_group_id);
    has_child.insert(c.parent);
  }
  for (const Request* p : parents) {
    PAGEDLLM_CHECK(p->status == RequestStatus::kRunning && p->beam_ready,
                   "beam '" << p->request_id << "' forks before its logits are in");
    if (!has_child.count(p)) kv_->free(p->seq_id);
  }
  std::vector<std::pair<int32_t, int32_t>> copies;
  std::vector<Request*> beams;
  std::unordered_set<const Request*> taken_over;
  for (const BeamChild& c : children) {
    const Request& parent = *c.parent;
    auto child = std::make_unique<Request>();
    const std::string base = parent.request_id.substr(0, parent.request_id.rfind('\x1f'));
    child->request_id = base + '\x1f' + std::to_string(++next_beam_serial_);
    child->arrival_idx = parent.arrival_idx;
    child->beam_group_id = beam_group_id;
    child->beam_width = parent.beam_width;
    child->token_ids = parent.token_ids;
    child->num_prompt_tokens = parent.num_prompt_tokens;
    child->params = parent.params;
    child->seed = parent.seed;
    child->status = RequestStatus::kRunning;
    child->num_cached_tokens = parent.num_cached_tokens;
    child->num_preemptions = parent.num_preemptions;
    child->beam_cum_logprob = parent.beam_cum_logprob + c.logprob;
    child->beam_logprobs = parent.beam_logprobs;
    child->beam_logprobs.push_back(c.logprob);
    if (taken_over.insert(c.parent).second) {
      child->seq_id = parent.seq_id;
      child->num_computed_tokens = parent.num_computed_tokens;
    } else {
      child->seq_id = (*next_seq_id)++;
      std::pair<int32_t, int32_t> copy;
      child->num_computed_tokens = kv_->fork(parent.seq_id, child->seq_id, parent.num_tokens(), &copy);
      if (copy.first >= 0) copies.push_back(copy);
    }
    child->token_ids.push_back(c.token_id);
    beams.push_back(child.get());
    requests_.emplace(child->request_id, std::move(child));
  }
  auto first = std::find(running_.begin(), running_.end(), parents.front());
  PAGEDLLM_CHECK(first != running_.end() && running_.end() - first >= static_cast<std::ptrdiff_t>(parents.size()),
                 "beam group " << beam_group_id << " is not contiguous in the running order");
  first = running_.erase(first, first + static_cast<std::ptrdiff_t>(parents.size()));
  running_.insert(first, beams.begin(), beams.end());
  for (Request* p : parents) {
    auto it = requests_.find(p->request_id);
    replaced_beams_.push_back(std::move(it->second));
    requests_.erase(it);
  }
  group->second = beams;
  return copies;
}

void Scheduler::finish_beam_group(uint64_t beam_group_id, FinishReason reason) {
  auto group = beam_groups_.find(beam_group_id);
  if (group == beam_groups_.end()) return;
  const std::vector<Request*> beams = group->second;
  for (Request* r : beams) finish(r, reason);
}

const std::vector<Request*>& Scheduler::beam_group(uint64_t beam_group_id) const {
  static const std::vector<Request*> kNone;
  auto group = beam_groups_.find(beam_group_id);
  return group == beam_groups_.end() ? kNone : group->second;
}

void Scheduler::check_beam_invariants() const {
  for (const auto& g : beam_groups_) {
    const std::vector<Request*>& beams = g.second;
    PAGEDLLM_CHECK(!beams.empty() && static_cast<int64_t>(beams.size()) <= beams.front()->beam_width,
                   "beam group " << g.first << " holds " << beams.size() << " beams");
    const RequestStatus status = beams.front()->status;
    PAGEDLLM_CHECK(status != RequestStatus::kFinished, "beam group " << g.first << " lists a finished beam");
    for (const Request* r : beams) {
      PAGEDLLM_CHECK(r->beam_group_id == g.first && r->status == status,
                     "beam group " << g.first << " is not all running or all waiting");
      PAGEDLLM_CHECK(!r->beam_ready || status == RequestStatus::kRunning, "waiting beam '" << r->request_id << "' is ready");
      PAGEDLLM_CHECK(requests_.count(r->request_id) != 0, "beam '" << r->request_id << "' has no record");
    }
    if (status != RequestStatus::kRunning) continue;
    auto first = std::find(running_.begin(), running_.end(), beams.front());
    PAGEDLLM_CHECK(running_.end() - first >= static_cast<std::ptrdiff_t>(beams.size()) &&
                       std::equal(beams.begin(), beams.end(), first),
                   "beam group " << g.first << " is not contiguous in the running order");
  }
  for (const auto& kv : requests_) {
    const Request* r = kv.second.get();
    PAGEDLLM_CHECK(r->beam_group_id == 0 || r->is_finished() || beam_groups_.count(r->beam_group_id) != 0,
                   "beam '" << r->request_id << "' is in no group");
  }
}

}  // namespace pagedllm
