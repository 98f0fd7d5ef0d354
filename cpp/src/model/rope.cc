// RoPE tables. Invariant: every intermediate rounds to float32 exactly where transformers'
// tensor arithmetic does (a Python scalar meeting a float32 tensor becomes a float32 operand),
// so inv_freq equals HF's up to the last-bit error of torch's vectorized pow.
#include "model/rope.h"

#include <cmath>

#include "util/check.h"

namespace pagedllm {

namespace {

constexpr double kPi = 3.14159265358979323846;

// HF _compute_default_rope_parameters: 1 / base ** (arange(0, dim, 2).float() / dim).
std::vector<float> default_inv_freq(float base, int64_t dim) {
  std::vector<float> inv_freq(static_cast<size_t>(dim / 2));  // [dim / 2]
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    const float power = static_cast<float>(std::pow(static_cast<double>(base),
                                                    static_cast<double>(exponent)));
    inv_freq[i] = 1.0f / power;
  }
  return inv_freq;
}

// HF _compute_llama3_parameters: low frequencies divided by factor, high ones kept, the band
// between interpolated smoothly.
void apply_llama3(const RopeScaling& rope, std::vector<float>* inv_freq) {
  const auto old_context_len = static_cast<double>(rope.original_max_position_embeddings);
  const float factor = static_cast<float>(rope.factor);
  const float low_freq_factor = static_cast<float>(rope.low_freq_factor);
  const float low_freq_wavelen = static_cast<float>(old_context_len / rope.low_freq_factor);
  const float high_freq_wavelen = static_cast<float>(old_context_len / rope.high_freq_factor);
  const float factor_span = static_cast<float>(rope.high_freq_factor - rope.low_freq_factor);
  const float two_pi = static_cast<float>(2.0 * kPi);
  const float old_context_len_f = static_cast<float>(old_context_len);
  for (float& f : *inv_freq) {
    const float wavelen = (1.0f / f) * two_pi;
    const float scaled = wavelen > low_freq_wavelen ? f / factor : f;
    const float smooth = ((1.0f / wavelen) * old_context_len_f - low_freq_factor) / factor_span;
    const float low_part = (1.0f - smooth) * scaled / factor;
    const float high_part = smooth * scaled;
    const float smoothed = low_part + high_part;
    const bool is_medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    f = is_medium ? smoothed : scaled;
  }
}

std::vector<float> inv_freq_f32(const ModelConfig& config) {
  PAGEDLLM_CHECK(config.head_dim > 0 && config.head_dim % 2 == 0,
                 "rope needs a positive even head_dim, got " << config.head_dim);
  const RopeScaling& rope = config.rope_scaling;
  std::vector<float> inv_freq =
      default_inv_freq(static_cast<float>(config.rope_theta), config.head_dim);
  if (rope.type == "default") return inv_freq;
  if (rope.type == "linear") {
    const float factor = static_cast<float>(rope.factor);
    for (float& f : inv_freq) f /= factor;
    return inv_freq;
  }
  PAGEDLLM_CHECK(rope.type == "llama3", "unsupported rope type '" << rope.type << "'");
  apply_llama3(rope, &inv_freq);
  return inv_freq;
}

}  // namespace

std::vector<double> rope_inv_freq(const ModelConfig& config) {
  std::vector<float> inv_freq = inv_freq_f32(config);
  return std::vector<double>(inv_freq.begin(), inv_freq.end());
}

std::vector<float> build_cos_sin_cache(const ModelConfig& config, int64_t max_position) {
  PAGEDLLM_CHECK(max_position >= 0, "max_position " << max_position << " is negative");
  const std::vector<float> inv_freq = inv_freq_f32(config);  // [head_dim / 2]
  const size_t half = inv_freq.size();
  // [max_position, head_dim]
  std::vector<float> cache(static_cast<size_t>(max_position) * 2 * half);
  for (int64_t p = 0; p < max_position; ++p) {
    float* row = cache.data() + static_cast<size_t>(p) * 2 * half;
    const float position = static_cast<float>(p);
    for (size_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(position * inv_freq[i]);
      row[i] = static_cast<float>(std::cos(angle));
      row[half + i] = static_cast<float>(std::sin(angle));
    }
  }
  return cache;
}

}  // namespace pagedllm
