// EngineConfig: the one entry point for configuring an engine (built by the CLI or LLM()).
#pragma once

#include <cstdint>
#include <string>

namespace pagedllm {

struct EngineConfig {
  // Path of a local model directory holding config.json and *.safetensors.
  std::string model;
  // Compute and weight dtype: "auto" (from config.json; float16 becomes bfloat16 on CPU),
  // "float32" or "bfloat16". Default "auto".
  std::string dtype = "auto";
  // Device the model runs on: "cpu" (CUDA and HIP backends plug in later). Default "cpu".
  std::string device = "cpu";
  // Longest sequence (prompt + output) in tokens; 0 = the model's max_position_embeddings.
  int64_t max_model_len = 0;
  // Most requests in one step. Default 256.
  int64_t max_num_seqs = 256;
  // Token budget of one step; 0 = 2048 with chunked prefill, else max(max_model_len, 2048).
  int64_t max_num_batched_tokens = 0;
  // Tokens per KV-cache block. Default 16.
  int64_t block_size = 16;
  // Exact number of KV-cache blocks; 0 = derive from kv_cache_memory_bytes.
  int64_t num_kv_blocks = 0;
  // Bytes given to the KV cache when num_kv_blocks is 0; 0 = 1/4 of physical memory, at most 8 GiB.
  int64_t kv_cache_memory_bytes = 0;
  // Split long prompts across steps, mixed with other requests' decodes. Default true.
  bool enable_chunked_prefill = true;
  // Reuse the KV of cached full blocks of earlier prompts with the same prefix. Default true.
  bool enable_prefix_caching = true;
  // Compute threads for the CPU backend; 0 = all available cores.
  int64_t num_threads = 0;
  // Seed of requests that set no seed of their own. Default 0.
  uint64_t seed = 0;
  // Print the KV-cache size and other start-up facts to stderr. Default true.
  bool log_stats = true;
};

}  // namespace pagedllm
