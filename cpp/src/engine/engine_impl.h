// EngineImpl: the engine's parts and their wiring, behind the public pagedllm::Engine.
// engine.cc implements init and the step; engine_api.cc the public facade over it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pagedllm/engine.h"

#include "backend/backend.h"
#include "engine/beam_groups.h"
#include "kv/kv_cache_manager.h"
#include "model/llama.h"
#include "model/model_config.h"
#include "runner/model_runner.h"
#include "sample/device_sampling.h"
#include "sample/sampler.h"
#include "sched/scheduler.h"
#include "weights/safetensors.h"

namespace pagedllm {

class EngineImpl {
 public:
  Status init(const EngineConfig& config);
  Status add_request(const std::string& id, std::vector<int32_t> prompt, const SamplingParams& params);
  // All-or-nothing; group: the requests are parallel samples sharing the prompt's KV blocks.
  Status add_requests(const std::vector<std::string>& ids, std::vector<int32_t> prompt,
                      const std::vector<SamplingParams>& params, bool group);
  Result<std::vector<RequestOutput>> step();
  bool abort_request(const std::string& id);
  Status add_beam_search_request(const std::string& id, std::vector<int32_t> prompt, const BeamSearchParams& params) {
    return beams_->add(id, std::move(prompt), params, next_arrival_++, &next_seq_id_);
  }

  EngineConfig config_;
  ModelInfo info_;
  ModelConfig model_config_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<WeightSet> weights_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<KVCacheManager> kv_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<DeviceSampler> device_sampler_;  // set when the backend samples on the device
  std::unique_ptr<BeamGroups> beams_;
  std::vector<RequestOutput> pending_aborts_;
  EngineStats counters_;
  int64_t next_arrival_ = 0;
  uint64_t next_seq_id_ = 1;
  uint64_t next_group_id_ = 1;

 private:
  std::vector<RequestOutput> run_step(const SchedulerOutput& out);
};

}  // namespace pagedllm
