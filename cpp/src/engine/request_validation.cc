// Request validation (contract in request_validation.h). Pure checks, no state.
#include "engine/request_validation.h"

#include <algorithm>
#include <string>

namespace pagedllm {

Status validate_request(const ModelInfo& info, const std::vector<int32_t>& prompt, const SamplingParams& params) {
  Status valid = params.validate();
  if (!valid.ok()) return valid;
  if (prompt.empty()) return Status(StatusCode::kInvalidArgument, "the prompt must contain at least one token");
  const int64_t P = static_cast<int64_t>(prompt.size());
  if (P > info.max_model_len) {
    return Status(StatusCode::kInvalidArgument, "the prompt of " + std::to_string(P) +
                                                    " tokens is longer than max_model_len (" +
                                                    std::to_string(info.max_model_len) + " tokens)");
  }
  for (int32_t t : prompt) {
    if (t < 0 || t >= info.vocab_size) {
      return Status(StatusCode::kInvalidArgument, "token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                                                      std::to_string(info.vocab_size) + ")");
    }
  }
  for (int32_t t : params.stop_token_ids) {
    if (t >= info.vocab_size) return Status(StatusCode::kInvalidArgument, "stop_token_ids: " + std::to_string(t) + " is outside the vocabulary");
  }
  const int64_t max_len = std::min(P + params.max_tokens, info.max_model_len);
  const int64_t blocks = (max_len + info.block_size - 1) / info.block_size;
  if (blocks > info.num_kv_blocks) {
    return Status(StatusCode::kInvalidArgument,
                  "a request of up to " + std::to_string(max_len) + " tokens needs " + std::to_string(blocks) +
                      " KV blocks but the cache has " + std::to_string(info.num_kv_blocks));
  }
  return Status();
}

Status validate_requests(const ModelInfo& info, const Scheduler& scheduler, const std::vector<std::string>& ids,
                         const std::vector<int32_t>& prompt, const std::vector<SamplingParams>& params) {
  if (ids.empty() || ids.size() != params.size()) {
    return Status(StatusCode::kInvalidArgument, "need one SamplingParams per request id and at least one id");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    Status valid = params[i].validate();
    if (!valid.ok()) return valid;
    if (ids[i].empty()) return Status(StatusCode::kInvalidArgument, "request_id must not be empty");
    if (scheduler.contains(ids[i]) || std::find(ids.begin(), ids.begin() + i, ids[i]) != ids.begin() + i) {
      return Status(StatusCode::kAlreadyExists, "request_id '" + ids[i] + "' is already in flight");
    }
    valid = validate_request(info, prompt, params[i]);
    if (!valid.ok()) return valid;
  }
  return Status();
}

}  // namespace pagedllm
