// Rotary position embedding tables, computed the way Hugging Face transformers computes them
// (float32 arithmetic in the same order as modeling_rope_utils and the rotary forward), so the
// angles our kernels see equal the reference model's. Precondition (CHECKed): head_dim is
// positive and even and rope_scaling.type is "default", "linear" or "llama3" (load_model_config
// guarantees both).
#pragma once

#include <cstdint>
#include <vector>

#include "model/model_config.h"

namespace pagedllm {

// [head_dim / 2] inverse frequency of each rotary pair: float32 values widened to double.
std::vector<double> rope_inv_freq(const ModelConfig& config);

// [max_position, head_dim] float32 table: row p holds cos(p * inv_freq[i]) for i < head_dim / 2,
// then sin(p * inv_freq[i]); the angle p * inv_freq[i] is a float32 product.
std::vector<float> build_cos_sin_cache(const ModelConfig& config, int64_t max_position);

}  // namespace pagedllm
