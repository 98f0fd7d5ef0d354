// Beam search on shared blocks: the KV manager's copy-on-write fork, the beam step's selection
// rules, and random fork/free/append workloads through the scheduler (ref counts equal the
// tables holding each block, no double free, the prefix-cache index consistent, every block's
// content what its holders expect, the pool full at the end).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/beam_search.h"
#include "kv/kv_cache_manager.h"
#include "sched/scheduler.h"
#include "test_harness.h"

using pagedllm::BeamChoice;
using pagedllm::BeamSearchParams;
using pagedllm::BeamSearchState;
using pagedllm::BeamView;
using pagedllm::KVCacheManager;
using pagedllm::Request;
using pagedllm::Scheduler;
using pagedllm::SchedulerConfig;
using pagedllm::SchedulerOutput;

namespace {

void fork_shares_full_blocks_and_copies_the_last(bool caching) {
  KVCacheManager kv(8, 4, caching);
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};  // 2 full blocks + 2
  ASSERT_TRUE(kv.allocate_slots(1, 10));
  kv.cache_full_blocks(1, tokens, 10);
  std::pair<int32_t, int32_t> copy;
  EXPECT_EQ(kv.fork(1, 2, 10, &copy), 10);
  const std::vector<int32_t>& a = kv.block_table(1);
  const std::vector<int32_t>& b = kv.block_table(2);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_TRUE(a[0] == b[0] && a[1] == b[1] && a[2] != b[2]);
  EXPECT_TRUE(copy.first == a[2] && copy.second == b[2]);
  EXPECT_EQ(kv.usage().num_blocks_saved(), 2);
  kv.check_invariants();
  EXPECT_EQ(kv.fork(1, 3, 8, &copy), 8);  // whole blocks only: nothing to copy
  EXPECT_EQ(copy.first, -1);
  kv.check_invariants();
  while (kv.num_free_blocks() > 0) ASSERT_TRUE(kv.allocate_slots(100 + kv.num_free_blocks(), 1));
  EXPECT_EQ(kv.fork(2, 4, 10, &copy), 8);  // no free block: the partial block is recomputed
  EXPECT_EQ(copy.first, -1);
  EXPECT_EQ(kv.block_table(4).size(), 2u);
  kv.check_invariants();
  kv.free(1);
  kv.free(2);
  kv.check_invariants();
  for (uint64_t s = 3; s < 200; ++s) kv.free(s);
  kv.check_invariants();
  EXPECT_EQ(kv.num_free_blocks(), 8);
}

TEST(BeamSearch, ForkSharesFullBlocksAndCopiesTheLastCachingOff) { fork_shares_full_blocks_and_copies_the_last(false); }
TEST(BeamSearch, ForkSharesFullBlocksAndCopiesTheLastCachingOn) { fork_shares_full_blocks_and_copies_the_last(true); }

struct Beam {
  double cum = 0.0;
  std::vector<int32_t> out;
  std::vector<float> logprobs;
  std::vector<std::pair<int32_t, float>> cands;
};

std::vector<BeamView> views(const std::vector<Beam>& beams) {
  std::vector<BeamView> v;
  for (const Beam& b : beams) v.push_back({b.cum, &b.out, 0, &b.logprobs, &b.cands});
  return v;
}

TEST(BeamSearch, StepKeepsTheBestAndFinishesTopRankedEos) {
  BeamSearchParams p;
  p.beam_width = 2;
  p.max_tokens = 10;
  BeamSearchState state(p, {0}, 10);
  EXPECT_EQ(state.num_candidates(), 4);
  std::vector<Beam> beams(1);
  beams[0].cands = {{5, -0.1f}, {0, -0.5f}, {7, -1.0f}, {8, -3.0f}};  // EOS ranked 2nd: finishes
  std::vector<BeamChoice> next = state.step(views(beams));
  ASSERT_EQ(next.size(), 2u);
  EXPECT_EQ(next[0].token_id, 5);
  EXPECT_EQ(next[1].token_id, 7);
  ASSERT_EQ(state.finished().size(), 1u);
  EXPECT_NEAR(state.finished()[0].score, -0.5, 1e-6);
  std::vector<Beam> two(2);
  two[0].cum = -0.1;
  two[0].out = {5};
  two[0].cands = {{3, -0.2f}, {4, -0.3f}, {0, -0.4f}, {6, -2.0f}};
  two[1].cum = -1.0;
  two[1].out = {7};
  two[1].cands = {{0, -0.01f}, {9, -0.02f}, {3, -5.0f}, {4, -6.0f}};
  // Candidates: -0.3 (b0,3) -0.4 (b0,4) -0.5 (b0,EOS) -1.01 (b1,EOS): EOS ranks 3rd: dropped.
  next = state.step(views(two));
  ASSERT_EQ(next.size(), 2u);
  EXPECT_TRUE(next[0].parent == 0 && next[0].token_id == 3 && next[1].parent == 0 && next[1].token_id == 4);
  EXPECT_EQ(state.finished().size(), 1u);
}

TEST(BeamSearch, EarlyStoppingTrueEndsWithWidthHypotheses) {
  BeamSearchParams p;
  p.beam_width = 1;
  p.early_stopping = pagedllm::EarlyStopping::kTrue;
  BeamSearchState state(p, {0}, 10);
  std::vector<Beam> beams(1);
  beams[0].cands = {{0, -0.1f}, {2, -0.2f}};
  EXPECT_TRUE(state.step(views(beams)).empty());
  ASSERT_EQ(state.finished().size(), 1u);
  EXPECT_TRUE(state.finished()[0].token_ids == std::vector<int32_t>{0});
}

TEST(BeamSearch, MaxTokensFinishesTheTopWidthCandidates) {
  BeamSearchParams p;
  p.beam_width = 2;
  p.length_penalty = 2.0f;
  BeamSearchState state(p, {0}, 1);
  std::vector<Beam> beams(1);
  beams[0].cands = {{4, -1.0f}, {5, -2.0f}, {6, -3.0f}, {7, -4.0f}};
  EXPECT_TRUE(state.step(views(beams)).empty());
  ASSERT_EQ(state.finished().size(), 2u);
  EXPECT_EQ(state.finished()[0].token_ids[0], 4);
  EXPECT_EQ(state.finished()[1].token_ids[0], 5);
  EXPECT_TRUE(state.finished()[1].finish_reason == pagedllm::FinishReason::kLength);
}

TEST(BeamSearch, StepTiesGoToTheLowerBeamThenTheLowerToken) {
  BeamSearchParams p;
  p.beam_width = 2;
  BeamSearchState state(p, {0}, 10);
  std::vector<Beam> beams(2);
  beams[0].cum = beams[1].cum = -1.0;
  beams[0].out = {5};
  beams[1].out = {6};
  beams[0].cands = {{4, -0.5f}, {3, -0.5f}, {7, -2.0f}, {8, -2.0f}};
  beams[1].cands = {{1, -0.5f}, {2, -0.5f}, {7, -2.0f}, {8, -2.0f}};
  const std::vector<BeamChoice> next = state.step(views(beams));
  ASSERT_EQ(next.size(), 2u);
  EXPECT_TRUE(next[0].parent == 0 && next[0].token_id == 3);
  EXPECT_TRUE(next[1].parent == 0 && next[1].token_id == 4);
}

// The rule top_logprobs keeps: the k highest logits, best first, equal logits to the lower id.
TEST(BeamSearch, TopLogprobsTiesGoToTheLowerTokenId) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 0.0f, 3.0f, 2.0f};
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - 3.0);
  const double lse = 3.0 + std::log(sum);
  const float top = static_cast<float>(3.0 - lse);
  std::vector<std::pair<int32_t, float>> out = {{9, 9.0f}};  // replaced, not appended to
  pagedllm::top_logprobs(logits.data(), 6, 4, 0.0f, &out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].first, 1);
  EXPECT_EQ(out[1].first, 2);
  EXPECT_EQ(out[2].first, 4);
  EXPECT_EQ(out[3].first, 5);
  EXPECT_EQ(out[0].second, top);
  EXPECT_EQ(out[1].second, top);
  EXPECT_EQ(out[2].second, top);
  const std::vector<float> flat(5, 0.5f);
  pagedllm::top_logprobs(flat.data(), 5, 3, 1.0f, &out);
  ASSERT_EQ(out.size(), 3u);
  for (int32_t i = 0; i < 3; ++i) EXPECT_EQ(out[static_cast<size_t>(i)].first, i);
  pagedllm::top_logprobs(logits.data(), 6, 10, 0.0f, &out);  // k above the vocabulary
  ASSERT_EQ(out.size(), 6u);
  EXPECT_EQ(out[5].first, 3);
}

// top_logprobs against a full stable sort (ids ascending, then by logit descending), on rows
// with many equal logits: the same ids in the same order and bit-identical logprobs.
TEST(BeamSearch, TopLogprobsMatchesAFullSort) {
  std::mt19937 rng(1234);
  std::vector<std::pair<int32_t, float>> out;
  for (int64_t vocab : {1, 2, 7, 100, 1000}) {
    for (float temperature : {0.0f, 0.7f, 2.0f}) {
      std::uniform_int_distribution<int> level(-8, 8);
      std::vector<float> logits(static_cast<size_t>(vocab));
      for (float& l : logits) l = static_cast<float>(level(rng)) * 0.25f;
      const double inv_t = temperature > 0.0f ? 1.0 / temperature : 1.0;
      double max_logit = -INFINITY;
      for (float l : logits) max_logit = std::max(max_logit, l * inv_t);
      double sum = 0.0;
      for (float l : logits) sum += std::exp(l * inv_t - max_logit);
      const double lse = max_logit + std::log(sum);
      std::vector<int32_t> ids(static_cast<size_t>(vocab));
      for (int32_t i = 0; i < static_cast<int32_t>(vocab); ++i) ids[static_cast<size_t>(i)] = i;
      std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
      for (int64_t k : {int64_t{1}, int64_t{2}, int64_t{8}, vocab, vocab + 3}) {
        pagedllm::top_logprobs(logits.data(), vocab, k, temperature, &out);
        const size_t n = static_cast<size_t>(std::min(k, vocab));
        ASSERT_EQ(out.size(), n);
        for (size_t i = 0; i < n; ++i) {
          EXPECT_EQ(out[i].first, ids[i]);
          EXPECT_EQ(out[i].second, static_cast<float>(logits[static_cast<size_t>(ids[i])] * inv_t - lse));
        }
      }
    }
  }
}

// ---------------------------------------------------------------- random scheduler workloads

SchedulerConfig make_config(int64_t budget, int64_t max_seqs, bool chunked) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_num_seqs = max_seqs;
  c.max_model_len = 64;
  c.enable_chunked_prefill = chunked;
  return c;
}

// The workload's model: a shadow of every block's slot contents that the steps write and
// copy_blocks copies, checked against what every running request expects.
struct Shadow {
  int64_t block_size;
  std::map<int32_t, std::vector<int32_t>> slots;  // block id -> [block_size] token or -1

  void write(const KVCacheManager& kv, const Request& r, int64_t begin, int64_t end) {
    const std::vector<int32_t>& table = kv.block_table(r.seq_id);
    for (int64_t pos = begin; pos < end; ++pos) at(table[pos / block_size])[pos % block_size] = r.token_ids[pos];
  }
  void copy(int32_t src, int32_t dst) { at(dst) = at(src); }
  std::vector<int32_t>& at(int32_t block) {
    std::vector<int32_t>& s = slots[block];
    if (s.empty()) s.assign(static_cast<size_t>(block_size), -1);
    return s;
  }
  bool holds(const KVCacheManager& kv, const Request& r) {
    const std::vector<int32_t>& table = kv.block_table(r.seq_id);
    for (int64_t pos = 0; pos < r.num_computed_tokens; ++pos) {
      if (at(table[pos / block_size])[pos % block_size] != r.token_ids[pos]) return false;
    }
    return true;
  }
};

// The longest beams a group may grow: beam_width of them must fit the pool without sharing
// (what the engine's validation guarantees), so a preempted group can always come back.
int64_t max_beam_len(const KVCacheManager& kv, int64_t width) {
  return std::min<int64_t>(64, kv.num_blocks() / width * kv.block_size());
}

struct WorkloadCounts {
  int64_t num_copies = 0, num_preemptions = 0, num_forks = 0;
};

void run_random_beam_workload(uint32_t seed, bool caching, WorkloadCounts* counts) {
  std::mt19937 rng(seed);
  const int64_t block_size = 1 + rng() % 4;
  KVCacheManager kv(20 + rng() % 40, block_size, caching);
  const bool chunked = rng() % 4 != 0;
  Scheduler s(make_config(chunked ? 4 + rng() % 40 : 64, 4 + rng() % 8, chunked), &kv);
  Shadow shadow{block_size, {}};
  int64_t next_arrival = 0;
  uint64_t next_seq = 1, next_group = 1;
  std::vector<uint64_t> groups;
  for (int round = 0; round < 120; ++round) {
    if (rng() % 4 == 0) {
      const bool beam = rng() % 2 == 0;
      const int64_t width = 1 + rng() % 3;
      std::vector<int32_t> prompt(1 + rng() % (beam ? std::min<int64_t>(12, max_beam_len(kv, width) - 2) : 12));
      for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % 3);
      auto r = std::make_unique<Request>();
      r->seq_id = next_seq++;
      r->arrival_idx = next_arrival++;
      r->token_ids = prompt;
      r->num_prompt_tokens = static_cast<int64_t>(prompt.size());
      r->params.ignore_eos = true;
      r->params.max_tokens = 1 + rng() % 8;
      if (beam) {
        r->beam_group_id = next_group++;
        r->beam_width = width;
        r->request_id = "b" + std::to_string(r->beam_group_id) + '\x1f' + "0";
        groups.push_back(r->beam_group_id);
      } else {
        r->request_id = "r" + std::to_string(r->arrival_idx);
      }
      s.add_request(std::move(r));
    }
    if (!s.has_unfinished_requests()) continue;
    SchedulerOutput out = s.schedule();
    s.check_invariants();
    for (const auto& e : out.scheduled) shadow.write(kv, *e.request, e.num_computed_before, e.num_computed_before + e.num_tokens);
    std::vector<int32_t> sampled(out.scheduled.size(), static_cast<int32_t>(rng() % 3));
    s.update(out, sampled);
    for (uint64_t g : groups) {
      const std::vector<Request*> beams = s.beam_group(g);
      if (beams.empty() || !std::all_of(beams.begin(), beams.end(), [](const Request* r) { return r->beam_ready; })) {
        continue;
      }
      if (rng() % 6 == 0 || beams.front()->num_tokens() + 1 >= max_beam_len(kv, beams.front()->beam_width)) {
        s.finish_beam_group(g, pagedllm::FinishReason::kStop);
        continue;
      }
      std::vector<Scheduler::BeamChild> children;
      const int64_t width = beams.front()->beam_width;
      for (int64_t c = 0; c < width; ++c) {
        children.push_back({beams[rng() % beams.size()], static_cast<int32_t>(rng() % 3), -0.5f});
      }
      ++counts->num_forks;
      for (const auto& copy : s.fork_beams(g, children, &next_seq)) {
        shadow.copy(copy.first, copy.second);
        ++counts->num_copies;
      }
    }
    if (rng() % 15 == 0 && !groups.empty()) s.finish_beam_group(groups[rng() % groups.size()], pagedllm::FinishReason::kAbort);
    s.check_invariants();
    for (const auto& e : out.scheduled) {
      const Request& r = *e.request;
      if (r.beam_group_id == 0 && r.status == pagedllm::RequestStatus::kRunning) EXPECT_TRUE(shadow.holds(kv, r));
    }
    for (uint64_t g : groups) {
      for (const Request* r : s.beam_group(g)) {
        if (r->status == pagedllm::RequestStatus::kRunning) EXPECT_TRUE(shadow.holds(kv, *r));
      }
    }
  }
  for (int guard = 0; s.has_unfinished_requests() && guard < 2000; ++guard) {
    SchedulerOutput out = s.schedule();
    for (const auto& e : out.scheduled) shadow.write(kv, *e.request, e.num_computed_before, e.num_computed_before + e.num_tokens);
    s.update(out, std::vector<int32_t>(out.scheduled.size(), 1));
    for (uint64_t g : groups) {
      const std::vector<Request*> beams = s.beam_group(g);
      if (!beams.empty() && std::all_of(beams.begin(), beams.end(), [](const Request* r) { return r->beam_ready; })) {
        s.finish_beam_group(g, pagedllm::FinishReason::kStop);
      }
    }
    s.check_invariants();
  }
  counts->num_preemptions += s.num_preemptions();
  EXPECT_FALSE(s.has_unfinished_requests());
  EXPECT_EQ(kv.num_used_blocks(), 0);
  EXPECT_EQ(kv.num_free_blocks(), kv.num_blocks());
}

TEST(BeamSearch, RandomForkFreeAppendWorkloadsKeepTheCacheConsistent) {
  WorkloadCounts counts;
  for (uint32_t seed = 0; seed < 60; ++seed) {
    run_random_beam_workload(seed, false, &counts);
    run_random_beam_workload(seed, true, &counts);
  }
  EXPECT_GT(counts.num_forks, 500);  // the workloads fork, copy and preempt
  EXPECT_GT(counts.num_copies, 200);
  EXPECT_GT(counts.num_preemptions, 50);
}

}  // namespace
