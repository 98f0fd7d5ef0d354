// Sampler implementation.
// Invariant: between calls counts_ is all zero and seen_ is all zero (each call resets exactly
// the entries it touched), and every buffer keeps its [vocab_size] size, so a call allocates
// nothing except the returned logprob list. The token drawn for a row depends only on the row's
// logits, its SamplingContext and (seed, num_output_tokens).
#include "sample/sampler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "util/check.h"

namespace pagedllm {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kGreedyTemperature = 1e-5f;  // below this, temperature means greedy (as vLLM)
constexpr int64_t kSmallRange = 64;       // select_crossing sorts ranges this small
constexpr uint32_t kRadixBuckets = 2048;  // select_crossing digits: float bits 31-21, 20-10, 9-0

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

// NaN sorts below every number, so comparisons over raw logits are a strict weak order.
float rank_key(float x) { return std::isnan(x) ? -kInf : x; }

// Index of the largest value above -inf (NaN never wins; ties -> lowest index), or -1 when
// there is none.
int64_t argmax(const float* x, int64_t n) {
  int64_t best = -1;
  float best_value = -kInf;
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] > best_value) {
      best_value = x[i];
      best = i;
    }
  }
  return best;
}

// The k-th largest of the values above -inf in work [vocab_size] (NaN ignored), or -inf when
// fewer than k exist. heap: [k] scratch, a min-heap of the k largest seen so far.
float kth_largest(const float* work, int64_t vocab_size, int64_t k, int32_t* heap) {
  auto greater = [work](int32_t a, int32_t b) { return work[a] > work[b]; };
  int64_t size = 0;
  for (int64_t id = 0; id < vocab_size; ++id) {
    const float x = work[id];
    if (!(x > -kInf)) continue;
    if (size < k) {
      heap[size++] = static_cast<int32_t>(id);
      std::push_heap(heap, heap + size, greater);
    } else if (x > work[heap[0]]) {
      std::pop_heap(heap, heap + k, greater);
      heap[k - 1] = static_cast<int32_t>(id);
      std::push_heap(heap, heap + k, greater);
    }
  }
  return size < k ? -kInf : work[heap[0]];
}

// Higher value first, then lower id: a total order over the (NaN-free) candidate values.
struct Descending {
  const float* value;
  bool operator()(int32_t a, int32_t b) const {
    return value[a] > value[b] || (value[a] == value[b] && a < b);
  }
};

uint32_t float_bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
}

// Rearranges ids[0, n) (n >= 1, positive weights in value[]) and returns the position k of the
// first token in Descending order whose cumulative weight passes target (> target, or >= target
// when `inclusive`); on return ids[0, k) hold exactly the tokens ordered before it. This is the
// answer of a walk over the fully sorted ids, found by a weighted radix select on the bits of
// the (positive) weights: O(n) plus a sort of the final, small or all-equal, range. Returns the
// last token when rounding leaves the target unreached.
int64_t select_crossing(int32_t* ids, int64_t n, const float* value, double target,
                        bool inclusive) {
  auto passes = [&](double cumulative) {
    return inclusive ? cumulative >= target : cumulative > target;
  };
  std::array<double, kRadixBuckets> mass;  // [kRadixBuckets] weight per digit
  // ids[0, lo) precede every token of ids[lo, hi), which precede ids[hi, n).
  int64_t lo = 0;
  int64_t hi = n;
  for (int shift : {21, 10, 0}) {
    if (hi - lo <= kSmallRange) break;
    auto digit = [&](int32_t id) {
      return (float_bits(value[id]) >> shift) & (kRadixBuckets - 1);
    };
    mass.fill(0.0);
    for (int64_t i = lo; i < hi; ++i) mass[digit(ids[i])] += value[ids[i]];
    uint32_t chosen = 0;
    double above = 0.0;
    double through = 0.0;
    for (uint32_t d = kRadixBuckets; d-- > 0;) {
      if (mass[d] == 0.0) continue;
      chosen = d;
      above = through;
      through += mass[d];
      if (passes(through)) break;
    }
    target -= above;
    int64_t front = lo, i = lo, back = hi;
    while (i < back) {
      const uint32_t d = digit(ids[i]);
      if (d > chosen) {
        std::swap(ids[front++], ids[i++]);
      } else if (d < chosen) {
        std::swap(ids[i], ids[--back]);
      } else {
        ++i;
      }
    }
    lo = front;
    hi = back;
  }
  std::sort(ids + lo, ids + hi, Descending{value});
  double cumulative = 0.0;
  for (int64_t i = lo; i < hi; ++i) {
    cumulative += value[ids[i]];
    if (passes(cumulative)) return i;
  }
  return hi - 1;
}

void mask_stop_tokens(float* work, int64_t vocab_size, const SamplingContext& ctx) {
  const SamplingParams& params = *ctx.params;
  if (ctx.num_output_tokens >= params.min_tokens) return;
  for (int32_t id : params.stop_token_ids) {
    if (id >= 0 && id < vocab_size) work[id] = -kInf;
  }
  if (params.ignore_eos || ctx.eos_token_ids == nullptr) return;
  for (int32_t id : *ctx.eos_token_ids) {
    if (id >= 0 && id < vocab_size) work[id] = -kInf;
  }
}

void check_token_ids(const int32_t* ids, int64_t num_ids, int64_t vocab_size, const char* what) {
  PAGEDLLM_CHECK(num_ids == 0 || ids != nullptr, "missing " << what << " token ids");
  for (int64_t i = 0; i < num_ids; ++i) {
    PAGEDLLM_CHECK(ids[i] >= 0 && ids[i] < vocab_size,
                   "" << what << " token id " << ids[i] << " outside vocab of " << vocab_size);
  }
}

// Draws a token from processed logits work [vocab_size] after temperature, top-k, top-p and
// min-p, using u in [0, 1). Returns -1 when no token has a positive probability. Overwrites
// work (with probabilities) and ids [vocab_size] (scratch).
int64_t draw(const SamplingParams& params, double u, float* work, int32_t* ids,
             int64_t vocab_size) {
  float kth = -kInf;
  if (params.top_k > 0 && params.top_k < vocab_size) {
    kth = kth_largest(work, vocab_size, params.top_k, ids);
  }
  // Candidates [num_candidates] in ids: logits above -inf and at least the k-th largest.
  int64_t num_candidates = 0;
  float max_logit = -kInf;
  for (int64_t id = 0; id < vocab_size; ++id) {
    const float x = work[id];
    if (x > -kInf && x >= kth) {
      ids[num_candidates++] = static_cast<int32_t>(id);
      max_logit = std::max(max_logit, x);
    }
  }
  if (num_candidates == 0) return -1;

  // Unnormalized probabilities exp((x - max) / T) in work; the top token's is exactly 1.
  const float inv_temperature = 1.0f / params.temperature;
  int64_t num_positive = 0;
  double total = 0.0;
  for (int64_t i = 0; i < num_candidates; ++i) {
    const int32_t id = ids[i];
    float p;
    if (max_logit == kInf) {
      p = work[id] == kInf ? 1.0f : 0.0f;
    } else {
      p = std::exp((work[id] - max_logit) * inv_temperature);
    }
    work[id] = p;
    if (p > 0.0f) {
      ids[num_positive++] = id;
      total += p;
    }
  }
  num_candidates = num_positive;

  if (params.top_p < 1.0f) {
    const double target = static_cast<double>(params.top_p) * total;
    num_candidates = 1 + select_crossing(ids, num_candidates, work, target, true);
    total = 0.0;
    for (int64_t i = 0; i < num_candidates; ++i) total += work[ids[i]];
  }

  if (params.min_p > 0.0f) {
    const float threshold = params.min_p;
    int64_t num_kept = 0;
    total = 0.0;
    for (int64_t i = 0; i < num_candidates; ++i) {
      if (work[ids[i]] >= threshold) {
        total += work[ids[i]];
        std::swap(ids[num_kept++], ids[i]);
      }
    }
    num_candidates = num_kept;
  }

  return ids[select_crossing(ids, num_candidates, work, u * total, false)];
}

}  // namespace

Sampler::Sampler(int64_t vocab_size)
    : vocab_size_(vocab_size),
      work_(vocab_size),
      order_(vocab_size),
      counts_(vocab_size, 0),
      seen_(vocab_size, 0) {
  PAGEDLLM_CHECK(vocab_size > 0 && vocab_size <= std::numeric_limits<int32_t>::max(),
                 "vocab_size " << vocab_size);
}

double Sampler::uniform(uint64_t seed, uint64_t index) {
  uint64_t x = mix64(seed + 0x9E3779B97F4A7C15ull);
  x = mix64(x ^ (index * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
  return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0);
}

SampleResult Sampler::sample(const float* logits, const SamplingContext& ctx) {
  PAGEDLLM_CHECK(ctx.params != nullptr, "SamplingContext without params");
  PAGEDLLM_CHECK(logits != nullptr);
  const SamplingParams& params = *ctx.params;
  float* work = work_.data();
  std::copy(logits, logits + vocab_size_, work);

  mask_stop_tokens(work, vocab_size_, ctx);

  if (params.repetition_penalty != 1.0f) {
    check_token_ids(ctx.prompt_token_ids, ctx.num_prompt_tokens, vocab_size_, "prompt");
    check_token_ids(ctx.output_token_ids, ctx.num_output_tokens, vocab_size_, "output");
    const float penalty = params.repetition_penalty;
    auto apply = [&](const int32_t* ids, int64_t num_ids) {
      for (int64_t i = 0; i < num_ids; ++i) {
        int32_t id = ids[i];
        if (seen_[id]) continue;
        seen_[id] = 1;
        work[id] = work[id] > 0.0f ? work[id] / penalty : work[id] * penalty;
      }
    };
    apply(ctx.prompt_token_ids, ctx.num_prompt_tokens);
    apply(ctx.output_token_ids, ctx.num_output_tokens);
    for (int64_t i = 0; i < ctx.num_prompt_tokens; ++i) seen_[ctx.prompt_token_ids[i]] = 0;
    for (int64_t i = 0; i < ctx.num_output_tokens; ++i) seen_[ctx.output_token_ids[i]] = 0;
  }

  if (params.frequency_penalty != 0.0f || params.presence_penalty != 0.0f) {
    check_token_ids(ctx.output_token_ids, ctx.num_output_tokens, vocab_size_, "output");
    for (int64_t i = 0; i < ctx.num_output_tokens; ++i) ++counts_[ctx.output_token_ids[i]];
    for (int64_t i = 0; i < ctx.num_output_tokens; ++i) {
      int32_t id = ctx.output_token_ids[i];
      if (counts_[id] == 0) continue;
      work[id] -= params.frequency_penalty * static_cast<float>(counts_[id]);
      work[id] -= params.presence_penalty;
      counts_[id] = 0;
    }
  }

  int64_t token = -1;
  if (params.temperature < kGreedyTemperature) {
    token = argmax(work, vocab_size_);
  } else {
    const double u = uniform(ctx.seed, static_cast<uint64_t>(ctx.num_output_tokens));
    token = draw(params, u, work, order_.data(), vocab_size_);
  }
  if (token < 0) token = std::max<int64_t>(argmax(logits, vocab_size_), 0);

  SampleResult result;
  result.token_id = static_cast<int32_t>(token);
  if (params.logprobs >= 0) {
    result.logprobs = compute_logprobs(logits, result.token_id, params.logprobs);
  }
  return result;
}

TokenLogprobs Sampler::compute_logprobs(const float* logits, int32_t token_id, int32_t top_n) {
  PAGEDLLM_CHECK(logits != nullptr);
  PAGEDLLM_CHECK(token_id >= 0 && token_id < vocab_size_,
                 "token id " << token_id << " outside vocab of " << vocab_size_);
  PAGEDLLM_CHECK(top_n >= 0, "top_n " << top_n);

  // One pass: max, rank of token_id, and a heap of the top_n best (heap[0] is the worst of
  // them, with key worst_key) in order_. Ids arrive in ascending order, so a later id enters
  // the heap only with a strictly larger key; NaN compares false and never enters or counts.
  const float own = rank_key(logits[token_id]);
  const int64_t n = std::min<int64_t>(top_n, vocab_size_);
  int32_t* heap = order_.data();
  auto better = [logits](int32_t a, int32_t b) {
    const float ka = rank_key(logits[a]), kb = rank_key(logits[b]);
    return ka > kb || (ka == kb && a < b);
  };
  for (int64_t i = 0; i < n; ++i) {
    heap[i] = static_cast<int32_t>(i);
    std::push_heap(heap, heap + i + 1, better);
  }
  float worst_key = n > 0 ? rank_key(logits[heap[0]]) : kInf;
  float max_logit = -kInf;
  int64_t num_larger = 0;
  for (int64_t i = 0; i < vocab_size_; ++i) {
    const float x = logits[i];
    max_logit = x > max_logit ? x : max_logit;
    num_larger += x > own;
    if (i >= n && x > worst_key) {
      std::pop_heap(heap, heap + n, better);
      heap[n - 1] = static_cast<int32_t>(i);
      std::push_heap(heap, heap + n, better);
      worst_key = rank_key(logits[heap[0]]);
    }
  }
  // log Z of the softmax. A +inf logit takes all the mass (shared among the +inf ones); an
  // all -inf or NaN row gives -inf everywhere.
  double log_z = 0.0;
  if (max_logit == kInf) {
    log_z = std::log(static_cast<double>(std::count(logits, logits + vocab_size_, kInf)));
  } else if (max_logit > -kInf) {
    double sum = 0.0;
    for (int64_t i = 0; i < vocab_size_; ++i) {
      if (!std::isnan(logits[i])) sum += std::exp(logits[i] - max_logit);
    }
    log_z = max_logit + std::log(sum);
  }
  auto logprob = [&](int64_t id) -> float {
    float x = logits[id];
    if (max_logit == kInf) return x == kInf ? static_cast<float>(-log_z) : -kInf;
    if (max_logit == -kInf) return std::isnan(x) ? x : -kInf;
    return static_cast<float>(static_cast<double>(x) - log_z);
  };

  TokenLogprobs out;
  out.token_id = token_id;
  out.logprob = logprob(token_id);
  out.rank = 1 + num_larger;
  std::sort_heap(heap, heap + n, better);
  out.top.reserve(n);
  for (int64_t i = 0; i < n; ++i) out.top.emplace_back(heap[i], logprob(heap[i]));
  return out;
}

}  // namespace pagedllm
