// Driver of run_sampling_emulation.sh: random rows (every filter and penalty, ties, NaN/inf
// rows) packed by SamplePacker, run through launch_sample on the emulated GPU, compared with the
// host Sampler (token exactly; logprob within 1e-4; rank exactly). Exit status 1 on a mismatch.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "kernels/sampling.cuh"
#include "sample/device_sampling.h"
#include "sample/sampler.h"

// DeviceSampler (not used here) needs these Backend/Buffer members; the emulation never calls them.
namespace pagedllm {
Buffer::~Buffer() {}
Buffer& Buffer::operator=(Buffer&&) noexcept { return *this; }
Buffer Backend::allocate_buffer(size_t) { std::abort(); }
Tensor Buffer::as_tensor(DType, std::initializer_list<int64_t>) const { std::abort(); }
}  // namespace pagedllm

namespace {

using namespace pagedllm;

constexpr float kInf = std::numeric_limits<float>::infinity();
const std::vector<int32_t> kEos = {2};

struct RowSpec {
  SamplingParams params;
  std::vector<int32_t> prompt, output;
  uint64_t seed = 0;
};

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

int run_batch(std::mt19937_64& rng, int64_t V, int R, int kind) {
  auto pick = [&](std::initializer_list<double> c) {
    return *(c.begin() + std::uniform_int_distribution<size_t>(0, c.size() - 1)(rng));
  };
  std::vector<RowSpec> specs(R);
  std::vector<float> logits;
  for (int r = 0; r < R; ++r) {
    RowSpec& s = specs[r];
    s.params.temperature = static_cast<float>(pick({0.0, 0.5, 1.0, 1.0, 1.7}));
    s.params.top_k = static_cast<int32_t>(pick({0, 1, 4, 30, static_cast<double>(V - 1)}));
    s.params.top_p = static_cast<float>(pick({1.0, 0.9, 0.4}));
    s.params.min_p = static_cast<float>(pick({0.0, 0.1}));
    s.params.repetition_penalty = static_cast<float>(pick({1.0, 1.3}));
    s.params.frequency_penalty = static_cast<float>(pick({0.0, 0.4}));
    s.params.presence_penalty = static_cast<float>(pick({0.0, -0.5}));
    s.params.min_tokens = static_cast<int64_t>(pick({0, 4}));
    s.params.stop_token_ids = {0};
    std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(std::min<int64_t>(V, 30) - 1));
    for (int i = 0, n = static_cast<int>(pick({0, 5, 20})); i < n; ++i) s.prompt.push_back(id(rng));
    for (int i = 0, n = static_cast<int>(pick({0, 3, 9})); i < n; ++i) s.output.push_back(id(rng));
    s.seed = rng();
    std::normal_distribution<float> dist(0.0f, 2.0f);
    std::vector<float> row(V);
    for (float& x : row) x = kind == 1 ? std::round(dist(rng) * 2.0f) / 2.0f : dist(rng);
    if (kind == 2) {
      if (r % 4 == 0) std::fill(row.begin(), row.end(), -kInf);
      if (r % 4 == 1) row[V / 2] = kInf;
      if (r % 4 == 2) row[1] = std::nanf("");
    }
    if (kind == 3) std::fill(row.begin(), row.end(), 0.75f);
    logits.insert(logits.end(), row.begin(), row.end());
  }
  std::vector<SamplingContext> rows;
  for (const RowSpec& s : specs) rows.push_back(context(s));
  SamplePacker packer(V);
  std::vector<int32_t> packed = packer.pack(rows);
  packed.push_back(0);  // token_lists never empty
  std::vector<float> work(static_cast<size_t>(R * V));
  std::vector<int32_t> tokens(R, -7), ranks(R, -7);
  std::vector<float> logprobs(R, std::nanf(""));
  SampleParams p;
  p.logits = Tensor::contiguous(logits.data(), DType::kFloat32, {R, V});
  p.rows = Tensor::contiguous(packed.data(), DType::kInt32, {R, kSampleRowInts});
  p.token_lists = Tensor::contiguous(packed.data() + R * kSampleRowInts, DType::kInt32,
                                     {static_cast<int64_t>(packed.size()) - R * kSampleRowInts});
  p.work = Tensor::contiguous(work.data(), DType::kFloat32, {R, V});
  p.token_ids = Tensor::contiguous(tokens.data(), DType::kInt32, {R});
  p.logprobs = Tensor::contiguous(logprobs.data(), DType::kFloat32, {R});
  p.ranks = Tensor::contiguous(ranks.data(), DType::kInt32, {R});
  launch_sample(p, nullptr);

  Sampler sampler(V);
  int failures = 0;
  for (int r = 0; r < R; ++r) {
    const float* row = logits.data() + static_cast<int64_t>(r) * V;
    const int32_t want = sampler.sample(row, rows[r]).token_id;
    const TokenLogprobs lp = sampler.compute_logprobs(row, tokens[r] >= 0 && tokens[r] < V ? tokens[r] : 0, 0);
    const bool logprob_ok = (std::isnan(lp.logprob) && std::isnan(logprobs[r])) || lp.logprob == logprobs[r] ||
                            std::fabs(lp.logprob - logprobs[r]) <= 1e-4;
    if (tokens[r] != want || ranks[r] != lp.rank || !logprob_ok) {
      std::printf("MISMATCH V %lld kind %d row %d: token %d (host %d), rank %d (host %lld), logprob %g (host %g)\n",
                  static_cast<long long>(V), kind, r, tokens[r], want, ranks[r], static_cast<long long>(lp.rank),
                  logprobs[r], lp.logprob);
      ++failures;
    }
  }
  return failures;
}

}  // namespace

int main() {
  std::mt19937_64 rng(31337);
  int failures = 0, rows = 0;
  const struct { int64_t V; int R; int kind; } cases[] = {
      {1, 2, 0}, {5, 6, 0}, {700, 8, 0}, {1500, 6, 1}, {333, 8, 2}, {2100, 4, 3}, {4097, 3, 0}};
  for (const auto& c : cases) {
    failures += run_batch(rng, c.V, c.R, c.kind);
    rows += c.R;
  }
  std::printf("sampling emulation: %d rows, %d mismatches\n", rows, failures);
  return failures == 0 ? 0 : 1;
}
