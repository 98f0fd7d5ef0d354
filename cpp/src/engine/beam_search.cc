// BeamSearchState (semantics at the top of beam_search.h) and BeamSearchParams validation.
#include "engine/beam_search.h"

#include <algorithm>
#include <cmath>
#include <numeric>
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
  const int64_t num_generated = static_cast<int64_t>(beams.front().output_token_ids->size()) + 1;
  struct Candidate {
    double score;
    int32_t beam;
    int32_t rank;  // position in the beam's candidate list (token order for ties)
  };
  std::vector<Candidate> all;
  for (size_t b = 0; b < beams.size(); ++b) {
    PAGEDLLM_CHECK(static_cast<int64_t>(beams[b].output_token_ids->size()) + 1 == num_generated,
                   "beams of one step differ in length");
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
  all.resize(K);

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
    seq.token_ids = *parent.output_token_ids;
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

std::vector<std::pair<int32_t, float>> top_logprobs(const float* logits, int64_t vocab_size, int64_t k,
                                                    float temperature) {
  const double inv_t = temperature > 0.0f ? 1.0 / temperature : 1.0;
  double max_logit = -INFINITY;
  for (int64_t i = 0; i < vocab_size; ++i) max_logit = std::max(max_logit, logits[i] * inv_t);
  double sum = 0.0;
  for (int64_t i = 0; i < vocab_size; ++i) sum += std::exp(logits[i] * inv_t - max_logit);
  const double lse = max_logit + std::log(sum);
  k = std::min(k, vocab_size);
  std::vector<int32_t> ids(static_cast<size_t>(vocab_size));
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  std::vector<std::pair<int32_t, float>> out;
  for (int64_t i = 0; i < k; ++i) out.push_back({ids[i], static_cast<float>(logits[ids[i]] * inv_t - lse)});
  return out;
}

}  // namespace pagedllm
