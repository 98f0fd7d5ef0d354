// Prefix caching through the scheduler: admission starts at the cached prefix, the counters,
// prompt_logprobs requests, preemption, and a randomized shared-prefix workload that simulates
// every slot's KV and checks that each scheduled request reads only its own prefix's KV.
#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kv/kv_cache_manager.h"
#include "sched/scheduler.h"
#include "test_harness.h"
#include "util/check.h"

using pagedllm::KVCacheManager;
using pagedllm::Request;
using pagedllm::RequestStatus;
using pagedllm::Scheduler;
using pagedllm::SchedulerConfig;
using pagedllm::SchedulerOutput;

namespace {

std::unique_ptr<Request> make_request(int64_t idx, std::vector<int32_t> prompt, int64_t max_tokens) {
  auto r = std::make_unique<Request>();
  r->request_id = "r" + std::to_string(idx);
  r->seq_id = 1000 + static_cast<uint64_t>(idx);
  r->arrival_idx = idx;
  r->num_prompt_tokens = static_cast<int64_t>(prompt.size());
  r->token_ids = std::move(prompt);
  r->params.max_tokens = max_tokens;
  r->params.ignore_eos = true;
  return r;
}

std::vector<int32_t> tokens_from(int32_t first, int64_t n) {
  std::vector<int32_t> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(first + static_cast<int32_t>(i));
  return t;
}

SchedulerConfig make_config(int64_t budget, bool chunked = true) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_model_len = 256;
  c.enable_chunked_prefill = chunked;
  c.eos_token_ids = {2};
  return c;
}

// Runs the scheduler until nothing is unfinished, feeding token 7.
void drain(Scheduler& s) {
  for (int step = 0; step < 1000 && s.has_unfinished_requests(); ++step) {
    SchedulerOutput out = s.schedule();
    s.check_invariants();
    s.update(out, std::vector<int32_t>(out.scheduled.size(), 7));
    s.check_invariants();
  }
  ASSERT_FALSE(s.has_unfinished_requests());
}

}  // namespace

TEST(PrefixCacheScheduler, SecondRequestStartsAtTheCachedPrefix) {
  KVCacheManager kv(100, 4, true);
  Scheduler s(make_config(64), &kv);
  s.add_request(make_request(0, tokens_from(10, 10), 3));
  drain(s);
  EXPECT_EQ(s.num_prefix_cache_queries(), 10);
  EXPECT_EQ(s.num_prefix_cache_hits(), 0);
  std::vector<int32_t> prompt = tokens_from(10, 9);
  prompt.push_back(99);
  s.add_request(make_request(1, prompt, 3));
  SchedulerOutput out = s.schedule();
  s.check_invariants();
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].num_computed_before, 8);
  EXPECT_EQ(out.scheduled[0].num_tokens, 2);
  EXPECT_TRUE(out.scheduled[0].samples);
  EXPECT_EQ(out.num_scheduled_tokens, 2);
  EXPECT_EQ(out.scheduled[0].request->num_cached_tokens, 8);
  EXPECT_EQ(s.num_prefix_cache_queries(), 20);
  EXPECT_EQ(s.num_prefix_cache_hits(), 8);
  s.update(out, {7});
  drain(s);
  // A prompt that is exactly cached keeps its last block's last token to recompute: 12 tokens
  // in three full blocks hit only two of them.
  s.add_request(make_request(2, tokens_from(10, 8), 1));
  out = s.schedule();
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].num_computed_before, 4);
  EXPECT_EQ(out.scheduled[0].num_tokens, 4);
  s.update(out, {7});
  s.check_invariants();
}

TEST(PrefixCacheScheduler, PromptLogprobsRequestsSkipTheLookupButFillTheCache) {
  KVCacheManager kv(100, 4, true);
  Scheduler s(make_config(64), &kv);
  s.add_request(make_request(0, tokens_from(10, 12), 2));
  drain(s);
  auto with_logprobs = make_request(1, tokens_from(10, 12), 2);
  with_logprobs->params.prompt_logprobs = 0;
  s.add_request(std::move(with_logprobs));
  SchedulerOutput out = s.schedule();
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].num_computed_before, 0);
  EXPECT_EQ(out.scheduled[0].num_tokens, 12);
  EXPECT_EQ(out.scheduled[0].request->num_cached_tokens, 0);
  EXPECT_EQ(s.num_prefix_cache_queries(), 12);
  s.update(out, {7});
  drain(s);
  auto lp = make_request(2, tokens_from(50, 9), 2);
  lp->params.prompt_logprobs = 1;
  s.add_request(std::move(lp));
  drain(s);
  EXPECT_EQ(s.num_prefix_cache_queries(), 12);
  s.add_request(make_request(3, tokens_from(50, 9), 2));
  out = s.schedule();
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].num_computed_before, 8);
  s.update(out, {7});
  drain(s);
}

TEST(PrefixCacheScheduler, SameStepAdmissionsDoNotShareAndDisabledCachingNeverHits) {
  for (bool caching : {true, false}) {
    KVCacheManager kv(100, 4, caching);
    Scheduler s(make_config(64), &kv);
    s.add_request(make_request(0, tokens_from(10, 12), 2));
    s.add_request(make_request(1, tokens_from(10, 12), 2));
    SchedulerOutput out = s.schedule();
    ASSERT_EQ(out.scheduled.size(), 2u);
    EXPECT_EQ(out.scheduled[1].num_computed_before, 0);
    s.update(out, {7, 7});
    drain(s);
    s.add_request(make_request(2, tokens_from(10, 12), 2));
    out = s.schedule();
    ASSERT_EQ(out.scheduled.size(), 1u);
    EXPECT_EQ(out.scheduled[0].num_computed_before, caching ? 8 : 0);
    EXPECT_EQ(s.num_prefix_cache_hits(), caching ? 8 : 0);
    EXPECT_EQ(s.num_prefix_cache_queries(), caching ? 36 : 0);
    s.update(out, {7});
    drain(s);
  }
}

TEST(PrefixCacheScheduler, PreemptedRequestResumesFromItsOwnCachedBlocks) {
  // 6 blocks of 2: r0 (4-token prompt) and r1 (4-token prompt) decode until the pool runs out;
  // r1 is preempted and, when resumed, finds its prompt and output blocks still cached.
  KVCacheManager kv(6, 2, true);
  Scheduler s(make_config(64), &kv);
  s.add_request(make_request(0, tokens_from(10, 4), 6));
  s.add_request(make_request(1, tokens_from(20, 4), 6));
  SchedulerOutput out;
  Request* r1 = nullptr;
  int64_t resumed_at = -1;
  for (int step = 0; step < 100 && s.has_unfinished_requests(); ++step) {
    out = s.schedule();
    s.check_invariants();
    for (const auto& e : out.scheduled) {
      if (e.request->request_id == "r1") r1 = e.request;
      if (e.request->request_id == "r1" && e.request->num_preemptions > 0 && resumed_at < 0) {
        resumed_at = e.num_computed_before;
      }
    }
    s.update(out, std::vector<int32_t>(out.scheduled.size(), 7));
    s.check_invariants();
  }
  EXPECT_GT(s.num_preemptions(), 0);
  EXPECT_GT(resumed_at, 0);
  EXPECT_EQ(resumed_at % 2, 0);
  EXPECT_TRUE(r1 != nullptr);
  EXPECT_EQ(kv.num_used_blocks(), 0);
}

namespace {

uint64_t kv_value(const std::vector<int32_t>& tokens, int64_t p) {
  uint64_t h = 1469598103934665603ULL;
  for (int64_t i = 0; i <= p; ++i) h = (h ^ static_cast<uint64_t>(tokens[i] + 1)) * 1099511628211ULL;
  return h;
}

// The simulated model: the next token is a function of the KV it reads at the last position.
int32_t next_token(uint64_t last_kv) { return static_cast<int32_t>(3 + (last_kv >> 33) % 5); }

}  // namespace

TEST(PrefixCacheScheduler, RandomSharedPrefixWorkloadsReadOnlyTheirOwnKv) {
  int64_t total_hits = 0;
  int64_t total_preemptions = 0;
  for (uint32_t seed = 1; seed <= 30; ++seed) {
    std::mt19937 rng(seed);
    const int64_t block_size = int64_t{1} << (rng() % 5);
    const int64_t max_model_len = 96;
    const int64_t num_blocks = (max_model_len + block_size - 1) / block_size + static_cast<int64_t>(rng() % 24);
    KVCacheManager kv(num_blocks, block_size, true);
    const bool chunked = rng() % 3 != 0;
    SchedulerConfig config = make_config(chunked ? 1 + static_cast<int64_t>(rng() % 128) : max_model_len, chunked);
    config.max_model_len = max_model_len;
    config.max_num_seqs = 1 + static_cast<int64_t>(rng() % 8);
    Scheduler s(config, &kv);
    std::vector<uint64_t> slots(static_cast<size_t>(num_blocks * block_size), 0);  // [num_blocks * block_size]
    std::vector<std::vector<int32_t>> families(3);
    for (auto& f : families) {
      for (int64_t i = 0, n = static_cast<int64_t>(rng() % 48); i < n; ++i) f.push_back(static_cast<int32_t>(3 + rng() % 4));
    }
    const int num_requests = 40;
    int next = 0;
    for (int64_t step = 0; step < 20000 && (next < num_requests || s.has_unfinished_requests()); ++step) {
      for (int a = static_cast<int>(rng() % 3); a > 0 && next < num_requests; --a, ++next) {
        std::vector<int32_t> prompt = families[rng() % families.size()];
        for (int64_t i = 0, n = 1 + static_cast<int64_t>(rng() % 12); i < n; ++i) prompt.push_back(static_cast<int32_t>(3 + rng() % 4));
        auto r = make_request(next, prompt, 1 + static_cast<int64_t>(rng() % 20));
        if (rng() % 10 == 0) r->params.prompt_logprobs = 0;
        s.add_request(std::move(r));
      }
      if (rng() % 40 == 0 && next > 0) s.abort("r" + std::to_string(rng() % next));
      SchedulerOutput out = s.schedule();
      s.check_invariants();
      std::vector<int32_t> sampled;
      for (const auto& e : out.scheduled) {
        const Request& r = *e.request;
        const std::vector<int32_t>& table = kv.block_table(r.seq_id);
        auto slot = [&](int64_t p) { return table[p / block_size] * block_size + p % block_size; };
        for (int64_t p = 0; p < e.num_computed_before; ++p) {
          if (slots[slot(p)] != kv_value(r.token_ids, p)) {
            PAGEDLLM_TEST_FAIL_(true, r.request_id + " reads wrong KV at position " + std::to_string(p));
          }
        }
        for (int64_t p = e.num_computed_before; p < e.num_computed_before + e.num_tokens; ++p) {
          slots[slot(p)] = kv_value(r.token_ids, p);
        }
        const int64_t last = e.num_computed_before + e.num_tokens - 1;
        sampled.push_back(e.samples ? next_token(slots[slot(last)]) : -1);
        if (e.num_computed_before > 0 && e.num_computed_before == r.num_cached_tokens) total_hits += 1;
      }
      s.update(out, sampled);
      s.check_invariants();
    }
    EXPECT_FALSE(s.has_unfinished_requests());
    EXPECT_EQ(kv.num_used_blocks(), 0);
    EXPECT_LE(s.num_prefix_cache_hits(), s.num_prefix_cache_queries());
    total_preemptions += s.num_preemptions();
  }
  EXPECT_GT(total_hits, 100);
  EXPECT_GT(total_preemptions, 10);
}
