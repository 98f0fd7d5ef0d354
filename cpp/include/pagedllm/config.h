// EngineConfig: the one entry point for configuring an engine (built by the CLI or LLM()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pagedllm {

struct EngineConfig {
  // Path of a local model directory holding config.json and *.safetensors.
  std::string model;
  // Compute and weight dtype: "auto" (from config.json; float16 becomes bfloat16 on CPU),
  // "float32" or "bfloat16". Default "auto".
  std::string dtype = "auto";
  // Device the model runs on: "cpu", "cuda" (= "cuda:0") or "cuda:N" (needs a build with the
  // CUDA backend). Default "cpu".
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
  // GPU only: fraction (0, 1] of the GPU's total memory pagedllm may use (weights, activations
  // and KV cache); the KV cache gets what the rest leaves. Default 0.9.
  double gpu_memory_utilization = 0.9;
  // GPU only: run every step eagerly, without CUDA/HIP graphs. Default false.
  bool enforce_eager = false;
  // GPU only: attention kernels, "auto" (the fastest available), "flashinfer" or "native".
  // Default "auto".
  std::string attention_backend = "auto";
  // GPU only: decode batch sizes (sequences) captured as graphs, each in [1, max_num_seqs];
  // empty = 1, 2, 4, 8, then every 8 up to max_num_seqs. Default empty.
  std::vector<int64_t> cuda_graph_sizes;
};

}  // namespace pagedllm
