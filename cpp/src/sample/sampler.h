// Sampler: turns one row of logits into the next token, on the host.
//
// Pipeline for a row (the order vLLM uses): min_tokens masking (EOS and stop_token_ids get
// -inf while fewer than min_tokens outputs exist, unless ignore_eos for EOS), repetition
// penalty (prompt + output tokens), frequency and presence penalties (output tokens), then
// greedy argmax when temperature == 0 (ties -> lowest id), else temperature, top-k, top-p,
// min-p, and a draw. The draw's uniform number depends only on (seed, num_output_tokens), so
// a seeded request gives the same tokens whatever else is in the batch and after preemption.
// Logprobs are computed from the raw logits (before penalties and temperature), as vLLM does.
#pragma once

#include <cstdint>
#include <vector>

#include "pagedllm/request_output.h"
#include "pagedllm/sampling_params.h"

namespace pagedllm {

struct SamplingContext {
  const SamplingParams* params = nullptr;
  const int32_t* prompt_token_ids = nullptr;  // [num_prompt_tokens]
  int64_t num_prompt_tokens = 0;
  const int32_t* output_token_ids = nullptr;  // [num_output_tokens]
  int64_t num_output_tokens = 0;
  uint64_t seed = 0;
  const std::vector<int32_t>* eos_token_ids = nullptr;
};

struct SampleResult {
  int32_t token_id = 0;
  TokenLogprobs logprobs;  // filled when params->logprobs >= 0
};

class Sampler {
 public:
  explicit Sampler(int64_t vocab_size);

  // logits: [vocab_size] float32, read only. Allocation-free after the first calls.
  SampleResult sample(const float* logits, const SamplingContext& ctx);

  // Logprob of token_id and the top_n best (top_n may be 0) from raw logits [vocab_size].
  TokenLogprobs compute_logprobs(const float* logits, int32_t token_id, int32_t top_n);

  // The uniform number in [0, 1) used for the draw of output index `index` of seed `seed`.
  static double uniform(uint64_t seed, uint64_t index);

 private:
  int64_t vocab_size_;
  std::vector<float> work_;           // [vocab_size] processed logits
  std::vector<int32_t> order_;        // [vocab_size] candidate ids
  std::vector<int32_t> counts_;       // [vocab_size] output token counts
  std::vector<uint8_t> seen_;         // [vocab_size] prompt/output presence
};

}  // namespace pagedllm
