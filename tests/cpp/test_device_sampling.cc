// Device sampling, host side (sample/device_sampling.h): packing of rows into SampleRowParams
// records and token lists, the decision of which steps the device may sample, and a sequential
// model of the GPU kernel's algorithm (cuda/kernels/sampling.cu: key searches instead of
// sorts, double exp rounded to float) run on packed rows against the host Sampler, so the
// algorithm is checked on machines without a GPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "sample/device_sampling.h"
#include "sample/sampler.h"
#include "sampling_kernel_model.h"
#include "no_op_backend.h"
#include "test_harness.h"
#include "util/check.h"

using namespace pagedllm;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

struct RowSpec {
  SamplingParams params;
  std::vector<int32_t> prompt, output;
  uint64_t seed = 0;
};

const std::vector<int32_t> kEos = {2, 7};

SamplingContext context(const RowSpec& s) {
  SamplingContext ctx;
  ctx.params = &s.params;
  ctx.prompt_token_ids = s.prompt.data();
  ctx.num_prompt_tokens = static_cast<int64_t>(s.prompt.size());
  ctx.output_token_ids = s.output.data();
  ctx.num_output_tokens = static_cast<int64_t>(s.output.size());
  ctx.seed = s.seed;
  ctx.eos_token_ids = &kEos;
  return ctx;
}

std::vector<int32_t> list(const std::vector<int32_t>& packed, int64_t R, int32_t begin, int32_t count) {
  auto first = packed.begin() + R * kSampleRowInts + begin;
  return std::vector<int32_t>(first, first + count);
}

}  // namespace

TEST(DeviceSampling, PacksParamsAndCounters) {
  RowSpec a, b;
  a.params.temperature = 0.5f;
  a.params.top_p = 0.9f;
  a.params.top_k = 12;
  a.params.min_p = 0.1f;
  a.seed = 0xF00DF00DF00DF00Dull;
  a.output = {4, 4};
  b.params.temperature = 0.0f;
  b.seed = 3;
  SamplePacker packer(100);
  const std::vector<int32_t>& packed = packer.pack({context(a), context(b)});
  ASSERT_EQ(static_cast<int64_t>(packed.size()), 2 * kSampleRowInts);
  const SampleRowParams ra = SamplePacker::row(packed, 0), rb = SamplePacker::row(packed, 1);
  EXPECT_EQ(ra.temperature, 0.5f);
  EXPECT_EQ(ra.top_p, 0.9f);
  EXPECT_EQ(ra.top_k, 12);
  EXPECT_EQ(ra.min_p, 0.1f);
  EXPECT_EQ(ra.seed, 0xF00DF00DF00DF00Dull);
  EXPECT_EQ(ra.step, 2);
  EXPECT_EQ(ra.num_mask_ids + ra.num_repetition_ids + ra.num_output_ids, 0);
  EXPECT_EQ(rb.temperature, 0.0f);
  EXPECT_EQ(rb.step, 0);
  EXPECT_EQ(rb.seed, uint64_t{3});
}

TEST(DeviceSampling, PacksMasksAndPenaltyLists) {
  RowSpec s;
  s.params.min_tokens = 4;
  s.params.stop_token_ids = {5, 500};  // 500 is outside the vocab: skipped, as the Sampler does
  s.params.repetition_penalty = 1.2f;
  s.params.frequency_penalty = 0.5f;
  s.prompt = {1, 9, 9, 3};
  s.output = {3, 8, 3};
  RowSpec done = s;
  done.output = {3, 8, 3, 3};   // min_tokens reached: no mask
  done.params.ignore_eos = true;
  RowSpec no_eos = s;
  no_eos.params.ignore_eos = true;
  SamplePacker packer(100);
  const std::vector<int32_t> packed = packer.pack({context(s), context(done), context(no_eos)});
  const SampleRowParams r0 = SamplePacker::row(packed, 0), r1 = SamplePacker::row(packed, 1),
                        r2 = SamplePacker::row(packed, 2);
  EXPECT_TRUE(list(packed, 3, r0.mask_begin, r0.num_mask_ids) == std::vector<int32_t>({5, 2, 7}));
  EXPECT_TRUE(list(packed, 3, r0.repetition_begin, r0.num_repetition_ids) == std::vector<int32_t>({1, 9, 3, 8}));
  EXPECT_TRUE(list(packed, 3, r0.output_begin, 2 * r0.num_output_ids) == std::vector<int32_t>({3, 8, 2, 1}));
  EXPECT_EQ(r1.num_mask_ids, 0);
  EXPECT_TRUE(list(packed, 3, r1.output_begin, 2 * r1.num_output_ids) == std::vector<int32_t>({3, 8, 3, 1}));
  EXPECT_TRUE(list(packed, 3, r2.mask_begin, r2.num_mask_ids) == std::vector<int32_t>({5}));
  // Scratch is clean: packing again gives the same lists.
  EXPECT_TRUE(packer.pack({context(s), context(done), context(no_eos)}) == packed);
}

TEST(DeviceSampling, PackRejectsIdsOutsideVocab) {
  RowSpec s;
  s.params.repetition_penalty = 1.1f;
  s.prompt = {1, 100};
  SamplePacker packer(100);
  EXPECT_CHECK_FAILS(packer.pack({context(s)}));
  RowSpec t;
  t.params.presence_penalty = 0.2f;
  t.output = {-1};
  EXPECT_CHECK_FAILS(packer.pack({context(t)}));
}

TEST(DeviceSampling, DecisionKeepsHostOnlyFeaturesOnTheHost) {
  SamplingParams p;
  EXPECT_TRUE(device_can_sample(p));
  p.logprobs = 0;
  EXPECT_TRUE(device_can_sample(p));
  p.logprobs = 1;
  EXPECT_FALSE(device_can_sample(p));
  p.logprobs = -1;
  p.prompt_logprobs = 0;
  EXPECT_FALSE(device_can_sample(p));

  std::vector<std::unique_ptr<Request>> requests;
  auto add = [&](int32_t logprobs, int32_t prompt_logprobs, bool samples, SchedulerOutput* out) {
    auto r = std::make_unique<Request>();
    r->token_ids = {1, 2, 3, 4};
    r->num_prompt_tokens = 3;
    r->seed = 40 + requests.size();
    r->params.logprobs = logprobs;
    r->params.prompt_logprobs = prompt_logprobs;
    ScheduledRequest s;
    s.request = r.get();
    s.num_tokens = 1;
    s.samples = samples;
    out->scheduled.push_back(s);
    requests.push_back(std::move(r));
  };
  std::vector<SamplingContext> rows;
  SchedulerOutput plain;
  add(-1, -1, true, &plain);
  add(0, -1, false, &plain);
  add(0, -1, true, &plain);
  EXPECT_TRUE(collect_device_rows(plain, &kEos, nullptr, &rows));
  ASSERT_EQ(rows.size(), size_t{2});
  EXPECT_EQ(rows[0].seed, uint64_t{40});
  EXPECT_EQ(rows[1].seed, uint64_t{42});
  EXPECT_EQ(rows[1].num_output_tokens, 1);
  EXPECT_EQ(rows[1].num_prompt_tokens, 3);
  EXPECT_TRUE(rows[1].eos_token_ids == &kEos);
  EXPECT_FALSE(collect_device_rows(plain, &kEos, [](const Request& r) { return r.seed == 41; }, &rows));

  SchedulerOutput top_logprobs;
  add(-1, -1, true, &top_logprobs);
  add(5, -1, true, &top_logprobs);
  EXPECT_FALSE(collect_device_rows(top_logprobs, &kEos, nullptr, &rows));
  SchedulerOutput prompt_logprobs;
  add(-1, 2, false, &prompt_logprobs);
  add(-1, -1, true, &prompt_logprobs);
  EXPECT_FALSE(collect_device_rows(prompt_logprobs, &kEos, nullptr, &rows));
  SchedulerOutput nothing_samples;
  add(-1, -1, false, &nothing_samples);
  EXPECT_FALSE(collect_device_rows(nothing_samples, &kEos, nullptr, &rows));
}

// The GPU algorithm, run sequentially on packed rows, picks the host Sampler's token.
TEST(DeviceSampling, KernelAlgorithmMatchesHostSampler) {
  std::mt19937_64 rng(2024);
  auto pick = [&](std::initializer_list<double> c) {
    return *(c.begin() + std::uniform_int_distribution<size_t>(0, c.size() - 1)(rng));
  };
  int mismatches = 0, cases = 0;
  for (int64_t V : {1, 2, 17, 300, 5000}) {
    Sampler sampler(V);
    SamplePacker packer(V);
    for (int trial = 0; trial < 300; ++trial) {
      RowSpec s;
      s.params.temperature = static_cast<float>(pick({0.0, 0.3, 1.0, 1.0, 2.0}));
      s.params.top_k = static_cast<int32_t>(pick({0, 1, 3, 50, static_cast<double>(V - 1)}));
      s.params.top_p = static_cast<float>(pick({1.0, 0.9, 0.5, 0.05}));
      s.params.min_p = static_cast<float>(pick({0.0, 0.1, 0.5}));
      s.params.repetition_penalty = static_cast<float>(pick({1.0, 1.5, 0.8}));
      s.params.frequency_penalty = static_cast<float>(pick({0.0, 0.3}));
      s.params.presence_penalty = static_cast<float>(pick({0.0, 0.6}));
      s.params.min_tokens = static_cast<int64_t>(pick({0, 5}));
      s.params.stop_token_ids = {0};
      std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(std::min<int64_t>(V, 40) - 1));
      for (int i = 0, n = static_cast<int>(pick({0, 3, 30})); i < n; ++i) s.prompt.push_back(id(rng));
      for (int i = 0, n = static_cast<int>(pick({0, 2, 12})); i < n; ++i) s.output.push_back(id(rng));
      s.seed = rng();
      const double quantum = pick({0.0, 0.5, 100.0});  // 100: (almost) all logits tie
      std::normal_distribution<float> dist(0.0f, 2.5f);
      std::vector<float> logits(V);
      for (float& x : logits) x = quantum > 0 ? static_cast<float>(std::round(dist(rng) / quantum) * quantum) : dist(rng);
      if (trial % 29 == 0) logits[0] = kInf;
      if (trial % 31 == 0) std::fill(logits.begin(), logits.end(), -kInf);
      if (trial % 37 == 0) logits[V - 1] = std::nanf("");
      const std::vector<int32_t> packed = packer.pack({context(s)});
      const int token = model_kernel(logits.data(), static_cast<int>(V), SamplePacker::row(packed, 0),
                                     packed.data() + kSampleRowInts);
      mismatches += token != sampler.sample(logits.data(), context(s)).token_id;
      ++cases;
    }
  }
  EXPECT_EQ(cases, 1500);
  EXPECT_EQ(mismatches, 0);
}

namespace {

// A host "device" that claims device sampling and runs model_kernel in sample(), so that
// DeviceSampler's upload, op call and read-back (token, rank and logprob layout) run here.
class FakeSamplingBackend : public NoOpModelBackend {
 public:
  std::string name() const override { return "fake"; }
  DType activation_dtype(DType) const override { return DType::kFloat32; }
  size_t default_kv_cache_bytes() const override { return 0; }
  void* allocate(size_t nbytes) override { return std::calloc((nbytes + 63) / 64 * 64 + 64, 1); }
  void deallocate(void* data) override { std::free(data); }
  void copy_to_device(void* dst, const void* src, size_t nbytes) override { std::memcpy(dst, src, nbytes); }
  void copy_to_host(void* dst, const void* src, size_t nbytes) override { std::memcpy(dst, src, nbytes); }
  void synchronize() override {}
  Tensor upload_weight(const Tensor& src, DType, Buffer*) override { return src; }
  bool supports_device_sampling() const override { return true; }
  void sample(const SampleParams& p) override {
    ++num_calls;
    const int64_t R = p.logits.shape[0], V = p.logits.shape[1];
    Sampler sampler(V);
    for (int64_t r = 0; r < R; ++r) {
      const float* row = p.logits.ptr<float>() + r * p.logits.stride[0];
      SampleRowParams record;
      std::memcpy(static_cast<void*>(&record), p.rows.ptr<int32_t>() + r * kSampleRowInts, sizeof(record));
      const int token = model_kernel(row, static_cast<int>(V), record, p.token_lists.ptr<int32_t>());
      p.token_ids.ptr<int32_t>()[r] = token;
      if (p.logprobs.data == nullptr) continue;
      const TokenLogprobs lp = sampler.compute_logprobs(row, token, 0);
      p.logprobs.ptr<float>()[r] = lp.logprob;
      p.ranks.ptr<int32_t>()[r] = static_cast<int32_t>(lp.rank);
    }
  }
  int num_calls = 0;
};

}  // namespace

TEST(DeviceSampling, DeviceSamplerMatchesHostThroughTheBackend) {
  const int64_t V = 257, max_rows = 6;
  FakeSamplingBackend backend;
  DeviceSampler device(&backend, V, max_rows);
  Sampler sampler(V);
  std::mt19937_64 rng(99);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  for (int step = 0; step < 4; ++step) {
    const int64_t R = step == 3 ? max_rows : 1 + step;
    std::vector<RowSpec> specs(R);
    std::vector<float> logits(R * V);
    for (float& x : logits) x = dist(rng);
    for (int64_t r = 0; r < R; ++r) {
      RowSpec& s = specs[r];
      s.params.temperature = r % 3 == 0 ? 0.0f : 0.8f;
      s.params.top_p = r % 2 ? 0.9f : 1.0f;
      s.params.logprobs = r % 2 ? 0 : -1;
      s.params.repetition_penalty = 1.2f;
      s.params.frequency_penalty = 0.3f;
      for (int i = 0; i < 20 * (step + 1); ++i) s.prompt.push_back(static_cast<int32_t>(rng() % V));  // lists grow
      for (int i = 0; i < step; ++i) s.output.push_back(static_cast<int32_t>(rng() % V));
      s.seed = rng();
    }
    std::vector<SamplingContext> rows;
    for (const RowSpec& s : specs) rows.push_back(context(s));
    std::vector<int32_t> tokens;
    std::vector<TokenLogprobs> logprobs;
    device.sample(Tensor::contiguous(logits.data(), DType::kFloat32, {R, V}), rows, &tokens, &logprobs);
    ASSERT_EQ(static_cast<int64_t>(tokens.size()), R);
    ASSERT_EQ(static_cast<int64_t>(logprobs.size()), R);
    for (int64_t r = 0; r < R; ++r) {
      const SampleResult want = sampler.sample(logits.data() + r * V, rows[r]);
      EXPECT_EQ(tokens[r], want.token_id);
      if (specs[r].params.logprobs < 0) {
        EXPECT_EQ(logprobs[r].rank, 0);
        continue;
      }
      EXPECT_EQ(logprobs[r].token_id, want.logprobs.token_id);
      EXPECT_EQ(logprobs[r].rank, want.logprobs.rank);
      EXPECT_EQ(logprobs[r].logprob, want.logprobs.logprob);
      EXPECT_TRUE(logprobs[r].top.empty());
    }
  }
  EXPECT_EQ(backend.num_calls, 4);
  std::vector<float> too_many((max_rows + 1) * V, 0.0f);
  std::vector<RowSpec> specs(max_rows + 1);
  std::vector<SamplingContext> rows;
  for (const RowSpec& s : specs) rows.push_back(context(s));
  std::vector<int32_t> tokens;
  std::vector<TokenLogprobs> logprobs;
  EXPECT_CHECK_FAILS(device.sample(Tensor::contiguous(too_many.data(), DType::kFloat32, {max_rows + 1, V}), rows,
                                   &tokens, &logprobs));
}
