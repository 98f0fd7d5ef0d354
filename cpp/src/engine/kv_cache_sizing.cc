#include "engine/kv_cache_sizing.h"

#include <algorithm>
#include <sstream>
#include <string>

#include "util/check.h"

namespace pagedllm {
namespace {

double mib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace

int64_t ProfiledMemory::peak_used_bytes() const {
  const int64_t used_now = total_bytes - free_bytes;
  return used_now + std::max<int64_t>(0, peak_allocated_bytes - allocated_bytes);
}

ProfiledMemory profile_memory(Backend* backend, const std::function<void()>& step) {
  backend->reset_peak_memory();
  step();
  const DeviceMemoryInfo info = backend->memory_info();
  ProfiledMemory m;
  m.total_bytes = info.total_bytes;
  m.free_bytes = info.free_bytes;
  m.allocated_bytes = info.allocated_bytes;
  m.peak_allocated_bytes = info.peak_allocated_bytes;
  return m;
}

int64_t graph_reserve_bytes(size_t num_graphs) {
  constexpr int64_t kMiB = int64_t{1} << 20;
  return num_graphs == 0 ? 0 : 64 * kMiB + static_cast<int64_t>(num_graphs) * 4 * kMiB;
}

KvCacheSizingInputs kv_cache_sizing_inputs(const EngineConfig& config, int64_t block_bytes, int64_t max_model_len,
                                           int64_t max_num_seqs, int64_t default_kv_cache_bytes, size_t num_graphs) {
  KvCacheSizingInputs in;
  in.num_kv_blocks = config.num_kv_blocks;
  in.kv_cache_memory_bytes = config.kv_cache_memory_bytes;
  in.block_size = config.block_size;
  in.block_bytes = block_bytes;
  in.max_model_len = max_model_len;
  in.max_num_seqs = max_num_seqs;
  in.default_kv_cache_bytes = default_kv_cache_bytes;
  in.gpu_memory_utilization = config.gpu_memory_utilization;
  in.reserve_bytes = graph_reserve_bytes(num_graphs);
  return in;
}

bool kv_cache_needs_profile(const KvCacheSizingInputs& in, bool backend_profiles_memory) {
  return in.num_kv_blocks == 0 && in.kv_cache_memory_bytes == 0 && backend_profiles_memory;
}

int64_t blocks_per_max_len_seq(const KvCacheSizingInputs& in) {
  return (in.max_model_len + in.block_size - 1) / in.block_size;
}

Result<KvCacheSizing> size_kv_cache(const KvCacheSizingInputs& in, const ProfiledMemory* profile) {
  PAGEDLLM_CHECK(in.block_bytes > 0 && in.block_size > 0, "KV sizing without a block size");
  KvCacheSizing out;
  if (in.num_kv_blocks > 0) {
    out.num_blocks = in.num_kv_blocks;
    out.budget_bytes = in.num_kv_blocks * in.block_bytes;
    return out;
  }
  if (in.kv_cache_memory_bytes > 0) {
    out.budget_bytes = in.kv_cache_memory_bytes;
  } else if (profile != nullptr) {
    if (!(in.gpu_memory_utilization > 0.0 && in.gpu_memory_utilization <= 1.0)) {
      return Status(StatusCode::kInvalidArgument, "gpu_memory_utilization must be in (0, 1], got " +
                                                      std::to_string(in.gpu_memory_utilization));
    }
    out.from_profile = true;
    out.peak_used_bytes = profile->peak_used_bytes();
    const int64_t allowed = static_cast<int64_t>(in.gpu_memory_utilization * static_cast<double>(profile->total_bytes));
    out.budget_bytes = std::max<int64_t>(0, allowed - out.peak_used_bytes - in.reserve_bytes);
    out.num_blocks = out.budget_bytes / in.block_bytes;
    const int64_t need = blocks_per_max_len_seq(in);
    if (out.num_blocks < need) {
      std::ostringstream msg;
      msg.precision(1);
      msg << std::fixed << "not enough GPU memory for the KV cache: gpu_memory_utilization "
          << in.gpu_memory_utilization << " of " << mib(profile->total_bytes) << " MiB allows "
          << mib(allowed) << " MiB, the model's weights and its largest step use "
          << mib(out.peak_used_bytes) << " MiB at peak (" << mib(in.reserve_bytes)
          << " MiB kept for graphs), which leaves " << mib(out.budget_bytes) << " MiB = "
          << out.num_blocks << " blocks of " << in.block_bytes << " bytes, but one sequence of "
          << "max_model_len " << in.max_model_len << " tokens needs " << need
          << " blocks; lower max_model_len or raise gpu_memory_utilization";
      return Status(StatusCode::kResourceExhausted, msg.str());
    }
    return out;
  } else {
    const int64_t useful = in.max_num_seqs * blocks_per_max_len_seq(in) * in.block_bytes;
    out.budget_bytes = std::min(in.default_kv_cache_bytes, useful);
  }
  out.num_blocks = out.budget_bytes / in.block_bytes;
  if (out.num_blocks < 1) {
    return Status(StatusCode::kResourceExhausted,
                  "the KV cache budget holds no block of " + std::to_string(in.block_bytes) + " bytes");
  }
  return out;
}

}  // namespace pagedllm
