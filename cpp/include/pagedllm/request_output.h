// RequestOutput: what one engine step produced for one request (a delta, not the whole text).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pagedllm {

enum class FinishReason {
  kNone = 0,  // still running
  kStop,      // EOS or a stop token id
  kLength,    // max_tokens or max_model_len reached
  kAbort,     // aborted by the caller
};

// Logprobs of one position: the chosen token's, and the top-N alternatives.
struct TokenLogprobs {
  int32_t token_id = 0;     // the sampled (or prompt) token
  float logprob = 0.0f;     // log-probability of token_id, from the raw (unpenalized) logits
  int64_t rank = 0;         // 1 + number of tokens with a strictly larger logprob
  std::vector<std::pair<int32_t, float>> top;  // top-N (token id, logprob), best first
};

// One finished sequence of a beam search.
struct BeamSequence {
  std::vector<int32_t> token_ids;  // generated tokens, including the EOS that ended it
  std::vector<float> logprobs;     // [token_ids.size()] log-probability of each generated token
  double cum_logprob = 0.0;        // sum of logprobs
  // cum_logprob / token_ids.size()^length_penalty (transformers' sequences_scores); the
  // sequences of a request come best score first.
  double score = 0.0;
  FinishReason finish_reason = FinishReason::kNone;  // kStop (EOS) or kLength
};

struct RequestOutput {
  std::string request_id;
  // Tokens generated in this step (empty while a prompt is still being prefilled).
  std::vector<int32_t> new_token_ids;
  // One entry per new token when SamplingParams::logprobs >= 0.
  std::vector<TokenLogprobs> new_logprobs;
  // Prompt logprobs computed in this step, for prompt positions
  // [prompt_logprobs_start, prompt_logprobs_start + size). Position 0 has none and is never
  // included, so the first delivered entry is for prompt position 1.
  std::vector<TokenLogprobs> prompt_logprobs;
  int64_t prompt_logprobs_start = 0;
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  // The token id that stopped the request (EOS or a stop_token_id), or -1.
  int32_t stop_token_id = -1;
  int64_t num_prompt_tokens = 0;
  int64_t num_output_tokens = 0;  // total generated so far, including this step's
  // Prompt tokens served from the prefix cache when the request was first scheduled.
  int64_t num_cached_tokens = 0;
  // A beam search request reports only its final output, with beam_width sequences here (and
  // no new_token_ids); empty for other requests.
  std::vector<BeamSequence> beams;
};

const char* finish_reason_name(FinishReason reason);  // "stop", "length", "abort" or ""

}  // namespace pagedllm
