// Device sampling: the host side of Backend::sample (SampleParams in backend/ops.h). Decides per
// step whether the device can give exactly what the host Sampler would, packs the rows'
// SamplingContexts into SampleRowParams records and token lists, runs the op and reads back
// one token (and the sampled token's logprob and rank) per row.
//
// Invariant: a packed row carries exactly the Sampler's inputs: mask ids = stop_token_ids, then
// EOS ids unless ignore_eos, while num_output_tokens < min_tokens; repetition ids = the distinct
// prompt and output ids when repetition_penalty != 1; distinct output ids and their counts
// when a frequency or presence penalty is set; step = num_output_tokens. Ids outside the vocab
// fail a CHECK as in the Sampler. Between calls seen_ and counts_ are all zero.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "backend/backend.h"
#include "pagedllm/request_output.h"
#include "pagedllm/sampling_params.h"
#include "sample/sampler.h"
#include "sched/scheduler.h"

namespace pagedllm {

// True when the device result for a request with these params equals the host Sampler's: at
// most the sampled token's logprob (logprobs <= 0) and no prompt logprobs.
bool device_can_sample(const SamplingParams& params);

// The sampling inputs of a request's next token (host and device samplers alike); the context
// points into r and eos_token_ids, which must outlive it.
SamplingContext sampling_context(const Request& r, const std::vector<int32_t>* eos_token_ids);

// The rows of a step for the device in the engine's order of sample rows (the scheduled
// requests with samples == true), with eos_token_ids as the rows' EOS list. Returns false (the
// host samples this step) when no request samples, or when one needs prompt logprobs, top
// logprobs or host_only(request) is true (e.g. beam search). eos_token_ids must outlive rows.
bool collect_device_rows(const SchedulerOutput& out, const std::vector<int32_t>* eos_token_ids,
                         const std::function<bool(const Request&)>& host_only, std::vector<SamplingContext>* rows);

class SamplePacker {
 public:
  explicit SamplePacker(int64_t vocab_size);

  // [R * kSampleRowInts] SampleRowParams records of rows, then the token lists they point into
  // (offsets relative to the end of the records). Valid until the next call.
  const std::vector<int32_t>& pack(const std::vector<SamplingContext>& rows);

  // Record r of a pack() result.
  static SampleRowParams row(const std::vector<int32_t>& packed, int64_t r);

 private:
  void add_mask_ids(const SamplingContext& ctx, SampleRowParams* row);
  void add_repetition_ids(const SamplingContext& ctx, SampleRowParams* row);
  void add_output_counts(const SamplingContext& ctx, SampleRowParams* row);

  int64_t vocab_size_;
  std::vector<uint8_t> seen_;    // [vocab_size] id already listed in the current list
  std::vector<int32_t> counts_;  // [vocab_size] output token counts of the current row
  std::vector<int32_t> lists_;   // [N] token lists of the current pack
  std::vector<int32_t> packed_;  // [R * kSampleRowInts + N]
};

class DeviceSampler {
 public:
  // Device buffers for up to max_rows rows: work [max_rows, vocab_size] float32, outputs, and
  // the packed rows (grown when a step's token lists need more room).
  DeviceSampler(Backend* backend, int64_t vocab_size, int64_t max_rows);

  // Samples logits [R, vocab_size] float32 on the device (R = rows.size() <= max_rows) and waits
  // for the result: (*tokens)[r] the token of row r, and for rows whose params.logprobs >= 0
  // (*logprobs)[r] its logprob and rank (no top list).
  void sample(const Tensor& logits, const std::vector<SamplingContext>& rows, std::vector<int32_t>* tokens,
              std::vector<TokenLogprobs>* logprobs);

 private:
  Backend* backend_;
  int64_t vocab_size_;
  int64_t max_rows_;
  SamplePacker packer_;
  Buffer d_packed_;               // [packed_capacity] int32: records, then token lists
  int64_t packed_capacity_ = 0;
  Buffer d_work_;                 // [max_rows, vocab_size] float32
  Buffer d_out_;                  // [3, max_rows]: token ids int32, ranks int32, logprobs float32
  std::vector<int32_t> out_host_;  // [3, max_rows] host copy of d_out_
};

}  // namespace pagedllm
