// BeamSearchParams: the controls of one beam search request (Engine::add_beam_search_request),
// with vLLM's field names and Hugging Face transformers' semantics
// (generate(num_beams=beam_width, do_sample=False, ...)).
#pragma once

#include <cstdint>

#include "pagedllm/status.h"

namespace pagedllm {

// When a beam search stops before max_tokens (transformers' `early_stopping`).
enum class EarlyStopping {
  kHeuristic = 0,  // False: stop when the best running beam, scored at its current length, cannot beat the worst finished one
  kTrue,           // True: stop as soon as beam_width sequences have finished
  kNever,          // "never": like kHeuristic, but a positive length_penalty scores running beams at max_tokens
};

struct BeamSearchParams {
  // Beams kept at every step, and sequences returned (transformers' num_beams). Default 1.
  int64_t beam_width = 1;
  // Most tokens to generate per sequence (capped at max_model_len - prompt length). Default 16.
  int64_t max_tokens = 16;
  // Keep generating after the model's EOS token. Default false.
  bool ignore_eos = false;
  // Logits are divided by it before the log-softmax when > 0; 0 (default) or 1 = raw logits.
  float temperature = 0.0f;
  // A finished sequence scores cum_logprob / (generated tokens)^length_penalty. Default 1.0.
  float length_penalty = 1.0f;
  // Default kHeuristic (transformers' early_stopping=False).
  EarlyStopping early_stopping = EarlyStopping::kHeuristic;

  // Ok, or kInvalidArgument naming the first bad field.
  Status validate() const;
};

}  // namespace pagedllm
