// Engine: wires the parts together. step() = schedule -> execute -> sample -> update.
// Invariant: every request added and not yet reported finished is in the scheduler; an abort
// is reported by exactly one RequestOutput with FinishReason::kAbort.
#include "engine/engine_impl.h"

#include <algorithm>
#include <cstdio>
#include <new>
#include <unordered_set>

#include "backend/backend.h"
#include "engine/beam_groups.h"
#include "engine/config_validation.h"
#include "engine/kv_cache_sizing.h"
#include "engine/request_validation.h"
#include "engine/startup_log.h"
#include "kv/kv_cache_manager.h"
#include "model/llama.h"
#include "model/model_config.h"
#include "runner/graph_sizes.h"
#include "runner/model_runner.h"
#include "sample/device_sampling.h"
#include "sample/sampler.h"
#include "sched/scheduler.h"
#include "weights/safetensors.h"

namespace pagedllm {
namespace {

uint64_t mix_seed(uint64_t seed, uint64_t idx) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (idx + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

Result<DType> choose_dtype(const std::string& requested, const std::string& checkpoint, bool on_cpu) {
  std::string name = requested == "auto" ? checkpoint : requested;
  if (name == "float32" || name == "float") return DType::kFloat32;
  if (name == "bfloat16") return DType::kBFloat16;
  if (name == "float16" || name == "half") return on_cpu ? DType::kBFloat16 : DType::kFloat16;  // no fp16 on CPU
  return Status(StatusCode::kUnsupported,
                "unsupported dtype '" + name + "' (supported: auto, float32, bfloat16, float16)");
}

}  // namespace


Status EngineImpl::init(const EngineConfig& config) {
  config_ = config;
  if (config.block_size <= 0 || config.block_size > 1024) {
    return Status(StatusCode::kInvalidArgument, "block_size must be in [1, 1024], got " + std::to_string(config.block_size));
  }
  if (config.max_num_seqs <= 0) return Status(StatusCode::kInvalidArgument, "max_num_seqs must be positive");
  if (config.num_kv_blocks < 0 || config.kv_cache_memory_bytes < 0 || config.max_model_len < 0 ||
      config.max_num_batched_tokens < 0 || config.num_threads < 0) {
    return Status(StatusCode::kInvalidArgument, "engine sizes must not be negative");
  }
  Status device_options = validate_device_options(config);
  if (!device_options.ok()) return device_options;
  Result<ModelConfig> mc = load_model_config(config.model);
  if (!mc.ok()) return mc.status();
  model_config_ = mc.value();
  Result<DType> dtype = choose_dtype(config.dtype, model_config_.torch_dtype, config.device == "cpu");
  if (!dtype.ok()) return dtype.status();

  int64_t max_model_len = model_config_.max_position_embeddings;
  if (model_config_.sliding_window > 0 && model_config_.sliding_window < max_model_len) {
    max_model_len = model_config_.sliding_window;  // sliding-window attention is not implemented
  }
  if (config.max_model_len > 0) {
    if (config.max_model_len > max_model_len) {
      return Status(StatusCode::kInvalidArgument, "max_model_len " + std::to_string(config.max_model_len) +
                                                      " exceeds the model's limit of " + std::to_string(max_model_len));
    }
    max_model_len = config.max_model_len;
  }
  int64_t max_tokens = config.max_num_batched_tokens;
  if (max_tokens == 0) max_tokens = config.enable_chunked_prefill ? 2048 : std::max<int64_t>(max_model_len, 2048);
  if (!config.enable_chunked_prefill && max_tokens < max_model_len) {
    return Status(StatusCode::kInvalidArgument,
                  "without chunked prefill max_num_batched_tokens (" + std::to_string(max_tokens) +
                      ") must be at least max_model_len (" + std::to_string(max_model_len) + ")");
  }
  const int64_t max_seqs = std::min(config.max_num_seqs, max_tokens);

  StartupPhases phases;
  phases.begin("load weights");
  std::string error;
  BackendOptions backend_options;
  backend_options.num_threads = static_cast<int>(config.num_threads);
  backend_options.attention_backend = config.attention_backend;
  backend_ = create_backend(config.device, backend_options, &error);
  if (!backend_) return Status(StatusCode::kUnsupported, error);
  Result<std::unique_ptr<WeightSet>> weights = WeightSet::open_dir(config.model);
  if (!weights.ok()) return weights.status();
  weights_ = std::move(weights.value());
  Result<std::unique_ptr<LlamaModel>> model =
      LlamaModel::load(model_config_, *weights_, backend_.get(), dtype.value(), max_tokens, max_model_len);
  if (!model.ok()) return model.status();
  model_ = std::move(model.value());
  RunnerConfig rc;
  rc.block_size = config.block_size;
  rc.max_num_batched_tokens = max_tokens;
  rc.max_num_seqs = max_seqs;
  rc.max_model_len = max_model_len;
  runner_ = std::make_unique<ModelRunner>(rc, backend_.get(), model_.get());
  if (backend_->supports_device_sampling()) {
    device_sampler_ = std::make_unique<DeviceSampler>(backend_.get(), model_config_.vocab_size, max_seqs);
  }

  const bool graphs = !config.enforce_eager && backend_->supports_graphs();
  const std::vector<int64_t> graph_sizes = graphs ? graph_capture_sizes(config.cuda_graph_sizes, max_seqs)
                                                  : std::vector<int64_t>();
  const KvCacheSizingInputs sizing_in =
      kv_cache_sizing_inputs(config, model_->kv_cache_bytes_per_block(config.block_size), max_model_len, max_seqs,
                             static_cast<int64_t>(backend_->default_kv_cache_bytes()), graph_sizes.size());
  ProfiledMemory profiled;
  const bool profile = kv_cache_needs_profile(sizing_in, backend_->profiles_memory());
  if (profile) {
    phases.begin("profile");
    profiled = profile_memory(backend_.get(), [&] { runner_->profile_run(); });
  }
  Result<KvCacheSizing> sizing = size_kv_cache(sizing_in, profile ? &profiled : nullptr);
  if (!sizing.ok()) return sizing.status();
  const int64_t num_blocks = sizing.value().num_blocks;
  phases.begin("KV cache");
  runner_->allocate_kv_cache(num_blocks);
  kv_ = std::make_unique<KVCacheManager>(num_blocks, config.block_size, config.enable_prefix_caching);

  SchedulerConfig sc;
  sc.max_num_seqs = max_seqs;
  sc.max_num_batched_tokens = max_tokens;
  sc.max_model_len = max_model_len;
  sc.enable_chunked_prefill = config.enable_chunked_prefill;
  sc.eos_token_ids = model_config_.eos_token_ids;
  scheduler_ = std::make_unique<Scheduler>(sc, kv_.get());
  beams_ = std::make_unique<BeamGroups>(info_, scheduler_.get());

  sampler_ = std::make_unique<Sampler>(model_config_.vocab_size);
  int64_t graph_bytes = 0;  // device memory the graphs took (free before - free after)
  if (graphs) {
    phases.begin("graph capture");
    const int64_t free_before = backend_->memory_info().free_bytes;
    runner_->capture_graphs(graph_sizes);
    graph_bytes = free_before - backend_->memory_info().free_bytes;
  }
  phases.end();

  info_.architecture = model_config_.architecture;
  info_.dtype = dtype_name(model_->dtype());
  info_.vocab_size = model_config_.vocab_size;
  info_.max_model_len = max_model_len;
  info_.eos_token_ids = model_config_.eos_token_ids;
  info_.block_size = config.block_size;
  info_.num_kv_blocks = num_blocks;
  info_.kv_cache_bytes = runner_->kv_cache_bytes();
  info_.max_num_batched_tokens = max_tokens;
  info_.max_num_seqs = max_seqs;
  counters_.num_kv_blocks_total = num_blocks;
  if (config.log_stats) {
    print_startup(info_, backend_->name(), sizing.value(), config.gpu_memory_utilization, graph_sizes, graph_bytes,
                  phases);
  }
  return Status();
}

Status EngineImpl::add_request(const std::string& id, std::vector<int32_t> prompt, const SamplingParams& params) {
  return add_requests({id}, std::move(prompt), {params}, /*group=*/false);
}

Status EngineImpl::add_requests(const std::vector<std::string>& ids, std::vector<int32_t> prompt,
                                const std::vector<SamplingParams>& params, bool group) {
  Status valid = validate_requests(info_, *scheduler_, ids, prompt, params);
  if (!valid.ok()) return valid;
  for (const std::string& id : ids) {
    if (beams_->contains(id)) return Status(StatusCode::kAlreadyExists, "request_id '" + id + "' is already in flight");
  }
  const uint64_t group_id = group ? next_group_id_++ : 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto r = std::make_unique<Request>();
    r->request_id = ids[i];
    r->seq_id = next_seq_id_++;
    r->arrival_idx = next_arrival_++;
    r->group_id = group_id;
    r->token_ids = i + 1 == ids.size() ? std::move(prompt) : prompt;
    r->num_prompt_tokens = r->num_tokens();
    r->params = params[i];
    r->seed = params[i].seed ? *params[i].seed : mix_seed(config_.seed, static_cast<uint64_t>(r->arrival_idx));
    scheduler_->add_request(std::move(r));
  }
  return Status();
}

bool EngineImpl::abort_request(const std::string& id) {
  RequestOutput beam_out;
  if (beams_->abort(id, &beam_out)) {
    pending_aborts_.push_back(std::move(beam_out));
    return true;
  }
  Request* r = scheduler_->abort(id);
  if (r == nullptr) return false;
  RequestOutput out;
  out.request_id = r->request_id;
  out.finished = true;
  out.finish_reason = FinishReason::kAbort;
  out.num_prompt_tokens = r->num_prompt_tokens;
  out.num_output_tokens = r->num_output_tokens();
  out.num_cached_tokens = std::max<int64_t>(0, r->num_cached_tokens);
  pending_aborts_.push_back(std::move(out));
  return true;
}

Result<std::vector<RequestOutput>> EngineImpl::step() {
  std::vector<RequestOutput> outputs = std::move(pending_aborts_);
  pending_aborts_.clear();
  if (!scheduler_->has_unfinished_requests()) return outputs;
  SchedulerOutput out = scheduler_->schedule();
  counters_.num_preemptions = scheduler_->num_preemptions();
  if (out.empty()) return outputs;
  std::vector<RequestOutput> produced = run_step(out);
  for (RequestOutput& o : produced) outputs.push_back(std::move(o));
  return outputs;
}

std::vector<RequestOutput> EngineImpl::run_step(const SchedulerOutput& out) {
  // Logits rows: prompt-logprob rows (token q predicts prompt position q + 1), then the last row
  // of every request that samples.
  struct RowPlan {
    int64_t first_prompt_row = 0;  // index into logits rows
    int64_t prompt_pos_begin = 0;  // first prompt position whose logprob this step reports
    int64_t num_prompt_rows = 0;
    int64_t sample_row = -1;
  };
  std::vector<RowPlan> plans(out.scheduled.size());
  std::vector<int32_t> rows;
  int64_t flat = 0;
  for (size_t i = 0; i < out.scheduled.size(); ++i) {
    const ScheduledRequest& s = out.scheduled[i];
    const Request& r = *s.request;
    RowPlan& plan = plans[i];
    if (r.params.prompt_logprobs >= 0) {
      const int64_t q_begin = std::max(s.num_computed_before, r.next_prompt_logprob_pos - 1);
      const int64_t q_end = std::min(s.num_computed_before + s.num_tokens, r.num_prompt_tokens - 1);
      plan.first_prompt_row = static_cast<int64_t>(rows.size());
      plan.prompt_pos_begin = q_begin + 1;
      for (int64_t q = q_begin; q < q_end; ++q) rows.push_back(static_cast<int32_t>(flat + q - s.num_computed_before));
      plan.num_prompt_rows = std::max<int64_t>(0, q_end - q_begin);
    }
    if (s.samples) {
      plan.sample_row = static_cast<int64_t>(rows.size());
      rows.push_back(static_cast<int32_t>(flat + s.num_tokens - 1));
    }
    flat += s.num_tokens;
  }

  std::vector<SamplingContext> device_rows;  // [rows.size()] when the device samples this step
  const bool on_device = device_sampler_ != nullptr &&
                         collect_device_rows(out, &info_.eos_token_ids,
                                             [](const Request& r) { return r.beam_group_id != 0; }, &device_rows);
  Tensor device_logits;
  const float* logits = runner_->execute(out, *kv_, rows, on_device ? &device_logits : nullptr);
  std::vector<int32_t> device_tokens;
  std::vector<TokenLogprobs> device_logprobs;
  if (on_device) device_sampler_->sample(device_logits, device_rows, &device_tokens, &device_logprobs);
  const int64_t V = info_.vocab_size;

  std::vector<RequestOutput> outputs;
  std::vector<int32_t> sampled(out.scheduled.size(), -1);
  std::vector<TokenLogprobs> sampled_logprobs(out.scheduled.size());
  std::vector<RequestOutput> partial(out.scheduled.size());
  for (size_t i = 0; i < out.scheduled.size(); ++i) {
    const ScheduledRequest& s = out.scheduled[i];
    Request& r = *s.request;
    const RowPlan& plan = plans[i];
    RequestOutput& o = partial[i];
    o.request_id = r.request_id;
    o.num_prompt_tokens = r.num_prompt_tokens;
    if (plan.num_prompt_rows > 0) {
      o.prompt_logprobs_start = plan.prompt_pos_begin;
      for (int64_t k = 0; k < plan.num_prompt_rows; ++k) {
        const int32_t next = r.token_ids[plan.prompt_pos_begin + k];
        o.prompt_logprobs.push_back(
            sampler_->compute_logprobs(logits + (plan.first_prompt_row + k) * V, next, r.params.prompt_logprobs));
      }
      r.next_prompt_logprob_pos = plan.prompt_pos_begin + plan.num_prompt_rows;
    }
    if (plan.sample_row >= 0 && r.beam_group_id != 0) {
      beams_->collect_candidates(r, logits + plan.sample_row * V);
    } else if (plan.sample_row >= 0 && on_device) {
      sampled[i] = device_tokens[plan.sample_row];
      if (r.params.logprobs >= 0) sampled_logprobs[i] = std::move(device_logprobs[plan.sample_row]);
    } else if (plan.sample_row >= 0) {
      SampleResult result =
          sampler_->sample(logits + plan.sample_row * V, sampling_context(r, &info_.eos_token_ids));
      sampled[i] = result.token_id;
      if (r.params.logprobs >= 0) sampled_logprobs[i] = std::move(result.logprobs);
    }
  }

  std::vector<Request*> finished = scheduler_->update(out, sampled);
  std::unordered_set<const Request*> finished_set(finished.begin(), finished.end());
  std::vector<std::pair<int32_t, int32_t>> block_copies;
  beams_->advance(out, &next_seq_id_, &block_copies, &outputs);
  if (!block_copies.empty()) runner_->copy_blocks(block_copies);
  counters_.num_steps++;
  counters_.last_step_num_scheduled_tokens = out.num_scheduled_tokens;
  counters_.last_step_num_scheduled_seqs = static_cast<int64_t>(out.scheduled.size());
  for (size_t i = 0; i < out.scheduled.size(); ++i) {
    const ScheduledRequest& s = out.scheduled[i];
    const Request& r = *s.request;
    const int64_t prompt_part = std::max<int64_t>(
        0, std::min(s.num_computed_before + s.num_tokens, r.num_prompt_tokens) - s.num_computed_before);
    counters_.num_prompt_tokens_computed += prompt_part;
    if (r.beam_group_id != 0) {  // beams report through BeamGroups; each live beam's row yields one token
      if (plans[i].sample_row >= 0) counters_.num_generation_tokens++;
      continue;
    }
    RequestOutput& o = partial[i];
    if (sampled[i] >= 0) {
      counters_.num_generation_tokens++;
      o.new_token_ids.push_back(sampled[i]);
      if (r.params.logprobs >= 0) o.new_logprobs.push_back(std::move(sampled_logprobs[i]));
    }
    o.num_output_tokens = r.num_output_tokens();
    o.num_cached_tokens = std::max<int64_t>(0, r.num_cached_tokens);
    if (finished_set.count(&r)) {
      o.finished = true;
      o.finish_reason = r.finish_reason;
      o.stop_token_id = r.stop_token_id;
    }
    if (!o.new_token_ids.empty() || !o.prompt_logprobs.empty() || o.finished) outputs.push_back(std::move(o));
  }
  return outputs;
}

}  // namespace pagedllm
