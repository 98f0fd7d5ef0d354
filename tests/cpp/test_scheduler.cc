#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "kv/kv_cache_manager.h"
#include "sched/scheduler.h"
#include "test_harness.h"
#include "util/check.h"

using pagedllm::FinishReason;
using pagedllm::KVCacheManager;
using pagedllm::Request;
using pagedllm::RequestStatus;
using pagedllm::Scheduler;
using pagedllm::SchedulerConfig;
using pagedllm::SchedulerOutput;

namespace {

int code(FinishReason reason) { return static_cast<int>(reason); }

std::unique_ptr<Request> make_request(int64_t idx, int64_t prompt_len, int64_t max_tokens) {
  auto r = std::make_unique<Request>();
  r->request_id = "r" + std::to_string(idx);
  r->seq_id = 1000 + static_cast<uint64_t>(idx);
  r->arrival_idx = idx;
  for (int64_t j = 0; j < prompt_len; ++j) r->token_ids.push_back(static_cast<int32_t>(100 + (idx * 7 + j) % 50));
  r->num_prompt_tokens = prompt_len;
  r->params.max_tokens = max_tokens;
  return r;
}

SchedulerConfig make_config(int64_t budget, int64_t max_model_len, bool chunked, int64_t max_num_seqs = 256) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_model_len = max_model_len;
  c.enable_chunked_prefill = chunked;
  c.max_num_seqs = max_num_seqs;
  c.eos_token_ids = {2};
  return c;
}

// One engine step feeding `token` to every sampling request; returns the finished ids.
std::vector<std::string> run_step(Scheduler& s, SchedulerOutput* out, int32_t token) {
  *out = s.schedule();
  s.check_invariants();
  std::vector<int32_t> sampled(out->scheduled.size(), token);
  std::vector<std::string> ids;
  for (Request* r : s.update(*out, sampled)) ids.push_back(r->request_id);
  s.check_invariants();
  return ids;
}

}  // namespace

TEST(Scheduler, ChunkedPrefillSplitsPromptAndMixesWithDecodes) {
  KVCacheManager kv(100, 4);
  Scheduler s(make_config(32, 512, true), &kv);
  s.add_request(make_request(0, 10, 50));
  SchedulerOutput out;
  run_step(s, &out, 5);
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].num_tokens, 10);
  EXPECT_TRUE(out.scheduled[0].samples);
  s.add_request(make_request(1, 100, 3));
  int64_t computed = 0;
  int num_chunks = 0;
  while (computed < 100) {
    int64_t chunk = std::min<int64_t>(100 - computed, 32 - 1);
    run_step(s, &out, 5);
    ASSERT_EQ(out.scheduled.size(), 2u);
    EXPECT_EQ(out.scheduled[0].request->request_id, "r0");
    EXPECT_EQ(out.scheduled[0].num_tokens, 1);
    EXPECT_TRUE(out.scheduled[0].samples);
    EXPECT_EQ(out.scheduled[1].request->request_id, "r1");
    EXPECT_EQ(out.scheduled[1].num_computed_before, computed);
    EXPECT_EQ(out.scheduled[1].num_tokens, chunk);
    EXPECT_EQ(out.scheduled[1].samples, computed + chunk == 100);
    EXPECT_EQ(out.num_scheduled_tokens, 1 + chunk);
    computed += chunk;
    EXPECT_EQ(out.scheduled[1].request->num_tokens(), computed == 100 ? 101 : 100);
    ++num_chunks;
  }
  EXPECT_EQ(num_chunks, 4);
}

TEST(Scheduler, WithoutChunkedPrefillLongPromptWaitsForBudget) {
  KVCacheManager kv(100, 4);
  Scheduler s(make_config(64, 64, false), &kv);
  s.add_request(make_request(0, 10, 3));
  SchedulerOutput out;
  run_step(s, &out, 5);
  s.add_request(make_request(1, 64, 2));
  run_step(s, &out, 5);
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].request->request_id, "r0");
  EXPECT_EQ(s.num_waiting(), 1);
  std::vector<std::string> done = run_step(s, &out, 5);
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_TRUE(done == std::vector<std::string>{"r0"});
  EXPECT_EQ(code(out.scheduled[0].request->finish_reason), code(FinishReason::kLength));
  EXPECT_EQ(out.scheduled[0].request->num_output_tokens(), 3);
  EXPECT_EQ(s.num_waiting(), 1);
  run_step(s, &out, 5);
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].request->request_id, "r1");
  EXPECT_EQ(out.scheduled[0].num_tokens, 64);
  EXPECT_TRUE(out.scheduled[0].samples);
}

TEST(Scheduler, PreemptsNewestAndResumesAheadOfNewerArrivals) {
  KVCacheManager kv(5, 2);
  Scheduler s(make_config(64, 64, false), &kv);
  s.add_request(make_request(0, 2, 4));
  for (int64_t i = 1; i < 4; ++i) s.add_request(make_request(i, 2, 3));
  SchedulerOutput out;
  run_step(s, &out, 5);
  EXPECT_EQ(out.scheduled.size(), 4u);
  s.add_request(make_request(4, 2, 2));
  run_step(s, &out, 5);
  EXPECT_TRUE((out.preempted == std::vector<std::string>{"r3", "r2"}));
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[0].request->request_id, "r0");
  EXPECT_EQ(out.scheduled[1].request->request_id, "r1");
  EXPECT_EQ(s.num_preemptions(), 2);
  EXPECT_EQ(s.num_waiting(), 3);
  std::vector<std::string> done = run_step(s, &out, 5);
  EXPECT_EQ(out.scheduled.size(), 2u);
  EXPECT_TRUE(done == std::vector<std::string>{"r1"});
  run_step(s, &out, 6);
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[0].request->request_id, "r0");
  EXPECT_TRUE(out.scheduled[0].request->is_finished());
  Request* r2 = out.scheduled[1].request;
  EXPECT_EQ(r2->request_id, "r2");
  EXPECT_EQ(r2->num_preemptions, 1);
  EXPECT_EQ(out.scheduled[1].num_computed_before, 0);
  EXPECT_EQ(out.scheduled[1].num_tokens, 3);
  EXPECT_TRUE(out.scheduled[1].samples);
  EXPECT_TRUE((r2->token_ids == std::vector<int32_t>{114, 115, 5, 6}));
  out = s.schedule();
  ASSERT_EQ(out.scheduled.size(), 3u);
  EXPECT_EQ(out.scheduled[0].request->request_id, "r2");
  EXPECT_EQ(out.scheduled[1].request->request_id, "r3");
  EXPECT_EQ(out.scheduled[1].num_tokens, 3);
  EXPECT_TRUE((out.scheduled[1].request->token_ids == std::vector<int32_t>{121, 122, 5}));
  EXPECT_EQ(out.scheduled[2].request->request_id, "r4");
  EXPECT_EQ(out.scheduled[2].num_tokens, 2);
  s.check_invariants();
}

TEST(Scheduler, LaterPreemptedOlderRequestGoesFirst) {
  KVCacheManager kv(4, 2);
  Scheduler s(make_config(64, 64, false), &kv);
  s.add_request(make_request(0, 2, 4));
  s.add_request(make_request(1, 2, 20));
  s.add_request(make_request(2, 2, 20));
  SchedulerOutput out;
  run_step(s, &out, 5);
  s.add_request(make_request(3, 2, 20));
  run_step(s, &out, 5);
  EXPECT_TRUE(out.preempted == std::vector<std::string>{"r2"});
  run_step(s, &out, 5);
  EXPECT_TRUE(out.preempted.empty());
  EXPECT_EQ(out.scheduled.size(), 2u);
  std::vector<std::string> done = run_step(s, &out, 5);
  EXPECT_TRUE(out.preempted == std::vector<std::string>{"r1"});
  EXPECT_TRUE(done == std::vector<std::string>{"r0"});
  EXPECT_EQ(s.num_waiting(), 3);
  EXPECT_EQ(kv.num_used_blocks(), 0);
  run_step(s, &out, 5);
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].request->request_id, "r1");
  EXPECT_EQ(out.scheduled[0].num_tokens, 5);
  EXPECT_EQ(s.num_waiting(), 2);
}

TEST(Scheduler, FcfsAdmissionNeverSkipsTheHead) {
  KVCacheManager kv(4, 4);
  Scheduler s(make_config(64, 64, true), &kv);
  s.add_request(make_request(0, 8, 5));
  s.add_request(make_request(1, 12, 5));
  s.add_request(make_request(2, 1, 5));
  SchedulerOutput out;
  run_step(s, &out, 5);
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].request->request_id, "r0");
  EXPECT_EQ(s.num_waiting(), 2);

  KVCacheManager kv2(100, 4);
  Scheduler s2(make_config(1000, 64, false), &kv2);
  for (int64_t i = 0; i < 5; ++i) s2.add_request(make_request(i, 3 + i, 5));
  run_step(s2, &out, 5);
  ASSERT_EQ(out.scheduled.size(), 5u);
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(out.scheduled[i].request->request_id, "r" + std::to_string(i));
    EXPECT_EQ(out.scheduled[i].num_tokens, 3 + i);
  }
}

TEST(Scheduler, AbortWaitingAndRunningFreesBlocks) {
  KVCacheManager kv(10, 4);
  Scheduler s(make_config(64, 64, true, 1), &kv);
  s.add_request(make_request(0, 8, 5));
  s.add_request(make_request(1, 8, 5));
  SchedulerOutput out;
  run_step(s, &out, 5);
  EXPECT_EQ(s.num_running(), 1);
  EXPECT_EQ(s.num_waiting(), 1);
  EXPECT_EQ(kv.num_used_blocks(), 2);
  Request* r1 = s.abort("r1");
  ASSERT_TRUE(r1 != nullptr);
  EXPECT_EQ(code(r1->finish_reason), code(FinishReason::kAbort));
  EXPECT_TRUE(r1->is_finished());
  EXPECT_EQ(s.num_waiting(), 0);
  EXPECT_TRUE(s.abort("r1") == nullptr);
  EXPECT_TRUE(s.abort("nope") == nullptr);
  EXPECT_TRUE(s.contains("r1"));
  s.check_invariants();
  Request* r0 = s.abort("r0");
  ASSERT_TRUE(r0 != nullptr);
  EXPECT_EQ(code(r0->finish_reason), code(FinishReason::kAbort));
  EXPECT_EQ(kv.num_used_blocks(), 0);
  EXPECT_EQ(s.num_running(), 0);
  EXPECT_FALSE(s.has_unfinished_requests());
  s.check_invariants();
  out = s.schedule();
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(s.contains("r0"));
  EXPECT_FALSE(s.contains("r1"));

  s.add_request(make_request(2, 8, 5));
  out = s.schedule();
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_TRUE(s.abort("r2") != nullptr);
  EXPECT_EQ(kv.num_used_blocks(), 0);
  std::vector<Request*> done = s.update(out, {5});
  EXPECT_TRUE(done.empty());
  s.check_invariants();
  EXPECT_FALSE(s.contains("r2"));
  EXPECT_EQ(kv.num_used_slots(), 0);
}

TEST(Scheduler, MaxNumSeqsRespected) {
  KVCacheManager kv(100, 4);
  Scheduler s(make_config(1000, 64, true, 2), &kv);
  for (int64_t i = 0; i < 5; ++i) s.add_request(make_request(i, 3, 4));
  SchedulerOutput out;
  int num_finished = 0;
  for (int step = 0; step < 100 && s.has_unfinished_requests(); ++step) {
    num_finished += static_cast<int>(run_step(s, &out, 5).size());
    EXPECT_LE(out.scheduled.size(), 2u);
    EXPECT_LE(s.num_running(), 2);
  }
  EXPECT_EQ(num_finished, 5);
}

TEST(Scheduler, StopConditions) {
  KVCacheManager kv(100, 4);
  Scheduler s(make_config(1000, 12, true), &kv);
  auto min_eos = make_request(0, 3, 10);
  min_eos->params.min_tokens = 3;
  auto ignore = make_request(1, 3, 5);
  ignore->params.ignore_eos = true;
  auto plain = make_request(2, 3, 10);
  auto model_len = make_request(3, 10, 100);
  model_len->params.ignore_eos = true;
  s.add_request(std::move(min_eos));
  s.add_request(std::move(ignore));
  s.add_request(std::move(plain));
  s.add_request(std::move(model_len));
  SchedulerOutput out;
  std::map<std::string, std::pair<FinishReason, int64_t>> finished;
  std::map<std::string, int32_t> stop_ids;
  for (int step = 0; step < 20 && s.has_unfinished_requests(); ++step) {
    out = s.schedule();
    std::vector<int32_t> sampled(out.scheduled.size(), 2);
    for (Request* r : s.update(out, sampled)) {
      finished[r->request_id] = {r->finish_reason, r->num_output_tokens()};
      stop_ids[r->request_id] = r->stop_token_id;
    }
    s.check_invariants();
  }
  EXPECT_EQ(code(finished["r0"].first), code(FinishReason::kStop));
  EXPECT_EQ(finished["r0"].second, 3);
  EXPECT_EQ(stop_ids["r0"], 2);
  EXPECT_EQ(code(finished["r1"].first), code(FinishReason::kLength));
  EXPECT_EQ(finished["r1"].second, 5);
  EXPECT_EQ(stop_ids["r1"], -1);
  EXPECT_EQ(code(finished["r2"].first), code(FinishReason::kStop));
  EXPECT_EQ(finished["r2"].second, 1);
  EXPECT_EQ(code(finished["r3"].first), code(FinishReason::kLength));
  EXPECT_EQ(finished["r3"].second, 2);
}

TEST(Scheduler, StopTokenIds) {
  KVCacheManager kv(100, 4);
  Scheduler s(make_config(1000, 64, true), &kv);
  auto a = make_request(0, 3, 10);
  a->params.stop_token_ids = {77};
  auto b = make_request(1, 3, 10);
  b->params.stop_token_ids = {77};
  b->params.min_tokens = 5;
  s.add_request(std::move(a));
  s.add_request(std::move(b));
  std::vector<int32_t> feed = {5, 6, 77, 77, 77, 77, 77};
  std::map<std::string, std::vector<int32_t>> outputs;
  for (size_t step = 0; step < feed.size() && s.has_unfinished_requests(); ++step) {
    SchedulerOutput out = s.schedule();
    std::vector<int32_t> sampled(out.scheduled.size(), feed[step]);
    for (Request* r : s.update(out, sampled)) {
      EXPECT_EQ(code(r->finish_reason), code(FinishReason::kStop));
      EXPECT_EQ(r->stop_token_id, 77);
      outputs[r->request_id].assign(r->output_token_ids(), r->output_token_ids() + r->num_output_tokens());
    }
  }
  EXPECT_TRUE((outputs["r0"] == std::vector<int32_t>{5, 6, 77}));
  EXPECT_TRUE((outputs["r1"] == std::vector<int32_t>{5, 6, 77, 77, 77}));
}

TEST(Scheduler, AddRequestChecks) {
  KVCacheManager kv(10, 4);
  Scheduler s(make_config(64, 64, true), &kv);
  s.add_request(make_request(3, 4, 4));
  EXPECT_CHECK_FAILS(s.add_request(make_request(3, 4, 4)));
  EXPECT_CHECK_FAILS(s.add_request(make_request(2, 4, 4)));
  EXPECT_CHECK_FAILS(s.add_request(make_request(4, 65, 4)));
  EXPECT_CHECK_FAILS(Scheduler bad(make_config(32, 64, false), &kv));
  s.check_invariants();
}


namespace {

constexpr int32_t kEos = 0;

// The token a deterministic "model" samples for request idx at output position k.
int32_t model_token(int64_t idx, int64_t k) {
  uint64_t x = static_cast<uint64_t>(idx) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(k) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  return static_cast<int32_t>(x % 64);
}

struct Spec {
  int64_t prompt_len = 0;
  int64_t max_tokens = 0;
  int64_t min_tokens = 0;
  bool ignore_eos = false;
  std::vector<int32_t> stop_ids;
};

// Reference stop rules, independent of the scheduler: the outputs and reason of a request that runs
// to completion.
void reference_outputs(int64_t idx, const Spec& spec, int64_t max_model_len, std::vector<int32_t>* outputs,
                       FinishReason* reason) {
  outputs->clear();
  for (int64_t k = 0;; ++k) {
    int32_t tok = model_token(idx, k);
    outputs->push_back(tok);
    int64_t n = k + 1;
    bool past_min = n >= spec.min_tokens;
    bool is_stop = std::find(spec.stop_ids.begin(), spec.stop_ids.end(), tok) != spec.stop_ids.end();
    if (past_min && ((!spec.ignore_eos && tok == kEos) || is_stop)) {
      *reason = FinishReason::kStop;
      return;
    }
    if (n >= spec.max_tokens || spec.prompt_len + n >= max_model_len) {
      *reason = FinishReason::kLength;
      return;
    }
  }
}

struct SimParams {
  uint32_t seed;
  int64_t block_size;
  int64_t extra_blocks;
  int64_t budget;
  int64_t max_num_seqs;
  bool chunked;
  int num_requests;
  bool caching = false;
};

struct Result {
  FinishReason reason = FinishReason::kNone;
  std::vector<int32_t> outputs;
  int32_t stop_token_id = -1;
  bool done = false;
};

int64_t simulate(const SimParams& p) {
  const int64_t max_model_len = 256;
  std::mt19937 rng(p.seed);
  int64_t num_blocks = (max_model_len + p.block_size - 1) / p.block_size + p.extra_blocks;
  KVCacheManager kv(num_blocks, p.block_size, p.caching);
  SchedulerConfig config;
  config.max_num_batched_tokens = p.budget;
  config.max_num_seqs = p.max_num_seqs;
  config.max_model_len = max_model_len;
  config.enable_chunked_prefill = p.chunked;
  config.eos_token_ids = {kEos};
  Scheduler s(config, &kv);

  std::vector<Spec> specs(p.num_requests);
  std::vector<Result> results(p.num_requests);
  auto record = [&](Request* r) {
    int64_t idx = std::stoll(r->request_id.substr(1));
    Result& res = results[idx];
    if (res.done) PAGEDLLM_TEST_FAIL_(true, "request finished twice: " + r->request_id);
    res.done = true;
    res.reason = r->finish_reason;
    res.stop_token_id = r->stop_token_id;
    res.outputs.assign(r->output_token_ids(), r->output_token_ids() + r->num_output_tokens());
  };
  auto random_in_flight = [&]() -> std::string {
    std::vector<int64_t> live;
    for (int64_t i = 0; i < p.num_requests; ++i) {
      if (!results[i].done && s.contains("r" + std::to_string(i))) live.push_back(i);
    }
    if (live.empty()) return "";
    return "r" + std::to_string(live[rng() % live.size()]);
  };

  int next = 0;
  int num_aborts = 0;
  int64_t steps = 0;
  while (next < p.num_requests || s.has_unfinished_requests()) {
    ASSERT_TRUE(++steps < 200000);
    int num_add = static_cast<int>(rng() % 4);
    for (int a = 0; a < num_add && next < p.num_requests; ++a, ++next) {
      Spec& spec = specs[next];
      spec.prompt_len = 1 + static_cast<int64_t>(rng() % 200);
      spec.max_tokens = 1 + static_cast<int64_t>(rng() % 60);
      spec.min_tokens = rng() % 3 == 0 ? static_cast<int64_t>(rng() % 8) : 0;
      spec.ignore_eos = rng() % 5 == 0;
      for (uint32_t k = rng() % 3; k > 0; --k) spec.stop_ids.push_back(static_cast<int32_t>(1 + rng() % 63));
      auto r = make_request(next, spec.prompt_len, spec.max_tokens);
      r->params.min_tokens = spec.min_tokens;
      r->params.ignore_eos = spec.ignore_eos;
      r->params.stop_token_ids = spec.stop_ids;
      s.add_request(std::move(r));
    }
    if (rng() % 50 == 0 && num_aborts < p.num_requests / 8) {
      std::string id = random_in_flight();
      if (!id.empty()) {
        Request* r = s.abort(id);
        ASSERT_TRUE(r != nullptr);
        record(r);
        ++num_aborts;
      }
      s.check_invariants();
    }
    bool had_work = s.has_unfinished_requests();
    SchedulerOutput out = s.schedule();
    s.check_invariants();
    EXPECT_EQ(out.empty(), !had_work);

    int64_t sum = 0;
    std::set<Request*> seen;
    for (const auto& e : out.scheduled) {
      Request* r = e.request;
      ASSERT_TRUE(seen.insert(r).second);
      ASSERT_TRUE(r->status == RequestStatus::kRunning);
      ASSERT_GT(e.num_tokens, 0);
      ASSERT_EQ(e.num_computed_before, r->num_computed_tokens);
      ASSERT_LE(e.num_computed_before + e.num_tokens, r->num_tokens());
      EXPECT_EQ(e.samples, e.num_computed_before + e.num_tokens == r->num_tokens());
      if (!p.chunked) EXPECT_TRUE(e.samples);
      int64_t slots = static_cast<int64_t>(kv.block_table(r->seq_id).size()) * p.block_size;
      EXPECT_GE(slots, e.num_computed_before + e.num_tokens);
      sum += e.num_tokens;
    }
    int64_t prev_preempted = INT64_MAX;
    for (const std::string& id : out.preempted) {
      int64_t idx = std::stoll(id.substr(1));
      EXPECT_LT(idx, prev_preempted);
      prev_preempted = idx;
      for (const auto& e : out.scheduled) EXPECT_LT(e.request->arrival_idx, idx);
    }
    EXPECT_EQ(sum, out.num_scheduled_tokens);
    EXPECT_LE(sum, p.budget);
    EXPECT_LE(static_cast<int64_t>(out.scheduled.size()), p.max_num_seqs);

    if (rng() % 100 == 0 && !out.scheduled.empty() && num_aborts < p.num_requests / 8) {
      Request* victim = out.scheduled[rng() % out.scheduled.size()].request;
      record(s.abort(victim->request_id));
      ++num_aborts;
    }
    std::vector<int32_t> sampled;
    for (const auto& e : out.scheduled) {
      int64_t idx = std::stoll(e.request->request_id.substr(1));
      sampled.push_back(e.samples ? model_token(idx, e.request->num_output_tokens()) : -7);
    }
    for (Request* r : s.update(out, sampled)) record(r);
    s.check_invariants();
  }

  EXPECT_EQ(kv.num_used_blocks(), 0);
  EXPECT_EQ(kv.num_used_slots(), 0);
  EXPECT_EQ(kv.num_sequences(), 0);
  for (int64_t i = 0; i < p.num_requests; ++i) {
    const Result& res = results[i];
    ASSERT_TRUE(res.done);
    std::vector<int32_t> want;
    FinishReason want_reason = FinishReason::kNone;
    reference_outputs(i, specs[i], max_model_len, &want, &want_reason);
    EXPECT_LE(static_cast<int64_t>(res.outputs.size()), specs[i].max_tokens);
    if (res.reason == FinishReason::kAbort) {
      ASSERT_LE(res.outputs.size(), want.size());
      EXPECT_TRUE(std::equal(res.outputs.begin(), res.outputs.end(), want.begin()));
    } else {
      EXPECT_EQ(code(res.reason), code(want_reason));
      EXPECT_TRUE(res.outputs == want);
      EXPECT_EQ(res.stop_token_id, want_reason == FinishReason::kStop ? want.back() : -1);
    }
  }
  return s.num_preemptions();
}

}  // namespace

TEST(Scheduler, RandomWorkloadsKeepInvariantsAndFinish) {
  std::vector<SimParams> cases = {
      {1, 16, 0, 2048, 256, true, 80},  {2, 16, 4, 64, 8, true, 80},    {3, 4, 10, 256, 256, false, 80},
      {4, 1, 5, 300, 16, false, 60},    {5, 2, 0, 7, 4, true, 40},      {6, 16, 64, 512, 32, true, 80},
      {7, 8, 3, 1, 3, true, 15},        {8, 4, 40, 512, 2, false, 50},  {9, 32, 1, 100, 64, true, 80},
      {10, 16, 2, 256, 256, false, 80},
  };
  int64_t num_preemptions = 0;
  std::mt19937 rng(99);
  for (uint32_t seed = 100; seed < 140; ++seed) {
    bool chunked = rng() % 2 == 0;
    int64_t budget = chunked ? 1 + static_cast<int64_t>(rng() % 600) : 256 + static_cast<int64_t>(rng() % 300);
    cases.push_back({seed, int64_t{1} << (rng() % 6), static_cast<int64_t>(rng() % 20), budget,
                     1 + static_cast<int64_t>(rng() % 40), chunked, budget < 16 ? 10 : 60});
  }
  for (SimParams p : cases) {
    for (bool caching : {false, true}) {
      p.caching = caching;
      num_preemptions += simulate(p);
    }
  }
  EXPECT_GT(num_preemptions, 0);
}
