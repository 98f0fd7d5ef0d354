// ModelConfig: what pagedllm reads from a Hugging Face config.json (+ generation_config.json).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pagedllm/status.h"

namespace pagedllm {

struct RopeScaling {
  std::string type = "default";  // "default", "linear", "dynamic" (unsupported), "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;                     // llama3
  double high_freq_factor = 4.0;                    // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  std::string architecture;  // first entry of "architectures"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;   // defaults to num_attention_heads
  int64_t head_dim = 0;              // defaults to hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;       // "rope_theta" or "rope_parameters.rope_theta"
  RopeScaling rope_scaling;          // "rope_scaling" or "rope_parameters"
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool attention_bias = false;       // q/k/v projections carry a bias (Qwen2: always)
  bool qk_norm = false;              // per-head RMSNorm on q and k (Qwen3)
  std::string hidden_act = "silu";
  std::string torch_dtype = "float32";  // "dtype" or "torch_dtype"
  int64_t sliding_window = 0;        // 0 = none
  std::vector<int32_t> eos_token_ids;   // config.json and generation_config.json, deduplicated
  int32_t bos_token_id = -1;
};

// The architectures pagedllm runs.
const std::vector<std::string>& supported_architectures();

// Reads <model_dir>/config.json (required) and generation_config.json (optional).
// kNotFound without config.json, kCorruptData for malformed JSON or missing/invalid required
// fields (named), kUnsupported for an unknown architecture (the message lists the supported
// ones), an activation other than silu, or an unsupported rope_scaling type.
Result<ModelConfig> load_model_config(const std::string& model_dir);

}  // namespace pagedllm
