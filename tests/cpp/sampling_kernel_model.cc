// The sequential model of the GPU sampling kernel (see sampling_kernel_model.h).
#include "sampling_kernel_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/float_convert.h"
#include "sample/sampler.h"

namespace pagedllm {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

using cpu::bits_to_float;
using cpu::float_to_bits;

uint32_t order_key(float x) {
  const uint32_t b = float_to_bits(x == 0.0f ? 0.0f : x);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
float key_value(uint32_t k) { return bits_to_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k); }

int argmax(const std::vector<float>& x) {
  int best = -1;
  float v = -kInf;
  for (int i = 0; i < static_cast<int>(x.size()); ++i) {
    if (x[i] > v) {
      v = x[i];
      best = i;
    }
  }
  return best;
}

// sampling_block.cuh select_crossing, sequentially.
int select_crossing(const std::vector<float>& p, double target, bool inclusive, double total, uint32_t* bits) {
  auto passes = [&](double c) { return inclusive ? c >= target : c > target; };
  const int n = static_cast<int>(p.size());
  uint32_t key = 0;
  int rank = 0;
  if (!passes(total)) {
    key = 0xffffffffu;
    for (float v : p) {
      if (float_to_bits(v) != 0) key = std::min(key, float_to_bits(v));
    }
    rank = -1;
  } else {
    for (int bit = 31; bit >= 0; --bit) {
      const uint32_t candidate = key | (1u << bit);
      if (candidate > 0x3f800000u) continue;
      double s = 0.0;
      for (float v : p) {
        if (float_to_bits(v) >= candidate) s += v;
      }
      if (passes(s)) key = candidate;
    }
  }
  double above = 0.0;
  int num_equal = 0;
  for (float v : p) {
    if (float_to_bits(v) > key) above += v;
    num_equal += float_to_bits(v) == key;
  }
  if (num_equal == 0) return -1;
  if (rank == 0 && num_equal > 1) {
    const double weight = bits_to_float(key);
    const double q = std::ceil((target - above) / weight) - 1.0;
    int64_t j = q <= 0.0 ? 0 : (q >= num_equal - 1 ? num_equal - 1 : static_cast<int64_t>(q));
    while (j > 0 && passes(above + static_cast<double>(j) * weight)) --j;
    while (j + 1 < num_equal && !passes(above + static_cast<double>(j + 1) * weight)) ++j;
    rank = static_cast<int>(j);
  }
  if (rank < 0) rank = num_equal - 1;
  *bits = key;
  for (int i = 0, seen = 0; i < n; ++i) {
    if (float_to_bits(p[i]) == key && seen++ == rank) return i;
  }
  return -1;
}

// sampling.cu sample_kernel for one packed row, sequentially.
}  // namespace

int model_kernel(const float* logits, int n, const SampleRowParams& row, const int32_t* lists) {
  std::vector<float> w(logits, logits + n);
  for (int j = 0; j < row.num_mask_ids; ++j) w[lists[row.mask_begin + j]] = -kInf;
  for (int j = 0; j < row.num_repetition_ids; ++j) {
    float& x = w[lists[row.repetition_begin + j]];
    x = x > 0.0f ? x / row.repetition_penalty : x * row.repetition_penalty;
  }
  for (int j = 0; j < row.num_output_ids; ++j) {
    float& x = w[lists[row.output_begin + j]];
    const float scaled = row.frequency_penalty * static_cast<float>(lists[row.output_begin + row.num_output_ids + j]);
    x = x - scaled;
    x = x - row.presence_penalty;
  }
  int token = -1;
  if (row.temperature < 1e-5f) {
    token = argmax(w);
  } else {
    float kth = -kInf;
    int finite = 0;
    for (float x : w) finite += x > -kInf;
    if (row.top_k > 0 && row.top_k < n && finite >= row.top_k) {
      uint32_t key = 0;
      for (int bit = 31; bit >= 0; --bit) {
        const uint32_t candidate = key | (1u << bit);
        int count = 0;
        for (float x : w) count += x > -kInf && order_key(x) >= candidate;
        if (count >= row.top_k) key = candidate;
      }
      kth = key_value(key);
    }
    float m = -kInf;
    for (float x : w) {
      if (x > -kInf && x >= kth && x > m) m = x;
    }
    if (m > -kInf) {
      const float inv_t = 1.0f / row.temperature;
      double total = 0.0;
      for (float& x : w) {
        float p = 0.0f;
        if (x > -kInf && x >= kth) {
          const float d = (x - m) * inv_t;
          p = m == kInf ? (x == kInf ? 1.0f : 0.0f) : static_cast<float>(std::exp(static_cast<double>(d)));
        }
        x = p;
        total += p;
      }
      uint32_t bits = 0;
      if (row.top_p < 1.0f) {
        const int last = select_crossing(w, static_cast<double>(row.top_p) * total, true, total, &bits);
        total = 0.0;
        for (int i = 0; i < n; ++i) {
          const uint32_t b = float_to_bits(w[i]);
          if (b < bits || (b == bits && i > last)) w[i] = 0.0f;
          total += w[i];
        }
      }
      if (row.min_p > 0.0f) {
        total = 0.0;
        for (float& x : w) {
          if (!(x >= row.min_p)) x = 0.0f;
          total += x;
        }
      }
      token = select_crossing(w, Sampler::uniform(row.seed, static_cast<uint64_t>(row.step)) * total, false, total, &bits);
    }
  }
  if (token < 0) token = argmax(std::vector<float>(logits, logits + n));
  return token < 0 ? 0 : token;
}

}  // namespace pagedllm
