// BeamSearchState (semantics at the top of beam_search.h) and BeamSearchParams validation.
#include "engine/beam_search.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "util/check.h"

namespace pagedllm {

Status BeamSearchParams::validate() const {
  auto invalid = [](const std::string& what) { return Status(StatusCode::kInvalidArgument, what); };
  if (beam_width < 1) return invalid("beam_width must be at least 1, got " + std::to_string(beam_width));
  if (max_tokens < 1) return invalid("max_tokens must be at least 1, got " + std::to_string(max_tokens));
  if (!(std::isfinite(temperature) && temperature >= 0.0f)) {
    return invalid("temperature must be non-negative and finite, got " + std::to_string(temperature));
  }
  if (!std::isfinite(length_penalty)) return invalid("length_penalty must be finite");
  if (early_stopping != EarlyStopping::kHeuristic && early_stopping != EarlyStopping::kTrue &&
      early_stopping != EarlyStopping::kNever) {
    return invalid("early_stopping must be kHeuristic, kTrue or kNever");
  }
  return Status();
}

BeamSearchState::BeamSearchState(const BeamSearchParams& params, std::vector<int32_t> eos_token_ids,
                                 int64_t max_new_tokens)
    : params_(params), eos_token_ids_(std::move(eos_token_ids)), max_new_tokens_(max_new_tokens) {
  PAGEDLLM_CHECK(max_new_tokens_ >= 1, "beam search needs max_new_tokens >= 1");
  if (params_.ignore_eos) eos_token_ids_.clear();
  num_candidates_ = std::max<int64_t>(2, 1 + static_cast<int64_t>(eos_token_ids_.size())) * params_.beam_width;
}

bool BeamSearchState::is_eos(int32_t token_id) const {
  return std::find(eos_token_ids_.begin(), eos_token_ids_.end(), token_id) != eos_token_ids_.end();
}

std::vector<BeamChoice> BeamSearchState::step(const std::vector<BeamView>& beams) {
  PAGEDLLM_CHECK(!beams.empty(), "beam step without beams");
  const int64_t W = params_.beam_width;
  auto num_generated_of = [](const BeamView& b) {
    return static_cast<int64_t>(b.token_ids->size()) - b.num_prompt_tokens + 1;
  };
  const int64_t num_generated = num_generated_of(beams.front());
  std::vector<Candidate>& all = candidates_;
  all.clear();
  for (size_t b = 0; b < beams.size(); ++b) {
    PAGEDLLM_CHECK(num_generated_of(beams[b]) == num_generated, "beams of one step differ in length");
    const auto& cands = *beams[b].candidates;
    for (size_t i = 0; i < cands.size(); ++i) {
      all.push_back({beams[b].cum_logprob + cands[i].second, static_cast<int32_t>(b), static_cast<int32_t>(i)});
    }
  }
  auto token_of = [&](const Candidate& c) { return (*beams[c.beam].candidates)[c.rank].first; };
  auto better = [&](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.beam != b.beam) return a.beam < b.beam;
    return token_of(a) < token_of(b);
  };
  const size_t K = std::min<size_t>(all.size(), static_cast<size_t>(num_candidates_));
  std::partial_sort(all.begin(), all.begin() + K, all.end(), better);

  const double length_norm = std::pow(static_cast<double>(num_generated), params_.length_penalty);
  std::vector<BeamChoice> next;
  double best_running = 0.0;
  bool all_hit = true;
  for (size_t k = 0; k < K; ++k) {
    const Candidate& c = all[k];
    const BeamView& parent = beams[c.beam];
    const std::pair<int32_t, float>& cand = (*parent.candidates)[c.rank];
    const bool eos = is_eos(cand.first);
    const bool hit = eos || num_generated >= max_new_tokens_;
    if (!hit) {
      all_hit = false;
      if (static_cast<int64_t>(next.size()) < W) {
        if (next.empty()) best_running = c.score;
        next.push_back({c.beam, cand.first, cand.second});
      }
      continue;
    }
    if (static_cast<int64_t>(k) >= W) continue;
    BeamSequence seq;
    seq.token_ids.reserve(static_cast<size_t>(num_generated));
    seq.token_ids.assign(parent.token_ids->begin() + parent.num_prompt_tokens, parent.token_ids->end());
    seq.token_ids.push_back(cand.first);
    seq.logprobs = *parent.logprobs;
    seq.logprobs.push_back(cand.second);
    seq.cum_logprob = c.score;
    seq.score = c.score / length_norm;
    seq.finish_reason = eos ? FinishReason::kStop : FinishReason::kLength;
    auto pos = std::find_if(finished_.begin(), finished_.end(),
                            [&](const BeamSequence& f) { return f.score < seq.score; });
    finished_.insert(pos, std::move(seq));
    if (static_cast<int64_t>(finished_.size()) > W) finished_.pop_back();
  }
  const bool full = static_cast<int64_t>(finished_.size()) == W;
  if (all_hit || (full && params_.early_stopping == EarlyStopping::kTrue)) return {};
  if (full) {
    const bool never = params_.early_stopping == EarlyStopping::kNever && params_.length_penalty > 0.0f;
    const double best_len = static_cast<double>(never ? max_new_tokens_ : num_generated);
    const double best_possible = best_running / std::pow(best_len, params_.length_penalty);
    if (!(best_possible > finished_.back().score)) return {};
  }
  return next;
}

void top_logprobs(const float* logits, int64_t vocab_size, int64_t k, float temperature,
                  std::vector<std::pair<int32_t, float>>* out) {
  out->clear();
  k = std::min(k, vocab_size);
  if (k <= 0) return;
  // A heap of the k best (id, logit) so far, worst on top. Ids arrive in increasing order, so
  // a later id enters only with a strictly higher logit than the worst kept.
  auto better = [](const std::pair<int32_t, float>& a, const std::pair<int32_t, float>& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  };
  for (int64_t i = 0; i < k; ++i) out->push_back({static_cast<int32_t>(i), logits[i]});
  std::make_heap(out->begin(), out->end(), better);
  float worst = out->front().second;
  for (int64_t i = k; i < vocab_size; ++i) {
    if (!(logits[i] > worst)) continue;
    std::pop_heap(out->begin(), out->end(), better);
    out->back() = {static_cast<int32_t>(i), logits[i]};
    std::push_heap(out->begin(), out->end(), better);
    worst = out->front().second;
  }
  std::sort_heap(out->begin(), out->end(), better);
  const double inv_t = temperature > 0.0f ? 1.0 / temperature : 1.0;
  const double max_logit = out->front().second * inv_t;  // the row's maximum: scaling keeps order
  double sum = 0.0;
  for (int64_t i = 0; i < vocab_size; ++i) sum += std::exp(logits[i] * inv_t - max_logit);
  const double lse = max_logit + std::log(sum);
  for (auto& [id, value] : *out) value = static_cast<float>(value * inv_t - lse);
}

}  // namespace pagedllm
