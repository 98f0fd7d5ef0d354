#include "engine/startup_log.h"

namespace pagedllm {
namespace {

double gib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0); }

}  // namespace

void print_startup(const ModelInfo& info, const std::string& device, const KvCacheSizing& sizing,
                   double gpu_memory_utilization, const std::vector<int64_t>& graph_sizes,
                   int64_t graph_bytes, const StartupPhases& phases) {
  const long long tokens = static_cast<long long>(info.num_kv_blocks * info.block_size);
  std::fprintf(stderr,
               "pagedllm: %s (%s) on %s: KV cache %lld blocks x %lld tokens (%.2f GiB), max concurrent tokens "
               "%lld (%.1f sequences of max_model_len %lld)\n",
               info.architecture.c_str(), info.dtype.c_str(), device.c_str(), static_cast<long long>(info.num_kv_blocks),
               static_cast<long long>(info.block_size), gib(info.kv_cache_bytes), tokens,
               static_cast<double>(tokens) / static_cast<double>(info.max_model_len),
               static_cast<long long>(info.max_model_len));
  if (sizing.from_profile) {
    std::fprintf(stderr, "pagedllm: KV cache sized by profiling: %.2f GiB in use at the largest step, "
                 "gpu_memory_utilization %.2f\n", gib(sizing.peak_used_bytes), gpu_memory_utilization);
  }
  if (graph_sizes.empty()) {
    std::fprintf(stderr, "pagedllm: graphs off: every step runs eagerly\n");
  } else {
    const int64_t reserve = graph_reserve_bytes(graph_sizes.size());
    std::fprintf(stderr,
                 "pagedllm: graphs: decode steps of %zu batch sizes (%lld..%lld) captured, %.1f MiB of device "
                 "memory (%.1f MiB kept for them)%s\n",
                 graph_sizes.size(), static_cast<long long>(graph_sizes.front()),
                 static_cast<long long>(graph_sizes.back()), graph_bytes / 1048576.0, reserve / 1048576.0,
                 sizing.from_profile && graph_bytes > reserve ? ": more than kept, lower gpu_memory_utilization" : "");
  }
  std::fprintf(stderr, "pagedllm: start-up %.2f s: %s\n", phases.total_seconds(), phases.summary().c_str());
}

}  // namespace pagedllm
