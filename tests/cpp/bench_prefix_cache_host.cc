// Host-side cost of prefix caching, without a model: the scheduler and KV manager alone run a
// workload of unique prompts (0% hit rate) with caching on and off, and print the time per
// workload and per token. What caching adds is hashing full blocks, indexing them and looking
// prompts up; a forward pass costs orders of magnitude more per token.
//   bench_prefix_cache_host [num_requests=32] [prompt_len=256] [output_len=32] [iters=300]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kv/kv_cache_manager.h"
#include "sched/scheduler.h"

using namespace pagedllm;

namespace {

// Seconds for one pass of the whole workload through schedule() / update().
double run_once(bool caching, int64_t num_requests, int64_t prompt_len, int64_t output_len, std::mt19937* rng) {
  KVCacheManager kv(num_requests * ((prompt_len + output_len) / 16 + 1), 16, caching);
  SchedulerConfig config;
  config.max_num_batched_tokens = 2048;
  config.max_model_len = prompt_len + output_len;
  Scheduler s(config, &kv);
  for (int64_t i = 0; i < num_requests; ++i) {
    auto r = std::make_unique<Request>();
    r->request_id = "r" + std::to_string(i);
    r->seq_id = static_cast<uint64_t>(i + 1);
    r->arrival_idx = i;
    for (int64_t j = 0; j < prompt_len; ++j) r->token_ids.push_back(static_cast<int32_t>(3 + (*rng)() % 8000));
    r->num_prompt_tokens = prompt_len;
    r->params.max_tokens = output_len;
    r->params.ignore_eos = true;
    s.add_request(std::move(r));
  }
  auto t0 = std::chrono::steady_clock::now();
  while (s.has_unfinished_requests()) {
    SchedulerOutput out = s.schedule();
    s.update(out, std::vector<int32_t>(out.scheduled.size(), 7));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t num_requests = argc > 1 ? std::atoll(argv[1]) : 32;
  const int64_t prompt_len = argc > 2 ? std::atoll(argv[2]) : 256;
  const int64_t output_len = argc > 3 ? std::atoll(argv[3]) : 32;
  const int iters = argc > 4 ? std::atoi(argv[4]) : 300;
  std::mt19937 rng(0);
  std::vector<double> on, off;  // [iters] seconds per workload
  for (int i = 0; i < iters; ++i) {
    on.push_back(run_once(true, num_requests, prompt_len, output_len, &rng));
    off.push_back(run_once(false, num_requests, prompt_len, output_len, &rng));
  }
  std::sort(on.begin(), on.end());
  std::sort(off.begin(), off.end());
  const double tokens = static_cast<double>(num_requests * (prompt_len + output_len));
  const double med_on = on[on.size() / 2], med_off = off[off.size() / 2];
  std::printf("%lld requests x (%lld prompt + %lld output) tokens, median of %d runs\n",
              static_cast<long long>(num_requests), static_cast<long long>(prompt_len),
              static_cast<long long>(output_len), iters);
  std::printf("scheduler + KV manager per workload: caching on %.1f us, off %.1f us\n", med_on * 1e6, med_off * 1e6);
  std::printf("added by prefix caching: %.1f us per workload, %.2f ns per token\n", (med_on - med_off) * 1e6,
              (med_on - med_off) * 1e9 / tokens);
  return 0;
}
