// BeamSearchState: Hugging Face transformers' beam search (generate(num_beams=W,
// do_sample=False), transformers 4.50+/5.x `_beam_search`) for one request, as pure host logic.
//
// One step takes the live beams (1 at the start, then W), each with its cumulative logprob s_b
// and its best K next tokens (K = max(2, 1 + num_eos) * W, logprob l_t). Candidates are the
// K best (b, t) by s_b + l_t. A candidate "hits" when t is EOS (unless ignore_eos) or it
// reaches max_new_tokens generated tokens. Hits among the first W candidates become finished
// hypotheses scored (s_b + l_t) / (generated tokens)^length_penalty, and the W best
// hypotheses are kept. The next beams are the W best candidates that do not hit. The search
// ends when every candidate hits, when early_stopping is kTrue and W hypotheses exist, or
// when the best next beam cannot beat the worst of W hypotheses: its score divided by
// (generated tokens)^length_penalty, or (max_new_tokens)^length_penalty for kNever with a
// positive length_penalty. Ties between equal scores go to the lower (beam, token) index.
// Invariant: finished_ holds at most W hypotheses, best score first.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "pagedllm/beam_search_params.h"
#include "pagedllm/request_output.h"

namespace pagedllm {

// A live beam as a step sees it (pointers into the beam's own state: nothing is copied).
struct BeamView {
  double cum_logprob = 0.0;
  const std::vector<int32_t>* token_ids = nullptr;  // prompt, then the tokens generated so far
  int64_t num_prompt_tokens = 0;                    // generated tokens start at this index
  const std::vector<float>* logprobs = nullptr;     // one per generated token
  const std::vector<std::pair<int32_t, float>>* candidates = nullptr;  // best next (token, logprob), best first
};

// The next beam: continue live beam `parent` (index into the step's beams) with token_id.
struct BeamChoice {
  int32_t parent = 0;
  int32_t token_id = 0;
  float logprob = 0.0f;
};

class BeamSearchState {
 public:
  // max_new_tokens: generated tokens at which a sequence ends (>= 1).
  BeamSearchState(const BeamSearchParams& params, std::vector<int32_t> eos_token_ids, int64_t max_new_tokens);

  // K: candidates each beam must offer per step.
  int64_t num_candidates() const { return num_candidates_; }
  // Runs one step. Returns the next beams (W of them), or an empty vector when the search is
  // over (then finished() is final). Precondition: beams are non-empty, all of the same length,
  // each with min(K, vocab) candidates.
  std::vector<BeamChoice> step(const std::vector<BeamView>& beams);
  // The hypotheses, best first (W of them once the search is over).
  const std::vector<BeamSequence>& finished() const { return finished_; }

 private:
  struct Candidate {
    double score;  // s_b + l_t
    int32_t beam;
    int32_t rank;  // position in the beam's candidate list
  };
  bool is_eos(int32_t token_id) const;

  BeamSearchParams params_;
  std::vector<int32_t> eos_token_ids_;
  int64_t max_new_tokens_;
  int64_t num_candidates_;
  std::vector<BeamSequence> finished_;
  std::vector<Candidate> candidates_;  // [beams * K] scratch of step(), kept for its capacity
};

// Replaces *out by the k best (token id, logprob) of one logits row [vocab_size] under
// log_softmax(logits / temperature) (temperature <= 0 means 1): min(k, vocab_size) of them,
// best first, equal logits to the lower token id. O(vocab_size log k); reuses out's capacity.
void top_logprobs(const float* logits, int64_t vocab_size, int64_t k, float temperature,
                  std::vector<std::pair<int32_t, float>>* out);

}  // namespace pagedllm
