// Bindings of the public C++ API: EngineConfig, SamplingParams, Engine and its outputs.
// Status codes become Python exceptions: kNotFound -> FileNotFoundError, kResourceExhausted ->
// MemoryError, kInternal -> RuntimeError, every other code -> ValueError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "pagedllm/build_info.h"
#include "pagedllm/pagedllm.h"

namespace py = pybind11;

namespace pagedllm {
namespace {

void throw_if_error(const Status& status) {
  if (status.ok()) return;
  switch (status.code()) {
    case StatusCode::kNotFound:
      PyErr_SetString(PyExc_FileNotFoundError, status.message().c_str());
      throw py::error_already_set();
    case StatusCode::kResourceExhausted:
      PyErr_SetString(PyExc_MemoryError, status.message().c_str());
      throw py::error_already_set();
    case StatusCode::kInternal:
      PyErr_SetString(PyExc_RuntimeError, status.message().c_str());
      throw py::error_already_set();
    default:
      PyErr_SetString(PyExc_ValueError, status.message().c_str());
      throw py::error_already_set();
  }
}

py::object optional_finish_reason(FinishReason reason) {
  if (reason == FinishReason::kNone) return py::none();
  return py::str(finish_reason_name(reason));
}

}  // namespace

void bind_engine(py::module_& m) {
  py::class_<EngineConfig>(m, "EngineConfig")
      .def(py::init<>())
      .def_readwrite("model", &EngineConfig::model)
      .def_readwrite("dtype", &EngineConfig::dtype)
      .def_readwrite("device", &EngineConfig::device)
      .def_readwrite("max_model_len", &EngineConfig::max_model_len)
      .def_readwrite("max_num_seqs", &EngineConfig::max_num_seqs)
      .def_readwrite("max_num_batched_tokens", &EngineConfig::max_num_batched_tokens)
      .def_readwrite("block_size", &EngineConfig::block_size)
      .def_readwrite("num_kv_blocks", &EngineConfig::num_kv_blocks)
      .def_readwrite("kv_cache_memory_bytes", &EngineConfig::kv_cache_memory_bytes)
      .def_readwrite("enable_chunked_prefill", &EngineConfig::enable_chunked_prefill)
      .def_readwrite("enable_prefix_caching", &EngineConfig::enable_prefix_caching)
      .def_readwrite("num_threads", &EngineConfig::num_threads)
      .def_readwrite("seed", &EngineConfig::seed)
      .def_readwrite("log_stats", &EngineConfig::log_stats)
      .def_readwrite("gpu_memory_utilization", &EngineConfig::gpu_memory_utilization)
      .def_readwrite("enforce_eager", &EngineConfig::enforce_eager)
      .def_readwrite("attention_backend", &EngineConfig::attention_backend)
      .def_readwrite("cuda_graph_sizes", &EngineConfig::cuda_graph_sizes);

  py::class_<BuildInfo>(m, "BuildInfo")
      .def_readonly("backends", &BuildInfo::backends)
      .def_readonly("cuda_compiler_found", &BuildInfo::cuda_compiler_found);
  m.def("build_info", &build_info);
  m.def("built_backends", [] { return build_info().backends; });

  py::class_<SamplingParams>(m, "SamplingParams")
      .def(py::init<>())
      .def_readwrite("temperature", &SamplingParams::temperature)
      .def_readwrite("top_p", &SamplingParams::top_p)
      .def_readwrite("top_k", &SamplingParams::top_k)
      .def_readwrite("min_p", &SamplingParams::min_p)
      .def_readwrite("presence_penalty", &SamplingParams::presence_penalty)
      .def_readwrite("frequency_penalty", &SamplingParams::frequency_penalty)
      .def_readwrite("repetition_penalty", &SamplingParams::repetition_penalty)
      .def_readwrite("seed", &SamplingParams::seed)
      .def_readwrite("max_tokens", &SamplingParams::max_tokens)
      .def_readwrite("min_tokens", &SamplingParams::min_tokens)
      .def_readwrite("stop_token_ids", &SamplingParams::stop_token_ids)
      .def_readwrite("ignore_eos", &SamplingParams::ignore_eos)
      .def_readwrite("logprobs", &SamplingParams::logprobs)
      .def_readwrite("prompt_logprobs", &SamplingParams::prompt_logprobs)
      .def("validate", [](const SamplingParams& p) { throw_if_error(p.validate()); });

  py::enum_<EarlyStopping>(m, "EarlyStopping")
      .value("HEURISTIC", EarlyStopping::kHeuristic)
      .value("TRUE", EarlyStopping::kTrue)
      .value("NEVER", EarlyStopping::kNever);

  py::class_<BeamSearchParams>(m, "BeamSearchParams")
      .def(py::init<>())
      .def_readwrite("beam_width", &BeamSearchParams::beam_width)
      .def_readwrite("max_tokens", &BeamSearchParams::max_tokens)
      .def_readwrite("ignore_eos", &BeamSearchParams::ignore_eos)
      .def_readwrite("temperature", &BeamSearchParams::temperature)
      .def_readwrite("length_penalty", &BeamSearchParams::length_penalty)
      .def_readwrite("early_stopping", &BeamSearchParams::early_stopping)
      .def("validate", [](const BeamSearchParams& p) { throw_if_error(p.validate()); });

  py::class_<BeamSequence>(m, "BeamSequence")
      .def_readonly("token_ids", &BeamSequence::token_ids)
      .def_readonly("logprobs", &BeamSequence::logprobs)
      .def_readonly("cum_logprob", &BeamSequence::cum_logprob)
      .def_readonly("score", &BeamSequence::score)
      .def_property_readonly("finish_reason",
                             [](const BeamSequence& s) { return optional_finish_reason(s.finish_reason); });

  py::class_<TokenLogprobs>(m, "TokenLogprobs")
      .def_readonly("token_id", &TokenLogprobs::token_id)
      .def_readonly("logprob", &TokenLogprobs::logprob)
      .def_readonly("rank", &TokenLogprobs::rank)
      .def_readonly("top", &TokenLogprobs::top);

  py::class_<RequestOutput>(m, "RequestOutput")
      .def_readonly("request_id", &RequestOutput::request_id)
      .def_readonly("new_token_ids", &RequestOutput::new_token_ids)
      .def_readonly("new_logprobs", &RequestOutput::new_logprobs)
      .def_readonly("prompt_logprobs", &RequestOutput::prompt_logprobs)
      .def_readonly("prompt_logprobs_start", &RequestOutput::prompt_logprobs_start)
      .def_readonly("finished", &RequestOutput::finished)
      .def_property_readonly("finish_reason",
                             [](const RequestOutput& o) { return optional_finish_reason(o.finish_reason); })
      .def_property_readonly("stop_token_id",
                             [](const RequestOutput& o) -> py::object {
                               if (o.stop_token_id < 0) return py::none();
                               return py::int_(o.stop_token_id);
                             })
      .def_readonly("num_prompt_tokens", &RequestOutput::num_prompt_tokens)
      .def_readonly("num_output_tokens", &RequestOutput::num_output_tokens)
      .def_readonly("num_cached_tokens", &RequestOutput::num_cached_tokens)
      .def_readonly("beams", &RequestOutput::beams)
      .def("__repr__", [](const RequestOutput& o) {
        return "RequestOutput(request_id='" + o.request_id + "', new_token_ids=" +
               py::repr(py::cast(o.new_token_ids)).cast<std::string>() +
               ", finished=" + (o.finished ? "True" : "False") + ")";
      });

  py::class_<EngineStats>(m, "EngineStats")
      .def_readonly("num_running", &EngineStats::num_running)
      .def_readonly("num_waiting", &EngineStats::num_waiting)
      .def_readonly("num_kv_blocks_total", &EngineStats::num_kv_blocks_total)
      .def_readonly("num_kv_blocks_used", &EngineStats::num_kv_blocks_used)
      .def_readonly("num_kv_slots_used", &EngineStats::num_kv_slots_used)
      .def_readonly("num_preemptions", &EngineStats::num_preemptions)
      .def_readonly("num_steps", &EngineStats::num_steps)
      .def_readonly("num_prompt_tokens_computed", &EngineStats::num_prompt_tokens_computed)
      .def_readonly("num_generation_tokens", &EngineStats::num_generation_tokens)
      .def_readonly("last_step_num_scheduled_tokens", &EngineStats::last_step_num_scheduled_tokens)
      .def_readonly("last_step_num_scheduled_seqs", &EngineStats::last_step_num_scheduled_seqs)
      .def_readonly("num_prefix_cache_queries", &EngineStats::num_prefix_cache_queries)
      .def_readonly("num_prefix_cache_hits", &EngineStats::num_prefix_cache_hits)
      .def_readonly("num_cached_blocks", &EngineStats::num_cached_blocks)
      .def_readonly("num_kv_slots_allocated", &EngineStats::num_kv_slots_allocated)
      .def_readonly("num_kv_slots_filled", &EngineStats::num_kv_slots_filled)
      .def_readonly("kv_internal_waste", &EngineStats::kv_internal_waste)
      .def_readonly("num_kv_blocks_saved_by_sharing", &EngineStats::num_kv_blocks_saved_by_sharing)
      .def_readonly("num_graph_steps", &EngineStats::num_graph_steps);

  py::class_<ModelInfo>(m, "ModelInfo")
      .def_readonly("architecture", &ModelInfo::architecture)
      .def_readonly("dtype", &ModelInfo::dtype)
      .def_readonly("vocab_size", &ModelInfo::vocab_size)
      .def_readonly("max_model_len", &ModelInfo::max_model_len)
      .def_readonly("eos_token_ids", &ModelInfo::eos_token_ids)
      .def_readonly("block_size", &ModelInfo::block_size)
      .def_readonly("num_kv_blocks", &ModelInfo::num_kv_blocks)
      .def_readonly("kv_cache_bytes", &ModelInfo::kv_cache_bytes)
      .def_readonly("max_num_batched_tokens", &ModelInfo::max_num_batched_tokens)
      .def_readonly("max_num_seqs", &ModelInfo::max_num_seqs);

  py::class_<Engine>(m, "Engine")
      .def(py::init([](const EngineConfig& config) {
             Result<std::unique_ptr<Engine>> engine = [&] {
               py::gil_scoped_release release;
               return Engine::create(config);
             }();
             throw_if_error(engine.status());
             return std::move(engine).value();
           }),
           py::arg("config"))
      .def(
          "add_request",
          [](Engine& e, const std::string& id, std::vector<int32_t> prompt, const SamplingParams& params) {
            throw_if_error(e.add_request(id, std::move(prompt), params));
          },
          py::arg("request_id"), py::arg("prompt_token_ids"), py::arg("params"))
      .def(
          "add_parallel_requests",
          [](Engine& e, const std::vector<std::string>& ids, std::vector<int32_t> prompt,
             const std::vector<SamplingParams>& params) {
            throw_if_error(e.add_parallel_requests(ids, std::move(prompt), params));
          },
          py::arg("request_ids"), py::arg("prompt_token_ids"), py::arg("params"))
      .def(
          "add_beam_search_request",
          [](Engine& e, const std::string& id, std::vector<int32_t> prompt, const BeamSearchParams& params) {
            throw_if_error(e.add_beam_search_request(id, std::move(prompt), params));
          },
          py::arg("request_id"), py::arg("prompt_token_ids"), py::arg("params"))
      .def("step",
           [](Engine& e) {
             Result<std::vector<RequestOutput>> out = [&] {
               py::gil_scoped_release release;
               return e.step();
             }();
             throw_if_error(out.status());
             return std::move(out).value();
           })
      .def("abort_request", &Engine::abort_request, py::arg("request_id"))
      .def("reset_prefix_cache", &Engine::reset_prefix_cache)
      .def("has_unfinished_requests", &Engine::has_unfinished_requests)
      .def("stats", &Engine::stats)
      .def_property_readonly("model_info", &Engine::model_info, py::return_value_policy::copy);
}

}  // namespace pagedllm
