// Request validation: the user-input checks of Engine::add_request, done before any state
// changes so a rejected request leaves the engine as it was.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pagedllm/engine.h"
#include "pagedllm/sampling_params.h"
#include "pagedllm/status.h"
#include "sched/scheduler.h"

namespace pagedllm {

// Ok, or kInvalidArgument naming the problem: invalid params, an empty prompt, a prompt longer
// than max_model_len, a token or stop token id outside the vocabulary, or a request whose
// prompt + max_tokens (capped at max_model_len) needs more KV blocks than the cache has.
Status validate_request(const ModelInfo& info, const std::vector<int32_t>& prompt, const SamplingParams& params);

// The checks of requests ids[i] (params[i]) sharing one prompt, in the order add_request reports
// them: for each request its params, then its id (kInvalidArgument if empty, kAlreadyExists if
// in flight in `scheduler` or repeated in ids), then the prompt against its params. Also
// kInvalidArgument when ids is empty or its size differs from params'.
Status validate_requests(const ModelInfo& info, const Scheduler& scheduler, const std::vector<std::string>& ids,
                         const std::vector<int32_t>& prompt, const std::vector<SamplingParams>& params);

}  // namespace pagedllm
