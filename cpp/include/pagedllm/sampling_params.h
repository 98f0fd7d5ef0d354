// SamplingParams: per-request decoding controls, with vLLM's field names and defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "pagedllm/status.h"

namespace pagedllm {

struct SamplingParams {
  // Softmax temperature; 0 means greedy. Default 1.0.
  float temperature = 1.0f;
  // Nucleus sampling: keep the smallest set of tokens whose probability sums to top_p. 1 = off.
  float top_p = 1.0f;
  // Keep only the top_k most likely tokens; 0 or -1 = off.
  int32_t top_k = 0;
  // Drop tokens whose probability is below min_p times the top token's. 0 = off.
  float min_p = 0.0f;
  // Subtracted from the logit of every token already generated (OpenAI semantics). Default 0.
  float presence_penalty = 0.0f;
  // Subtracted once per earlier occurrence in the output (OpenAI semantics). Default 0.
  float frequency_penalty = 0.0f;
  // Divides positive / multiplies negative logits of tokens seen in prompt or output. 1 = off.
  float repetition_penalty = 1.0f;
  // Per-request seed: the same seed gives the same tokens whatever else is batched with it.
  std::optional<uint64_t> seed;
  // Most tokens to generate. Default 16.
  int64_t max_tokens = 16;
  // Tokens to generate before EOS or stop_token_ids may end the request. Default 0.
  int64_t min_tokens = 0;
  // Extra token ids that end the request (the token is kept in the output).
  std::vector<int32_t> stop_token_ids;
  // Keep generating after the model's EOS token. Default false.
  bool ignore_eos = false;
  // Number of top logprobs to return per generated token (the sampled token's is always
  // included); -1 = none.
  int32_t logprobs = -1;
  // Number of top logprobs to return per prompt token; -1 = none.
  int32_t prompt_logprobs = -1;

  // Ok, or kInvalidArgument naming the first bad field.
  Status validate() const;
};

}  // namespace pagedllm
