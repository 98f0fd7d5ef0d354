// Validation of the device options of EngineConfig (device string, gpu_memory_utilization,
// attention_backend, cuda_graph_sizes), before anything is loaded: user input fails with
// StatusCode::kInvalidArgument and a message naming the option and the accepted values.
#pragma once

#include "pagedllm/config.h"
#include "pagedllm/status.h"

namespace pagedllm {

// Ok when the device options are well-formed. Whether the device exists and this build has its
// backend is decided later by create_backend.
Status validate_device_options(const EngineConfig& config);

}  // namespace pagedllm
