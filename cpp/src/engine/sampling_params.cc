// SamplingParams validation (vLLM's rules) and FinishReason names.
// Invariant: validate() returns Ok only for parameters the sampler and scheduler accept without
// any further checks; every rejection is kInvalidArgument naming the field and its value.
#include <cmath>
#include <sstream>
#include <string>

#include "pagedllm/request_output.h"
#include "pagedllm/sampling_params.h"

namespace pagedllm {

namespace {

constexpr int32_t kMaxLogprobs = 20;

template <typename T>
Status invalid(const char* field, T value, const char* rule) {
  std::ostringstream os;
  os << field << " must be " << rule << ", got " << value;
  return Status(StatusCode::kInvalidArgument, os.str());
}

}  // namespace

Status SamplingParams::validate() const {
  if (!(std::isfinite(temperature) && temperature >= 0.0f)) {
    return invalid("temperature", temperature, "non-negative and finite");
  }
  if (!(top_p > 0.0f && top_p <= 1.0f)) return invalid("top_p", top_p, "in (0, 1]");
  if (top_k < -1) return invalid("top_k", top_k, "-1 or 0 (disabled) or at least 1");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return invalid("min_p", min_p, "in [0, 1]");
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) {
    return invalid("presence_penalty", presence_penalty, "in [-2, 2]");
  }
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) {
    return invalid("frequency_penalty", frequency_penalty, "in [-2, 2]");
  }
  if (!(std::isfinite(repetition_penalty) && repetition_penalty > 0.0f)) {
    return invalid("repetition_penalty", repetition_penalty, "positive and finite");
  }
  if (max_tokens < 1) return invalid("max_tokens", max_tokens, "at least 1");
  if (min_tokens < 0) return invalid("min_tokens", min_tokens, "non-negative");
  if (min_tokens > max_tokens) {
    std::ostringstream os;
    os << "min_tokens must be at most max_tokens (" << max_tokens << "), got " << min_tokens;
    return Status(StatusCode::kInvalidArgument, os.str());
  }
  if (logprobs < -1 || logprobs > kMaxLogprobs) {
    return invalid("logprobs", logprobs, "in [-1, 20] (-1 = none)");
  }
  if (prompt_logprobs < -1 || prompt_logprobs > kMaxLogprobs) {
    return invalid("prompt_logprobs", prompt_logprobs, "in [-1, 20] (-1 = none)");
  }
  for (int32_t id : stop_token_ids) {
    if (id < 0) return invalid("stop_token_ids", id, "non-negative token ids");
  }
  return Status::ok_status();
}

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kNone:
      break;
  }
  return "";
}

}  // namespace pagedllm
