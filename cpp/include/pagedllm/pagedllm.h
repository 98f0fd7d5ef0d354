// Umbrella header of the public C++ API.
#pragma once

#include "pagedllm/beam_search_params.h"
#include "pagedllm/config.h"
#include "pagedllm/engine.h"
#include "pagedllm/request_output.h"
#include "pagedllm/sampling_params.h"
#include "pagedllm/status.h"
#include "pagedllm/version.h"
