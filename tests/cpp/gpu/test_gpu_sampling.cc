// launch_sample (Backend::sample) on the GPU against the host Sampler on the same logits: greedy
// and seeded draws must give the host's token exactly (same counter-based uniform), for every
// filter and penalty, ties, NaN/inf rows and a large vocab; a row's token must not depend on
// its batch; draws over many steps follow the softmax; logprobs and ranks match the host's.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "gpu_test.h"
#include "kernels/sampling.cuh"
#include "sample/device_sampling.h"
#include "sample/sampler.h"

namespace {

using pagedllm::DType;
using pagedllm::SamplingContext;
using pagedllm::SamplingParams;
using namespace pagedllm_test;

constexpr float kInf = std::numeric_limits<float>::infinity();
const std::vector<int32_t> kEos = {2};

struct RowSpec {
  SamplingParams params;
  std::vector<int32_t> prompt;
  std::vector<int32_t> output;
  uint64_t seed = 0;
};

SamplingContext context(const RowSpec& spec) {
  SamplingContext ctx;
  ctx.params = &spec.params;
  ctx.prompt_token_ids = spec.prompt.data();
  ctx.num_prompt_tokens = static_cast<int64_t>(spec.prompt.size());
  ctx.output_token_ids = spec.output.data();
  ctx.num_output_tokens = static_cast<int64_t>(spec.output.size());
  ctx.seed = spec.seed;
  ctx.eos_token_ids = &kEos;
  return ctx;
}

struct Result {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::vector<int32_t> ranks;
};

// Runs launch_sample on logits [R, V] (row stride V + pad) for rows.
Result run_device(const std::vector<float>& logits, int64_t V, const std::vector<RowSpec>& specs, int64_t pad = 0) {
  const int64_t R = static_cast<int64_t>(specs.size());
  std::vector<SamplingContext> rows;
  for (const RowSpec& s : specs) rows.push_back(context(s));
  pagedllm::SamplePacker packer(V);
  const std::vector<int32_t>& packed = packer.pack(rows);
  const int64_t record_ints = R * pagedllm::kSampleRowInts;
  const int64_t N = static_cast<int64_t>(packed.size()) - record_ints;

  TestTensor d_logits(DType::kFloat32, {R, V}, {V + pad, 1});
  d_logits.fill(std::vector<double>(logits.begin(), logits.end()));
  TestTensor d_rows(DType::kInt32, {R, pagedllm::kSampleRowInts});
  d_rows.fill(std::vector<double>(packed.begin(), packed.begin() + record_ints));
  TestTensor d_lists(DType::kInt32, {std::max<int64_t>(N, 1)});
  std::vector<double> lists(packed.begin() + record_ints, packed.end());
  lists.resize(std::max<int64_t>(N, 1), 0.0);
  d_lists.fill(lists);
  TestTensor work(DType::kFloat32, {R, V});
  TestTensor tokens(DType::kInt32, {R});
  TestTensor logprobs(DType::kFloat32, {R});
  TestTensor ranks(DType::kInt32, {R});

  pagedllm::SampleParams p;
  p.logits = d_logits.dev();
  p.rows = d_rows.dev();
  p.token_lists = d_lists.dev();
  p.work = work.dev();
  p.token_ids = tokens.dev();
  p.logprobs = logprobs.dev();
  p.ranks = ranks.dev();
  pagedllm::launch_sample(p, gpu_stream());
  sync_device();
  const TestTensor t = tokens.fetch(), l = logprobs.fetch(), k = ranks.fetch();
  Result out;
  for (int64_t r = 0; r < R; ++r) {
    out.tokens.push_back(static_cast<int32_t>(t.at(r)));
    out.logprobs.push_back(static_cast<float>(l.at(r)));
    out.ranks.push_back(static_cast<int32_t>(k.at(r)));
  }
  return out;
}

// The host Sampler's tokens and logprobs for the same rows (logits [R, V] contiguous).
Result run_host(const std::vector<float>& logits, int64_t V, const std::vector<RowSpec>& specs) {
  pagedllm::Sampler sampler(V);
  Result out;
  for (size_t r = 0; r < specs.size(); ++r) {
    const float* row = logits.data() + r * V;
    const int32_t token = sampler.sample(row, context(specs[r])).token_id;
    const pagedllm::TokenLogprobs lp = sampler.compute_logprobs(row, token, 0);
    out.tokens.push_back(token);
    out.logprobs.push_back(lp.logprob);
    out.ranks.push_back(static_cast<int32_t>(lp.rank));
  }
  return out;
}

void expect_same_as_host(const std::vector<float>& logits, int64_t V, const std::vector<RowSpec>& specs,
                         const std::string& what, int64_t pad = 0) {
  const int64_t R = static_cast<int64_t>(specs.size());
  const Result host = run_host(logits, V, specs);
  const Result dev = run_device(logits, V, specs, pad);
  int mismatches = 0;
  for (int64_t r = 0; r < R; ++r) {
    if (dev.tokens[r] != host.tokens[r] && ++mismatches <= 5) {
      PAGEDLLM_TEST_FAIL_(false, what + ": row " + std::to_string(r) + " device token " +
                                     std::to_string(dev.tokens[r]) + ", host " + std::to_string(host.tokens[r]));
      continue;
    }
    EXPECT_EQ(dev.ranks[r], host.ranks[r]);
    const float a = dev.logprobs[r], b = host.logprobs[r];
    const bool same = (std::isnan(a) && std::isnan(b)) || a == b || std::fabs(a - b) <= 1e-4 + 1e-5 * std::fabs(b);
    if (!same) PAGEDLLM_TEST_FAIL_(false, what + ": logprob " + std::to_string(a) + " vs host " + std::to_string(b));
  }
  EXPECT_EQ(mismatches, 0);
}

std::vector<float> random_logits(Rng& rng, int64_t n, float scale, float quantum = 0.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) {
    v = dist(rng);
    if (quantum > 0.0f) v = std::round(v / quantum) * quantum;  // many exact ties
  }
  return x;
}

RowSpec random_spec(Rng& rng, int64_t V, bool greedy) {
  auto pick = [&](std::initializer_list<double> choices) {
    return *(choices.begin() + std::uniform_int_distribution<size_t>(0, choices.size() - 1)(rng));
  };
  RowSpec s;
  s.params.temperature = greedy ? 0.0f : static_cast<float>(pick({0.25, 0.7, 1.0, 1.0, 1.6}));
  s.params.top_k = static_cast<int32_t>(pick({0, 0, -1, 1, 5, 40, static_cast<double>(V - 1)}));
  s.params.top_p = static_cast<float>(pick({1.0, 1.0, 0.95, 0.6, 0.1}));
  s.params.min_p = static_cast<float>(pick({0.0, 0.0, 0.05, 0.3}));
  s.params.repetition_penalty = static_cast<float>(pick({1.0, 1.0, 1.3, 0.7}));
  s.params.frequency_penalty = static_cast<float>(pick({0.0, 0.0, 0.4, -0.2}));
  s.params.presence_penalty = static_cast<float>(pick({0.0, 0.0, 0.9, -0.5}));
  s.params.min_tokens = static_cast<int64_t>(pick({0, 0, 3, 50}));
  s.params.ignore_eos = pick({0, 1}) != 0;
  if (pick({0, 1})) s.params.stop_token_ids = {0, 1, static_cast<int32_t>(V - 1)};
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(std::min<int64_t>(V, 64) - 1));
  const int prompt = std::uniform_int_distribution<int>(0, 40)(rng);
  const int output = std::uniform_int_distribution<int>(0, 25)(rng);
  for (int i = 0; i < prompt; ++i) s.prompt.push_back(id(rng));
  for (int i = 0; i < output; ++i) s.output.push_back(id(rng));
  s.seed = rng();
  return s;
}

void random_batch_case(uint64_t seed, int64_t R, int64_t V, bool greedy, float quantum, int64_t pad) {
  Rng rng(seed);
  std::vector<RowSpec> specs;
  std::vector<float> logits;
  for (int64_t r = 0; r < R; ++r) {
    specs.push_back(random_spec(rng, V, greedy));
    const std::vector<float> row = random_logits(rng, V, 2.0f + static_cast<float>(r % 3), quantum);
    logits.insert(logits.end(), row.begin(), row.end());
  }
  expect_same_as_host(logits, V, specs,
                      "seed " + std::to_string(seed) + " V " + std::to_string(V) + (greedy ? " greedy" : " sampled"), pad);
}

GPU_OP_TEST(sample, greedy_matches_host) {
  random_batch_case(1, 33, 1000, true, 0.0f, 0);
  random_batch_case(2, 17, 32003, true, 0.25f, 5);  // ties -> lowest id
  random_batch_case(3, 4, 151936, true, 0.0f, 0);
}

GPU_OP_TEST(sample, seeded_draws_match_host) {
  for (uint64_t seed = 10; seed < 16; ++seed) random_batch_case(seed, 64, 517, false, 0.0f, 0);
  random_batch_case(20, 64, 4096, false, 0.5f, 3);  // ties inside top-k / top-p / the draw
  random_batch_case(21, 48, 32000, false, 0.0f, 0);
  random_batch_case(22, 8, 151936, false, 0.0f, 0);
  random_batch_case(23, 3, 1, false, 0.0f, 0);
}

GPU_OP_TEST(sample, uniform_logits_tie_break_matches_host) {
  const int64_t V = 3001;
  std::vector<RowSpec> specs;
  std::vector<float> logits;
  Rng rng(5);
  for (int r = 0; r < 40; ++r) {
    RowSpec s;
    s.params.top_p = r % 2 ? 0.37f : 1.0f;
    s.params.top_k = r % 3 == 0 ? 100 : 0;
    s.seed = rng();
    specs.push_back(s);
    logits.insert(logits.end(), V, 1.25f);
  }
  expect_same_as_host(logits, V, specs, "uniform logits");
}

GPU_OP_TEST(sample, nan_inf_rows_match_host) {
  const int64_t V = 700;
  Rng rng(9);
  std::vector<RowSpec> specs;
  std::vector<float> logits;
  for (int r = 0; r < 24; ++r) {
    std::vector<float> row = random_logits(rng, V, 3.0f);
    switch (r % 6) {
      case 0: std::fill(row.begin(), row.end(), -kInf); break;               // no candidate
      case 1: row[11] = kInf; row[300] = kInf; break;                           // +inf takes all
      case 2: for (int i = 0; i < V; i += 3) row[i] = std::nanf(""); break;   // NaN never wins
      case 3: std::fill(row.begin(), row.end(), std::nanf("")); break;
      case 4: for (int i = 0; i < V; i += 2) row[i] = -kInf; break;
      default: row[5] = -kInf; break;
    }
    RowSpec s = random_spec(rng, V, r % 4 == 0);
    specs.push_back(s);
    logits.insert(logits.end(), row.begin(), row.end());
  }
  expect_same_as_host(logits, V, specs, "nan/inf rows");
}

GPU_OP_TEST(sample, token_is_batch_invariant) {
  const int64_t V = 5000, R = 37;
  Rng rng(77);
  std::vector<RowSpec> specs;
  std::vector<float> logits;
  for (int64_t r = 0; r < R; ++r) {
    specs.push_back(random_spec(rng, V, false));
    const std::vector<float> row = random_logits(rng, V, 1.5f);
    logits.insert(logits.end(), row.begin(), row.end());
  }
  const Result all = run_device(logits, V, specs);
  std::vector<RowSpec> reversed(specs.rbegin(), specs.rend());
  std::vector<float> reversed_logits;
  for (int64_t r = R - 1; r >= 0; --r) reversed_logits.insert(reversed_logits.end(), logits.begin() + r * V, logits.begin() + (r + 1) * V);
  const Result back = run_device(reversed_logits, V, reversed);
  for (int64_t r = 0; r < R; ++r) {
    EXPECT_EQ(all.tokens[r], back.tokens[R - 1 - r]);
    const std::vector<float> one(logits.begin() + r * V, logits.begin() + (r + 1) * V);
    const Result single = run_device(one, V, {specs[r]});
    EXPECT_EQ(all.tokens[r], single.tokens[0]);
  }
}

GPU_OP_TEST(sample, draws_follow_softmax_and_host) {
  const int64_t V = 10, R = 20000;
  const std::vector<float> row = {0.5f, 1.0f, -1.0f, 2.0f, 0.0f, 0.3f, -0.2f, 1.7f, -3.0f, 0.9f};
  std::vector<RowSpec> specs(R);
  std::vector<float> logits;
  for (int64_t r = 0; r < R; ++r) {
    specs[r].output.assign(static_cast<size_t>(r % 7), 3);  // steps vary with the output length
    specs[r].seed = 1234 + static_cast<uint64_t>(r / 7);
    logits.insert(logits.end(), row.begin(), row.end());
  }
  const Result dev = run_device(logits, V, specs);
  const Result host = run_host(logits, V, specs);
  std::vector<double> counts(V, 0.0);
  int mismatches = 0;
  for (int64_t r = 0; r < R; ++r) {
    mismatches += dev.tokens[r] != host.tokens[r];
    counts[dev.tokens[r]] += 1.0;
  }
  EXPECT_EQ(mismatches, 0);
  double z = 0.0;
  for (float x : row) z += std::exp(static_cast<double>(x));
  for (int64_t i = 0; i < V; ++i) {
    const double p = std::exp(static_cast<double>(row[i])) / z;
    const double sigma = std::sqrt(R * p * (1.0 - p));
    EXPECT_NEAR(counts[i], R * p, 5.0 * sigma + 1.0);
  }
}

// The engine's path: DeviceSampler on the GPU backend (Backend::sample, packed upload, read-back
// of tokens, ranks and logprobs) against the host Sampler, over several steps of one sampler.
GPU_OP_TEST(sample, device_sampler_through_backend) {
  std::string error;
  std::unique_ptr<pagedllm::Backend> backend = pagedllm::create_backend("cuda", 1, &error);
  ASSERT_TRUE(backend != nullptr);
  ASSERT_TRUE(backend->supports_device_sampling());
  const int64_t V = 32000, max_rows = 16;
  pagedllm::DeviceSampler device(backend.get(), V, max_rows);
  pagedllm::Buffer d_logits = backend->allocate_buffer(max_rows * V * sizeof(float));
  pagedllm::Sampler sampler(V);
  Rng rng(4242);
  for (int step = 0; step < 5; ++step) {
    const int64_t R = step == 4 ? max_rows : 3 * step + 1;
    std::vector<RowSpec> specs;
    std::vector<float> logits;
    for (int64_t r = 0; r < R; ++r) {
      specs.push_back(random_spec(rng, V, r % 5 == 0));
      specs.back().params.logprobs = r % 2 ? 0 : -1;
      const std::vector<float> row = random_logits(rng, V, 2.5f);
      logits.insert(logits.end(), row.begin(), row.end());
    }
    backend->copy_to_device(d_logits.data(), logits.data(), logits.size() * sizeof(float));
    std::vector<SamplingContext> rows;
    for (const RowSpec& s : specs) rows.push_back(context(s));
    std::vector<int32_t> tokens;
    std::vector<pagedllm::TokenLogprobs> logprobs;
    device.sample(d_logits.as_tensor(DType::kFloat32, {max_rows, V}).slice_rows(0, R), rows, &tokens, &logprobs);
    for (int64_t r = 0; r < R; ++r) {
      const pagedllm::SampleResult want = sampler.sample(logits.data() + r * V, rows[r]);
      EXPECT_EQ(tokens[r], want.token_id);
      if (specs[r].params.logprobs < 0) continue;
      EXPECT_EQ(logprobs[r].token_id, want.logprobs.token_id);
      EXPECT_EQ(logprobs[r].rank, want.logprobs.rank);
      EXPECT_NEAR(logprobs[r].logprob, want.logprobs.logprob, 1e-4);
    }
  }
}

HOST_TEST(GpuChecks, sample_rejects_bad_shapes) {
  float f[64] = {};
  int32_t ids[64] = {};
  alignas(8) int32_t records[2 * pagedllm::kSampleRowInts] = {};
  pagedllm::SampleParams p;
  p.logits = pagedllm::Tensor::contiguous(f, DType::kFloat32, {2, 8});
  p.rows = pagedllm::Tensor::contiguous(records, DType::kInt32, {2, pagedllm::kSampleRowInts});
  p.token_lists = pagedllm::Tensor::contiguous(ids, DType::kInt32, {4});
  p.work = pagedllm::Tensor::contiguous(f + 16, DType::kFloat32, {2, 8});
  p.token_ids = pagedllm::Tensor::contiguous(ids + 8, DType::kInt32, {2});
  pagedllm::SampleParams bad = p;
  bad.work = pagedllm::Tensor::contiguous(f + 16, DType::kFloat32, {2, 7});
  EXPECT_CHECK_FAILS(pagedllm::launch_sample(bad, nullptr));
  bad = p;
  bad.rows = pagedllm::Tensor::contiguous(records, DType::kInt32, {2, pagedllm::kSampleRowInts - 1});
  EXPECT_CHECK_FAILS(pagedllm::launch_sample(bad, nullptr));
  bad = p;
  bad.logits = pagedllm::Tensor::contiguous(f, DType::kBFloat16, {2, 8});
  EXPECT_CHECK_FAILS(pagedllm::launch_sample(bad, nullptr));
  bad = p;
  bad.token_ids = pagedllm::Tensor::contiguous(ids + 8, DType::kInt32, {3});
  EXPECT_CHECK_FAILS(pagedllm::launch_sample(bad, nullptr));
  bad = p;
  bad.logprobs = pagedllm::Tensor::contiguous(f + 40, DType::kFloat32, {1});
  EXPECT_CHECK_FAILS(pagedllm::launch_sample(bad, nullptr));
}

}  // namespace
