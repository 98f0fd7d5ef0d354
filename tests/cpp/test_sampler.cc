// Sampler and SamplingParams::validate tests. Every sampler result is compared against a naive
// reference written here from the rules in sampler.h (allowed set + renormalized softmax,
// penalty rules, double-precision log-softmax).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "pagedllm/request_output.h"
#include "pagedllm/sampling_params.h"
#include "sample/sampler.h"
#include "test_harness.h"
#include "util/check.h"

using namespace pagedllm;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> random_logits(int64_t n, uint32_t seed, float scale = 3.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

int64_t naive_argmax(const std::vector<float>& x) {
  int64_t best = 0;
  for (int64_t i = 1; i < static_cast<int64_t>(x.size()); ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

// Reference distribution of the sampling pipeline: softmax(x / T) restricted to the top-k set
// (all ties with the k-th value kept), then top-p (smallest prefix by probability descending,
// ties by id, with cumulative >= top_p), then min-p, renormalized. Zero outside the set.
std::vector<double> reference_distribution(const std::vector<float>& logits,
                                           const SamplingParams& p) {
  const int64_t n = logits.size();
  std::vector<bool> allowed(n, true);
  if (p.top_k > 0 && p.top_k < n) {
    std::vector<float> sorted = logits;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    float kth = sorted[p.top_k - 1];
    for (int64_t i = 0; i < n; ++i) allowed[i] = logits[i] >= kth;
  }
  double mx = -1e300;
  for (int64_t i = 0; i < n; ++i) {
    if (allowed[i]) mx = std::max(mx, static_cast<double>(logits[i]));
  }
  std::vector<double> prob(n, 0.0);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (allowed[i]) prob[i] = std::exp((logits[i] - mx) / p.temperature);
    sum += prob[i];
  }
  for (double& q : prob) q /= sum;
  if (p.top_p < 1.0f) {
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < n; ++i) ids.push_back(i);
    std::sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) {
      return prob[a] > prob[b] || (prob[a] == prob[b] && a < b);
    });
    double cum = 0.0;
    std::vector<double> kept(n, 0.0);
    for (int64_t id : ids) {
      if (cum >= p.top_p) break;
      kept[id] = prob[id];
      cum += prob[id];
    }
    prob = kept;
  }
  if (p.min_p > 0.0f) {
    double top = *std::max_element(prob.begin(), prob.end());
    for (double& q : prob) {
      if (q < p.min_p * top) q = 0.0;
    }
  }
  sum = 0.0;
  for (double q : prob) sum += q;
  for (double& q : prob) q /= sum;
  return prob;
}

// Naive processed logits: min_tokens masking, repetition, frequency and presence penalties.
std::vector<float> reference_processed(const std::vector<float>& logits, const SamplingParams& p,
                                       const std::vector<int32_t>& prompt,
                                       const std::vector<int32_t>& output,
                                       const std::vector<int32_t>& eos) {
  std::vector<float> x = logits;
  if (static_cast<int64_t>(output.size()) < p.min_tokens) {
    for (int32_t id : p.stop_token_ids) x[id] = -kInf;
    if (!p.ignore_eos) {
      for (int32_t id : eos) x[id] = -kInf;
    }
  }
  std::set<int32_t> seen(prompt.begin(), prompt.end());
  seen.insert(output.begin(), output.end());
  for (int32_t id : seen) {
    x[id] = x[id] > 0 ? x[id] / p.repetition_penalty : x[id] * p.repetition_penalty;
  }
  std::map<int32_t, int> counts;
  for (int32_t id : output) ++counts[id];
  for (auto& [id, c] : counts) {
    x[id] -= p.frequency_penalty * c;
    x[id] -= p.presence_penalty;
  }
  return x;
}

struct Row {
  SamplingParams params;
  std::vector<int32_t> prompt;
  std::vector<int32_t> output;
  std::vector<int32_t> eos;
  uint64_t seed = 0;

  SamplingContext context() const {
    SamplingContext ctx;
    ctx.params = &params;
    ctx.prompt_token_ids = prompt.data();
    ctx.num_prompt_tokens = prompt.size();
    ctx.output_token_ids = output.data();
    ctx.num_output_tokens = output.size();
    ctx.seed = seed;
    ctx.eos_token_ids = &eos;
    return ctx;
  }
};

// Samples `num_draws` times with seeds 0.. and returns the token frequencies.
std::vector<int64_t> sample_counts(Sampler& sampler, const std::vector<float>& logits,
                                   const SamplingParams& params, int num_draws) {
  std::vector<int64_t> counts(logits.size(), 0);
  Row row;
  row.params = params;
  for (int s = 0; s < num_draws; ++s) {
    row.seed = static_cast<uint64_t>(s) * 7919u + 13u;
    ++counts[sampler.sample(logits.data(), row.context()).token_id];
  }
  return counts;
}

// Checks that no draw falls outside the reference support and that the chi-square statistic
// against the reference is within a generous bound for its degrees of freedom.
void expect_matches_distribution(const std::vector<int64_t>& counts,
                                 const std::vector<double>& expected, int num_draws) {
  double chi2 = 0.0;
  int dof = -1;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] == 0.0) {
      EXPECT_EQ(counts[i], 0);
      continue;
    }
    double e = expected[i] * num_draws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++dof;
  }
  if (dof <= 0) return;
  EXPECT_LT(chi2, dof + 6.0 * std::sqrt(2.0 * dof) + 10.0);
}

std::vector<double> softmax(const std::vector<float>& x, double temperature) {
  SamplingParams p;
  p.temperature = static_cast<float>(temperature);
  return reference_distribution(x, p);
}

}  // namespace

TEST(Sampler, UniformIsStatelessAndInRange) {
  std::vector<int> buckets(10, 0);
  const int n = 100000;
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    double u = Sampler::uniform(i % 37, i / 37);
    ASSERT_TRUE(u >= 0.0 && u < 1.0);
    sum += u;
    ++buckets[static_cast<int>(u * 10)];
  }
  EXPECT_NEAR(sum / n, 0.5, 0.01);
  for (int b : buckets) EXPECT_NEAR(b, n / 10.0, 600.0);
  EXPECT_EQ(Sampler::uniform(42, 7), Sampler::uniform(42, 7));
  EXPECT_NE(Sampler::uniform(42, 7), Sampler::uniform(42, 8));
  EXPECT_NE(Sampler::uniform(42, 7), Sampler::uniform(43, 7));
}

TEST(Sampler, GreedyEqualsArgmax) {
  const int64_t vocab = 1000;
  Sampler sampler(vocab);
  Row row;
  row.params.temperature = 0.0f;
  for (uint32_t t = 0; t < 50; ++t) {
    auto logits = random_logits(vocab, t);
    EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, naive_argmax(logits));
  }
  std::vector<float> ties(vocab, -1.0f);
  ties[17] = 5.0f;
  ties[3] = 5.0f;
  ties[900] = 5.0f;
  EXPECT_EQ(sampler.sample(ties.data(), row.context()).token_id, 3);
  row.params.temperature = 1e-6f;
  EXPECT_EQ(sampler.sample(ties.data(), row.context()).token_id, 3);
}

TEST(Sampler, SeededSamplingIsReproducibleWhenInterleaved) {
  const int64_t vocab = 200;
  auto logits_a = random_logits(vocab, 1, 1.0f);
  auto logits_b = random_logits(vocab, 2, 1.0f);
  Row a, b;
  a.seed = 1234;
  b.seed = 99;
  b.params.top_k = 50;
  b.params.top_p = 0.8f;

  Sampler alone(vocab);
  std::vector<int32_t> tokens_alone;
  for (int step = 0; step < 40; ++step) {
    int32_t t = alone.sample(logits_a.data(), a.context()).token_id;
    tokens_alone.push_back(t);
    a.output.push_back(t);
  }

  Sampler mixed(vocab);
  a.output.clear();
  for (int step = 0; step < 40; ++step) {
    for (int k = 0; k < step % 3; ++k) {
      b.seed = 99 + step * 5 + k;
      int32_t tb = mixed.sample(logits_b.data(), b.context()).token_id;
      b.output.push_back(tb);
    }
    int32_t t = mixed.sample(logits_a.data(), a.context()).token_id;
    EXPECT_EQ(t, tokens_alone[step]);
    a.output.push_back(t);
  }
  std::set<int32_t> distinct(tokens_alone.begin(), tokens_alone.end());
  EXPECT_GT(distinct.size(), 5u);
}

TEST(Sampler, FollowsSoftmaxDistribution) {
  std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f, 0.0f};
  Sampler sampler(logits.size());
  SamplingParams p;
  const int n = 30000;
  expect_matches_distribution(sample_counts(sampler, logits, p, n), softmax(logits, 1.0), n);
}

TEST(Sampler, TemperatureReshapesDistribution) {
  std::vector<float> logits = {1.0f, 2.0f, 0.5f, -0.5f, 1.5f};
  Sampler sampler(logits.size());
  const int n = 30000;
  for (float t : {0.5f, 2.0f, 5.0f}) {
    SamplingParams p;
    p.temperature = t;
    expect_matches_distribution(sample_counts(sampler, logits, p, n), softmax(logits, t), n);
  }
  SamplingParams p;
  p.temperature = 2.0f;
  auto counts = sample_counts(sampler, logits, p, n);
  auto wrong = softmax(logits, 1.0);
  double chi2 = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    chi2 += (counts[i] - wrong[i] * n) * (counts[i] - wrong[i] * n) / (wrong[i] * n);
  }
  EXPECT_GT(chi2, 100.0);
}

TEST(Sampler, TopKMatchesReference) {
  std::vector<float> logits = {0.1f, 2.0f, 1.0f, 1.0f, -3.0f, 1.7f, 0.4f, 1.0f, -0.2f, 0.9f};
  Sampler sampler(logits.size());
  const int n = 20000;
  for (int k : {1, 2, 3, 4, 6, 10, 50}) {
    SamplingParams p;
    p.top_k = k;
    expect_matches_distribution(sample_counts(sampler, logits, p, n),
                                reference_distribution(logits, p), n);
  }
}

TEST(Sampler, TopPMatchesReference) {
  std::vector<float> logits = {0.1f, 2.0f, 1.0f, 1.0f, -3.0f, 1.7f, 0.4f, 1.3f, -0.2f, 0.9f};
  Sampler sampler(logits.size());
  const int n = 20000;
  for (float top_p : {0.05f, 0.3f, 0.5f, 0.7f, 0.9f, 0.99f}) {
    SamplingParams p;
    p.top_p = top_p;
    expect_matches_distribution(sample_counts(sampler, logits, p, n),
                                reference_distribution(logits, p), n);
  }
}

TEST(Sampler, TopPLargeVocabStaysInNucleus) {
  const int64_t vocab = 5000;
  auto logits = random_logits(vocab, 77, 2.0f);
  Sampler sampler(vocab);
  SamplingParams p;
  p.top_p = 0.6f;
  p.temperature = 0.7f;
  auto expected = reference_distribution(logits, p);
  auto counts = sample_counts(sampler, logits, p, 3000);
  for (int64_t i = 0; i < vocab; ++i) {
    if (expected[i] == 0.0) EXPECT_EQ(counts[i], 0);
  }
}

// Every draw equals the naive inverse-CDF walk over the reference distribution in descending
// probability order (ties by id) with u = uniform(seed, num_output_tokens). Draws whose u lies
// within rounding distance of a cumulative boundary are skipped (and must be rare).
TEST(Sampler, DrawIsInverseCdfInDescendingOrder) {
  const int64_t vocab = 4000;
  Sampler sampler(vocab);
  std::vector<SamplingParams> cases(6);
  cases[1].temperature = 0.7f;
  cases[1].top_k = 300;
  cases[2].top_p = 0.8f;
  cases[3].min_p = 0.02f;
  cases[4].temperature = 1.3f;
  cases[4].top_k = 1000;
  cases[4].top_p = 0.95f;
  cases[4].min_p = 0.001f;
  cases[5].temperature = 0.2f;
  for (int quantized = 0; quantized < 2; ++quantized) {
    auto logits = random_logits(vocab, 4242 + quantized, 1.5f);
    if (quantized) {
      for (float& x : logits) x = std::round(x * 4.0f) / 4.0f;
    }
    for (const SamplingParams& params : cases) {
      auto prob = reference_distribution(logits, params);
      std::vector<int32_t> ids;
      for (int32_t i = 0; i < vocab; ++i) {
        if (prob[i] > 0.0) ids.push_back(i);
      }
      std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
        return prob[a] > prob[b] || (prob[a] == prob[b] && a < b);
      });
      Row row;
      row.params = params;
      row.output = {7, 7, 7};
      int num_ambiguous = 0;
      const int num_draws = 400;
      for (int s = 0; s < num_draws; ++s) {
        row.seed = 1000003ull * s + 17;
        const double u = Sampler::uniform(row.seed, row.output.size());
        double cumulative = 0.0;
        int32_t expected = ids.back();
        bool ambiguous = false;
        for (int32_t id : ids) {
          ambiguous = std::fabs(cumulative - u) < 1e-6;
          cumulative += prob[id];
          if (cumulative > u) {
            expected = id;
            ambiguous = ambiguous || std::fabs(cumulative - u) < 1e-6;
            break;
          }
        }
        if (ambiguous) {
          ++num_ambiguous;
          continue;
        }
        EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, expected);
      }
      EXPECT_LT(num_ambiguous, num_draws / 100);
    }
  }
}

TEST(Sampler, MinPMatchesReference) {
  std::vector<float> logits = {0.1f, 2.0f, 1.0f, 1.0f, -3.0f, 1.7f, 0.4f, 1.3f, -0.2f, 0.9f};
  Sampler sampler(logits.size());
  const int n = 20000;
  for (float min_p : {0.1f, 0.3f, 0.5f, 0.8f, 1.0f}) {
    SamplingParams p;
    p.min_p = min_p;
    expect_matches_distribution(sample_counts(sampler, logits, p, n),
                                reference_distribution(logits, p), n);
  }
}

TEST(Sampler, CombinedFiltersMatchReference) {
  const int64_t vocab = 40;
  Sampler sampler(vocab);
  const int n = 20000;
  for (uint32_t t = 0; t < 4; ++t) {
    auto logits = random_logits(vocab, 100 + t, 1.0f);
    SamplingParams p;
    p.temperature = 0.6f + 0.4f * t;
    p.top_k = 12 + static_cast<int>(t);
    p.top_p = 0.85f;
    p.min_p = 0.05f;
    expect_matches_distribution(sample_counts(sampler, logits, p, n),
                                reference_distribution(logits, p), n);
  }
}

TEST(Sampler, PenaltiesFlipArgmax) {
  std::vector<float> logits = {1.0f, 3.0f, 2.9f, -1.0f};
  Sampler sampler(logits.size());
  Row row;
  row.params.temperature = 0.0f;
  row.output = {1};
  EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, 1);
  row.params.presence_penalty = 0.5f;
  EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, 2);
  row.params.presence_penalty = 0.0f;
  row.params.frequency_penalty = 0.2f;
  EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, 2);
  row.params.frequency_penalty = 0.0f;
  row.params.repetition_penalty = 1.1f;
  EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, 2);
  row.output.clear();
  row.prompt = {1};
  EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, 2);
  std::vector<float> negative = {-5.0f, -1.0f, -1.05f};
  Sampler small(negative.size());
  row.prompt = {1};
  EXPECT_EQ(small.sample(negative.data(), row.context()).token_id, 2);
}

TEST(Sampler, PenaltiesMatchReferenceRandomized) {
  const int64_t vocab = 64;
  Sampler sampler(vocab);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> pen(-2.0f, 2.0f);
  std::uniform_real_distribution<float> rep(0.5f, 2.0f);
  std::uniform_int_distribution<int32_t> tok(0, vocab - 1);
  for (int trial = 0; trial < 300; ++trial) {
    auto logits = random_logits(vocab, 1000 + trial, 1.5f);
    Row row;
    row.params.temperature = 0.0f;
    row.params.presence_penalty = trial % 4 == 0 ? 0.0f : pen(rng);
    row.params.frequency_penalty = trial % 3 == 0 ? 0.0f : pen(rng);
    row.params.repetition_penalty = trial % 5 == 0 ? 1.0f : rep(rng);
    for (int i = 0, np = trial % 20; i < np; ++i) row.prompt.push_back(tok(rng) % 16);
    for (int i = 0, no = trial % 30; i < no; ++i) row.output.push_back(tok(rng) % 24);
    auto processed = reference_processed(logits, row.params, row.prompt, row.output, row.eos);
    EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, naive_argmax(processed));
  }
}

TEST(Sampler, PenaltiesApplyBeforeSampling) {
  std::vector<float> logits = {1.0f, 2.0f, 0.5f, 1.5f, 0.0f};
  Sampler sampler(logits.size());
  Row row;
  row.params.presence_penalty = 0.7f;
  row.params.frequency_penalty = 0.3f;
  row.params.repetition_penalty = 1.3f;
  row.prompt = {2, 4};
  row.output = {1, 1, 3};
  auto expected = softmax(reference_processed(logits, row.params, row.prompt, row.output, {}), 1);
  std::vector<int64_t> counts(logits.size(), 0);
  const int n = 20000;
  for (int s = 0; s < n; ++s) {
    row.seed = s;
    ++counts[sampler.sample(logits.data(), row.context()).token_id];
  }
  expect_matches_distribution(counts, expected, n);
}

TEST(Sampler, MinTokensMasksEosAndStopIds) {
  std::vector<float> logits = {0.0f, 5.0f, 4.0f, 3.0f, 1.0f};
  Sampler sampler(logits.size());
  Row row;
  row.params.temperature = 0.0f;
  row.params.min_tokens = 2;
  row.params.stop_token_ids = {2};
  row.eos = {1};
  row.output = {4};
  EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, 3);
  row.params.ignore_eos = true;
  EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, 1);
  row.params.ignore_eos = false;
  row.output = {4, 4};
  EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, 1);

  row.output = {4};
  row.params.temperature = 1.0f;
  for (int s = 0; s < 2000; ++s) {
    row.seed = s;
    int32_t t = sampler.sample(logits.data(), row.context()).token_id;
    EXPECT_TRUE(t != 1 && t != 2);
  }
}

TEST(Sampler, LogprobsMatchNaiveLogSoftmax) {
  const int64_t vocab = 3000;
  Sampler sampler(vocab);
  for (uint32_t t = 0; t < 6; ++t) {
    auto logits = random_logits(vocab, 500 + t, 4.0f);
    if (t % 2 == 1) {
      for (float& x : logits) x = std::round(x * 2.0f) / 2.0f;
    }
    logits[10] = logits[11] = logits[12] = 20.0f;
    logits[2500] = 20.0f;
    double mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (float x : logits) sum += std::exp(static_cast<double>(x) - mx);
    double log_z = mx + std::log(sum);
    std::vector<int32_t> ids(vocab);
    for (int32_t i = 0; i < vocab; ++i) ids[i] = i;
    std::stable_sort(ids.begin(), ids.end(),
                     [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    for (int32_t token : {0, 11, 2500, 1234}) {
      for (int32_t top_n : {6, 50}) {
        TokenLogprobs lp = sampler.compute_logprobs(logits.data(), token, top_n);
        EXPECT_EQ(lp.token_id, token);
        EXPECT_NEAR(lp.logprob, logits[token] - log_z, 1e-5);
        int64_t larger = 0;
        for (float x : logits) larger += x > logits[token];
        EXPECT_EQ(lp.rank, 1 + larger);
        ASSERT_EQ(lp.top.size(), static_cast<size_t>(top_n));
        for (int i = 0; i < top_n; ++i) {
          EXPECT_EQ(lp.top[i].first, ids[i]);
          EXPECT_NEAR(lp.top[i].second, logits[ids[i]] - log_z, 1e-5);
        }
      }
    }
    EXPECT_EQ(sampler.compute_logprobs(logits.data(), 12, 0).top.size(), 0u);
    EXPECT_EQ(sampler.compute_logprobs(logits.data(), 12, 0).rank, 1);
  }
  EXPECT_CHECK_FAILS(sampler.compute_logprobs(random_logits(vocab, 1).data(), vocab, 1));
}

TEST(Sampler, SampleReturnsLogprobsOfRawLogits) {
  std::vector<float> logits = {1.0f, 3.0f, 2.5f, -1.0f};
  Sampler sampler(logits.size());
  Row row;
  row.params.temperature = 0.0f;
  row.params.presence_penalty = 1.0f;
  row.params.logprobs = 2;
  row.output = {1};
  SampleResult r = sampler.sample(logits.data(), row.context());
  EXPECT_EQ(r.token_id, 2);
  double sum = 0.0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - 3.0);
  double log_z = 3.0 + std::log(sum);
  EXPECT_EQ(r.logprobs.token_id, 2);
  EXPECT_NEAR(r.logprobs.logprob, 2.5 - log_z, 1e-6);
  EXPECT_EQ(r.logprobs.rank, 2);
  ASSERT_EQ(r.logprobs.top.size(), 2u);
  EXPECT_EQ(r.logprobs.top[0].first, 1);
  EXPECT_EQ(r.logprobs.top[1].first, 2);
  row.params.logprobs = -1;
  EXPECT_EQ(sampler.sample(logits.data(), row.context()).logprobs.top.size(), 0u);

  TokenLogprobs all = sampler.compute_logprobs(logits.data(), 3, 10);
  ASSERT_EQ(all.top.size(), 4u);
  const int32_t order[] = {1, 2, 0, 3};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(all.top[i].first, order[i]);
  EXPECT_EQ(all.rank, 4);
}

TEST(Sampler, NanAndInfRobustness) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> logits = {nan, 1.0f, nan, 2.0f, -kInf, 0.5f};
  Sampler sampler(logits.size());
  Row row;
  row.params.temperature = 0.0f;
  EXPECT_EQ(sampler.sample(logits.data(), row.context()).token_id, 3);
  row.params.temperature = 1.0f;
  row.params.top_k = 2;
  row.params.top_p = 0.9f;
  for (int s = 0; s < 500; ++s) {
    row.seed = s;
    int32_t t = sampler.sample(logits.data(), row.context()).token_id;
    EXPECT_TRUE(t == 1 || t == 3);
  }
  row.params = SamplingParams();
  std::vector<float> with_inf = {0.0f, kInf, 3.0f, nan};
  Sampler small(with_inf.size());
  for (int s = 0; s < 100; ++s) {
    row.seed = s;
    EXPECT_EQ(small.sample(with_inf.data(), row.context()).token_id, 1);
  }
  std::vector<float> masked = {-kInf, 1.0f, nan, 0.5f};
  row.params.min_tokens = 1;
  row.eos = {1};
  row.params.stop_token_ids = {3};
  for (float temp : {0.0f, 1.0f}) {
    row.params.temperature = temp;
    EXPECT_EQ(small.sample(masked.data(), row.context()).token_id, 1);
  }
  TokenLogprobs lp = small.compute_logprobs(with_inf.data(), 1, 2);
  EXPECT_NEAR(lp.logprob, 0.0, 1e-7);
  EXPECT_EQ(lp.rank, 1);
  EXPECT_TRUE(small.compute_logprobs(with_inf.data(), 2, 0).logprob == -kInf);
  std::vector<float> two_inf = {kInf, 0.0f, kInf, nan};
  lp = small.compute_logprobs(two_inf.data(), 2, 4);
  EXPECT_NEAR(lp.logprob, -std::log(2.0), 1e-6);
  ASSERT_EQ(lp.top.size(), 4u);
  EXPECT_EQ(lp.top[0].first, 0);
  EXPECT_EQ(lp.top[1].first, 2);
  EXPECT_EQ(lp.top[2].first, 1);
  EXPECT_EQ(lp.top[3].first, 3);
  std::vector<float> all_nan(4, nan);
  row.params.logprobs = 3;
  SampleResult r = small.sample(all_nan.data(), row.context());
  EXPECT_TRUE(r.token_id >= 0 && r.token_id < 4);
}

TEST(SamplingParams, ValidateAcceptsDefaultsAndBoundaries) {
  EXPECT_TRUE(SamplingParams().validate().ok());
  SamplingParams p;
  p.temperature = 0.0f;
  p.top_p = 1.0f;
  p.top_k = -1;
  p.min_p = 1.0f;
  p.presence_penalty = -2.0f;
  p.frequency_penalty = 2.0f;
  p.repetition_penalty = 0.01f;
  p.max_tokens = 1;
  p.min_tokens = 1;
  p.logprobs = 20;
  p.prompt_logprobs = 0;
  p.stop_token_ids = {0, 5};
  EXPECT_TRUE(p.validate().ok());
}

TEST(SamplingParams, ValidateRejectsEachBadField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Bad {
    const char* field;
    void (*set)(SamplingParams&, float);
    std::vector<float> values;
  };
  std::vector<Bad> cases = {
      {"temperature", [](SamplingParams& p, float v) { p.temperature = v; }, {-0.1f, nan, kInf}},
      {"top_p", [](SamplingParams& p, float v) { p.top_p = v; }, {0.0f, -0.5f, 1.01f, nan}},
      {"top_k", [](SamplingParams& p, float v) { p.top_k = static_cast<int32_t>(v); }, {-2, -10}},
      {"min_p", [](SamplingParams& p, float v) { p.min_p = v; }, {-0.01f, 1.5f, nan}},
      {"presence_penalty", [](SamplingParams& p, float v) { p.presence_penalty = v; },
       {-2.01f, 2.5f, nan}},
      {"frequency_penalty", [](SamplingParams& p, float v) { p.frequency_penalty = v; },
       {-3.0f, 2.01f, nan}},
      {"repetition_penalty", [](SamplingParams& p, float v) { p.repetition_penalty = v; },
       {0.0f, -1.0f, nan, kInf}},
      {"max_tokens", [](SamplingParams& p, float v) { p.max_tokens = static_cast<int64_t>(v); },
       {0, -1}},
      {"min_tokens", [](SamplingParams& p, float v) { p.min_tokens = static_cast<int64_t>(v); },
       {-1, 17}},
      {"logprobs", [](SamplingParams& p, float v) { p.logprobs = static_cast<int32_t>(v); },
       {-2, 21}},
      {"prompt_logprobs",
       [](SamplingParams& p, float v) { p.prompt_logprobs = static_cast<int32_t>(v); },
       {-2, 100}},
      {"stop_token_ids",
       [](SamplingParams& p, float v) { p.stop_token_ids = {3, static_cast<int32_t>(v)}; },
       {-1}},
  };
  for (const Bad& c : cases) {
    for (float v : c.values) {
      SamplingParams p;
      c.set(p, v);
      Status s = p.validate();
      EXPECT_FALSE(s.ok());
      EXPECT_TRUE(s.code() == StatusCode::kInvalidArgument);
      EXPECT_TRUE(s.message().find(c.field) != std::string::npos);
    }
  }
}

TEST(SamplingParams, FinishReasonNames) {
  EXPECT_EQ(std::string(finish_reason_name(FinishReason::kStop)), "stop");
  EXPECT_EQ(std::string(finish_reason_name(FinishReason::kLength)), "length");
  EXPECT_EQ(std::string(finish_reason_name(FinishReason::kAbort)), "abort");
  EXPECT_EQ(std::string(finish_reason_name(FinishReason::kNone)), "");
}
