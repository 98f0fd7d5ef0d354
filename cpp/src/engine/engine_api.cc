// The public Engine: a facade over EngineImpl that turns exceptions from broken invariants
// (and out-of-memory) into Status values, so none crosses the public API.
#include <new>
#include <stdexcept>
#include <string>

#include "engine/engine_impl.h"

namespace pagedllm {

namespace {

// f() with every exception turned into a Status: kResourceExhausted for running out of memory
// when `oom` names the operation ("while creating the engine"), else kInternal (a bug).
template <typename F>
auto to_status(const char* oom, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const OutOfMemoryError& e) {
    if (oom != nullptr) return Status(StatusCode::kResourceExhausted, e.what());
    return Status(StatusCode::kInternal, e.what());
  } catch (const std::bad_alloc& e) {
    if (oom != nullptr) return Status(StatusCode::kResourceExhausted, std::string("out of memory ") + oom);
    return Status(StatusCode::kInternal, e.what());
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, e.what());
  }
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::create(const EngineConfig& config) {
  auto impl = std::make_unique<EngineImpl>();
  Status status = to_status("while creating the engine", [&] { return impl->init(config); });
  if (!status.ok()) return status;
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<EngineImpl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Status Engine::add_request(const std::string& request_id, std::vector<int32_t> prompt_token_ids,
                           const SamplingParams& params) {
  return to_status(nullptr, [&] { return impl_->add_request(request_id, std::move(prompt_token_ids), params); });
}

Status Engine::add_parallel_requests(const std::vector<std::string>& request_ids,
                                     std::vector<int32_t> prompt_token_ids,
                                     const std::vector<SamplingParams>& params) {
  return to_status(nullptr, [&] {
    return impl_->add_requests(request_ids, std::move(prompt_token_ids), params, /*group=*/true);
  });
}

Status Engine::add_beam_search_request(const std::string& request_id, std::vector<int32_t> prompt_token_ids,
                                      const BeamSearchParams& params) {
  return to_status(nullptr, [&] {
    return impl_->add_beam_search_request(request_id, std::move(prompt_token_ids), params);
  });
}

Result<std::vector<RequestOutput>> Engine::step() {
  return to_status("during step()", [&] { return impl_->step(); });
}

bool Engine::abort_request(const std::string& request_id) { return impl_->abort_request(request_id); }

bool Engine::reset_prefix_cache() { return impl_->kv_->reset_prefix_cache(); }

bool Engine::has_unfinished_requests() const {
  return impl_->scheduler_->has_unfinished_requests() || !impl_->pending_aborts_.empty();
}

EngineStats Engine::stats() const {
  EngineStats s = impl_->counters_;
  s.num_running = impl_->scheduler_->num_running();
  s.num_waiting = impl_->scheduler_->num_waiting();
  s.num_kv_blocks_used = impl_->kv_->num_used_blocks();
  s.num_kv_slots_used = impl_->kv_->num_used_slots();
  s.num_preemptions = impl_->scheduler_->num_preemptions();
  s.num_prefix_cache_queries = impl_->scheduler_->num_prefix_cache_queries();
  s.num_prefix_cache_hits = impl_->scheduler_->num_prefix_cache_hits();
  s.num_cached_blocks = impl_->kv_->num_cached_free_blocks();
  const KVUsage usage = impl_->kv_->usage();
  s.num_kv_slots_allocated = usage.num_slots_allocated;
  s.num_kv_slots_filled = usage.num_slots_filled;
  s.kv_internal_waste = usage.internal_waste();
  s.num_kv_blocks_saved_by_sharing = usage.num_blocks_saved();
  s.num_graph_steps = impl_->runner_->num_graph_steps();
  return s;
}

const ModelInfo& Engine::model_info() const { return impl_->info_; }

}  // namespace pagedllm
