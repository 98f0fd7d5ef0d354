// Parallel samples in the scheduler: siblings share the prompt's full blocks (caching on and
// off), wait while the first computes them, and keep ref counts consistent under random
// workloads with chunked prefill, preemption and aborts.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kv/kv_cache_manager.h"
#include "sched/scheduler.h"
#include "test_harness.h"

using pagedllm::KVCacheManager;
using pagedllm::Request;
using pagedllm::Scheduler;
using pagedllm::SchedulerConfig;
using pagedllm::SchedulerOutput;

namespace {

std::unique_ptr<Request> make_sample(int64_t idx, uint64_t group, const std::vector<int32_t>& prompt,
                                     int64_t max_tokens) {
  auto r = std::make_unique<Request>();
  r->request_id = "r" + std::to_string(idx);
  r->seq_id = 1000 + static_cast<uint64_t>(idx);
  r->arrival_idx = idx;
  r->group_id = group;
  r->token_ids = prompt;
  r->num_prompt_tokens = static_cast<int64_t>(prompt.size());
  r->params.max_tokens = max_tokens;
  r->params.ignore_eos = true;
  return r;
}

SchedulerConfig make_config(int64_t budget) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_model_len = 512;
  c.enable_chunked_prefill = true;
  return c;
}

SchedulerOutput step(Scheduler& s, int32_t token) {
  SchedulerOutput out = s.schedule();
  s.check_invariants();
  std::vector<int32_t> sampled(out.scheduled.size(), token);
  s.update(out, sampled);
  s.check_invariants();
  return out;
}

void check_shares_prompt(bool caching) {
  KVCacheManager kv(64, 4, caching);
  Scheduler s(make_config(32), &kv);
  const std::vector<int32_t> prompt = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};  // 2 full blocks + 2
  for (int64_t i = 0; i < 3; ++i) s.add_request(make_sample(i, 7, prompt, 4));
  SchedulerOutput out = step(s, 3);
  ASSERT_EQ(out.scheduled.size(), 1u);  // the siblings wait for the prompt
  EXPECT_EQ(out.scheduled[0].num_tokens, 10);
  EXPECT_EQ(s.num_waiting(), 2);
  out = step(s, 3);
  ASSERT_EQ(out.scheduled.size(), 3u);
  EXPECT_EQ(out.scheduled[1].num_computed_before, 8);  // starts from the 2 shared blocks
  EXPECT_EQ(out.scheduled[1].num_tokens, 2);           // recomputes the partial block
  EXPECT_EQ(out.scheduled[2].num_tokens, 2);
  const std::vector<int32_t>& t0 = kv.block_table(1000);
  const std::vector<int32_t>& t1 = kv.block_table(1001);
  const std::vector<int32_t>& t2 = kv.block_table(1002);
  EXPECT_TRUE(std::equal(t0.begin(), t0.begin() + 2, t1.begin()));
  EXPECT_TRUE(std::equal(t0.begin(), t0.begin() + 2, t2.begin()));
  EXPECT_TRUE(t0[2] != t1[2] && t1[2] != t2[2] && t0[2] != t2[2]);
  EXPECT_EQ(kv.usage().num_blocks_saved(), 4);
  while (s.has_unfinished_requests()) step(s, 3);
  EXPECT_EQ(kv.num_used_blocks(), 0);
}

}  // namespace

TEST(ParallelSampling, SiblingsShareThePromptCachingOff) { check_shares_prompt(false); }

TEST(ParallelSampling, SiblingsShareThePromptCachingOn) { check_shares_prompt(true); }

TEST(ParallelSampling, ShortPromptAndPromptLogprobsDoNotWait) {
  KVCacheManager kv(64, 4);
  Scheduler s(make_config(32), &kv);
  s.add_request(make_sample(0, 1, {5, 6, 7, 8}, 2));  // no full block before the last token
  s.add_request(make_sample(1, 1, {5, 6, 7, 8}, 2));
  auto logprobs = make_sample(2, 2, {1, 2, 3, 4, 5, 6}, 2);
  auto sibling = make_sample(3, 2, {1, 2, 3, 4, 5, 6}, 2);
  sibling->params.prompt_logprobs = 0;
  s.add_request(std::move(logprobs));
  s.add_request(std::move(sibling));
  EXPECT_EQ(step(s, 3).scheduled.size(), 4u);
  EXPECT_EQ(kv.usage().num_blocks_saved(), 0);
  while (s.has_unfinished_requests()) step(s, 3);
}

TEST(ParallelSampling, RandomWorkloadsKeepRefCountsConsistent) {
  for (int caching = 0; caching < 2; ++caching) {
    for (uint32_t seed = 0; seed < 20; ++seed) {
      std::mt19937 rng(seed);
      KVCacheManager kv(24, 4, caching == 1);
      Scheduler s(make_config(1 + rng() % 24), &kv);
      int64_t next = 0;
      uint64_t group = 1;
      for (int round = 0; round < 40; ++round) {
        if (rng() % 3 == 0) {
          std::vector<int32_t> prompt(1 + rng() % 30);
          for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % 4);
          const int64_t n = 1 + rng() % 4;
          for (int64_t i = 0; i < n; ++i) s.add_request(make_sample(next++, n > 1 ? group : 0, prompt, 1 + rng() % 16));
          ++group;
        }
        if (rng() % 7 == 0 && next > 0) s.abort("r" + std::to_string(rng() % next));
        if (s.has_unfinished_requests()) step(s, static_cast<int32_t>(rng() % 4));
      }
      while (s.has_unfinished_requests()) step(s, 1);
      EXPECT_EQ(kv.num_used_blocks(), 0);
    }
  }
}
