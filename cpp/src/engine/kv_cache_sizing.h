// How many KV-cache blocks the engine allocates. Three ways, first match wins:
//   1. an explicit num_kv_blocks;
//   2. an explicit byte budget (kv_cache_memory_bytes) / bytes per block;
//   3. a device with its own memory (Backend::profiles_memory(), the GPU): the largest step is
//      run once after the weights are loaded and its peak device use measured; the cache gets
//        gpu_memory_utilization * total - peak - reserve
//      where peak counts everything on the device at the profiling peak (weights, workspaces,
//      library handles, the runtime context and other processes) and reserve is memory kept
//      for what is allocated after the cache (graphs);
//   4. otherwise (the CPU) min(Backend::default_kv_cache_bytes(), what max_num_seqs sequences
//      of max_model_len tokens could ever use).
// Pure arithmetic on the inputs below, so it is tested without a device.
#pragma once

#include <cstdint>
#include <functional>

#include "backend/backend.h"
#include "pagedllm/config.h"
#include "pagedllm/status.h"

namespace pagedllm {

// Device memory around the profiling step, from Backend::memory_info().
struct ProfiledMemory {
  int64_t total_bytes = 0;           // the device's memory
  int64_t free_bytes = 0;            // free after the profiling step (all processes)
  int64_t allocated_bytes = 0;       // this backend's live allocations after the step
  int64_t peak_allocated_bytes = 0;  // their high-water mark during the step
  // In use at the peak: (total - free) now plus what the step allocated and released.
  int64_t peak_used_bytes() const;
};

// Resets the backend's peak, runs `step` (which must leave the device idle, e.g. by a
// synchronize) and reads the device's memory.
ProfiledMemory profile_memory(Backend* backend, const std::function<void()>& step);

struct KvCacheSizingInputs {
  int64_t num_kv_blocks = 0;          // EngineConfig.num_kv_blocks (0 = derive)
  int64_t kv_cache_memory_bytes = 0;  // EngineConfig.kv_cache_memory_bytes (0 = derive)
  int64_t block_size = 16;            // tokens per block
  int64_t block_bytes = 0;            // K and V bytes of one block over all layers
  int64_t max_model_len = 0;          // tokens
  int64_t max_num_seqs = 0;
  int64_t default_kv_cache_bytes = 0;  // Backend::default_kv_cache_bytes() (way 4)
  double gpu_memory_utilization = 0.9;  // fraction of total_bytes (way 3)
  int64_t reserve_bytes = 0;            // kept free after the cache (way 3)
};

struct KvCacheSizing {
  int64_t num_blocks = 0;
  int64_t budget_bytes = 0;      // what the chosen way allows; num_blocks * block_bytes <= it
  bool from_profile = false;     // way 3
  int64_t peak_used_bytes = 0;   // way 3: ProfiledMemory::peak_used_bytes()
};

// The inputs for an engine: EngineConfig's cache fields, the model's bytes per block, the
// resolved max_model_len and max_num_seqs, the backend's default and the number of graphs.
KvCacheSizingInputs kv_cache_sizing_inputs(const EngineConfig& config, int64_t block_bytes, int64_t max_model_len,
                                           int64_t max_num_seqs, int64_t default_kv_cache_bytes, size_t num_graphs);

// Memory kept free after the KV cache for capturing num_graphs graphs (their instantiated
// kernel nodes; they allocate no activations of their own).
int64_t graph_reserve_bytes(size_t num_graphs);

// True when the engine must run the profiling step before calling size_kv_cache (way 3).
bool kv_cache_needs_profile(const KvCacheSizingInputs& in, bool backend_profiles_memory);

// Blocks of a sequence of max_model_len tokens.
int64_t blocks_per_max_len_seq(const KvCacheSizingInputs& in);

// The number of blocks. `profile` is used (and required) only for way 3. Fails with
// kResourceExhausted when the budget holds no block, or (way 3) not one sequence of
// max_model_len tokens; kInvalidArgument on a gpu_memory_utilization outside (0, 1].
Result<KvCacheSizing> size_kv_cache(const KvCacheSizingInputs& in, const ProfiledMemory* profile);

}  // namespace pagedllm
