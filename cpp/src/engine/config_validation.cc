// Device options of EngineConfig: the checks every backend shares (see config_validation.h).
#include "engine/config_validation.h"

#include <string>

namespace pagedllm {

Status validate_device_options(const EngineConfig& config) {
  auto invalid = [](const std::string& message) { return Status(StatusCode::kInvalidArgument, message); };
  if (config.device.empty()) return invalid("device must not be empty: use 'cpu', 'cuda' or 'cuda:N'");
  if (!(config.gpu_memory_utilization > 0.0 && config.gpu_memory_utilization <= 1.0)) {
    return invalid("gpu_memory_utilization must be in (0, 1], got " + std::to_string(config.gpu_memory_utilization));
  }
  const std::string& a = config.attention_backend;
  if (a != "auto" && a != "flashinfer" && a != "native") {
    return invalid("unknown attention_backend '" + a + "': use 'auto', 'flashinfer' or 'native'");
  }
  for (int64_t size : config.cuda_graph_sizes) {
    if (size < 1 || size > config.max_num_seqs) {
      return invalid("cuda_graph_sizes entries must be in [1, max_num_seqs = " + std::to_string(config.max_num_seqs) +
                     "], got " + std::to_string(size));
    }
  }
  return Status();
}

}  // namespace pagedllm
