// Device sampling, host side: decision, packing and the call of Backend::sample.
#include "sample/device_sampling.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "util/check.h"

namespace pagedllm {

namespace {

static_assert(sizeof(SampleRowParams) % sizeof(uint64_t) == 0, "SampleRowParams records must stay 8-byte aligned");

void check_token_ids(const int32_t* ids, int64_t num_ids, int64_t vocab_size, const char* what) {
  PAGEDLLM_CHECK(num_ids == 0 || ids != nullptr, "missing " << what << " token ids");
  for (int64_t i = 0; i < num_ids; ++i) {
    PAGEDLLM_CHECK(ids[i] >= 0 && ids[i] < vocab_size,
                   "" << what << " token id " << ids[i] << " outside vocab of " << vocab_size);
  }
}

int32_t list_offset(size_t n) {
  PAGEDLLM_CHECK(n <= static_cast<size_t>(std::numeric_limits<int32_t>::max()), "sampling token lists too long");
  return static_cast<int32_t>(n);
}

}  // namespace

bool device_can_sample(const SamplingParams& params) {
  return params.logprobs <= 0 && params.prompt_logprobs < 0;
}

bool collect_device_rows(const SchedulerOutput& out, const std::vector<int32_t>* eos_token_ids,
                         const std::function<bool(const Request&)>& host_only, std::vector<SamplingContext>* rows) {
  rows->clear();
  for (const ScheduledRequest& s : out.scheduled) {
    const Request& r = *s.request;
    if (r.params.prompt_logprobs >= 0 || (host_only && host_only(r))) return false;
    if (!s.samples) continue;
    if (!device_can_sample(r.params)) return false;
    rows->push_back(sampling_context(r, eos_token_ids));
  }
  return !rows->empty();
}

SamplingContext sampling_context(const Request& r, const std::vector<int32_t>* eos_token_ids) {
  SamplingContext ctx;
  ctx.params = &r.params;
  ctx.prompt_token_ids = r.token_ids.data();
  ctx.num_prompt_tokens = r.num_prompt_tokens;
  ctx.output_token_ids = r.output_token_ids();
  ctx.num_output_tokens = r.num_output_tokens();
  ctx.seed = r.seed;
  ctx.eos_token_ids = eos_token_ids;
  return ctx;
}

SamplePacker::SamplePacker(int64_t vocab_size) : vocab_size_(vocab_size), seen_(vocab_size, 0), counts_(vocab_size, 0) {
  PAGEDLLM_CHECK(vocab_size > 0 && vocab_size <= std::numeric_limits<int32_t>::max(), "vocab_size " << vocab_size);
}

void SamplePacker::add_mask_ids(const SamplingContext& ctx, SampleRowParams* row) {
  const SamplingParams& params = *ctx.params;
  row->mask_begin = list_offset(lists_.size());
  if (ctx.num_output_tokens >= params.min_tokens) return;
  for (int32_t id : params.stop_token_ids) {
    if (id >= 0 && id < vocab_size_) lists_.push_back(id);
  }
  if (!params.ignore_eos && ctx.eos_token_ids != nullptr) {
    for (int32_t id : *ctx.eos_token_ids) {
      if (id >= 0 && id < vocab_size_) lists_.push_back(id);
    }
  }
  row->num_mask_ids = list_offset(lists_.size()) - row->mask_begin;
}

void SamplePacker::add_repetition_ids(const SamplingContext& ctx, SampleRowParams* row) {
  row->repetition_begin = list_offset(lists_.size());
  if (ctx.params->repetition_penalty == 1.0f) return;
  check_token_ids(ctx.prompt_token_ids, ctx.num_prompt_tokens, vocab_size_, "prompt");
  check_token_ids(ctx.output_token_ids, ctx.num_output_tokens, vocab_size_, "output");
  auto add = [&](const int32_t* ids, int64_t num_ids) {
    for (int64_t i = 0; i < num_ids; ++i) {
      if (seen_[ids[i]]) continue;
      seen_[ids[i]] = 1;
      lists_.push_back(ids[i]);
    }
  };
  add(ctx.prompt_token_ids, ctx.num_prompt_tokens);
  add(ctx.output_token_ids, ctx.num_output_tokens);
  for (size_t i = row->repetition_begin; i < lists_.size(); ++i) seen_[lists_[i]] = 0;
  row->num_repetition_ids = list_offset(lists_.size()) - row->repetition_begin;
}

void SamplePacker::add_output_counts(const SamplingContext& ctx, SampleRowParams* row) {
  row->output_begin = list_offset(lists_.size());
  const SamplingParams& params = *ctx.params;
  if (params.frequency_penalty == 0.0f && params.presence_penalty == 0.0f) return;
  check_token_ids(ctx.output_token_ids, ctx.num_output_tokens, vocab_size_, "output");
  for (int64_t i = 0; i < ctx.num_output_tokens; ++i) {
    const int32_t id = ctx.output_token_ids[i];
    if (counts_[id]++ == 0) lists_.push_back(id);
  }
  const size_t end = lists_.size();
  for (size_t i = row->output_begin; i < end; ++i) {
    lists_.push_back(counts_[lists_[i]]);
    counts_[lists_[i]] = 0;
  }
  row->num_output_ids = list_offset(end) - row->output_begin;
}

const std::vector<int32_t>& SamplePacker::pack(const std::vector<SamplingContext>& rows) {
  const int64_t R = static_cast<int64_t>(rows.size());
  lists_.clear();
  packed_.assign(R * kSampleRowInts, 0);
  for (int64_t r = 0; r < R; ++r) {
    const SamplingContext& ctx = rows[r];
    PAGEDLLM_CHECK(ctx.params != nullptr, "SamplingContext without params");
    const SamplingParams& params = *ctx.params;
    SampleRowParams row;
    row.temperature = params.temperature;
    row.top_p = params.top_p;
    row.min_p = params.min_p;
    row.repetition_penalty = params.repetition_penalty;
    row.frequency_penalty = params.frequency_penalty;
    row.presence_penalty = params.presence_penalty;
    row.top_k = params.top_k;
    row.seed = ctx.seed;
    row.step = ctx.num_output_tokens;
    add_mask_ids(ctx, &row);
    add_repetition_ids(ctx, &row);
    add_output_counts(ctx, &row);
    std::memcpy(packed_.data() + r * kSampleRowInts, &row, sizeof(row));
  }
  packed_.insert(packed_.end(), lists_.begin(), lists_.end());
  return packed_;
}

SampleRowParams SamplePacker::row(const std::vector<int32_t>& packed, int64_t r) {
  PAGEDLLM_CHECK(static_cast<int64_t>(packed.size()) >= (r + 1) * kSampleRowInts, "no record " << r);
  SampleRowParams row;
  std::memcpy(static_cast<void*>(&row), packed.data() + r * kSampleRowInts, sizeof(row));
  return row;
}

DeviceSampler::DeviceSampler(Backend* backend, int64_t vocab_size, int64_t max_rows)
    : backend_(backend), vocab_size_(vocab_size), max_rows_(max_rows), packer_(vocab_size) {
  PAGEDLLM_CHECK(backend->supports_device_sampling(), "backend " << backend->name() << " has no device sampling");
  PAGEDLLM_CHECK(max_rows >= 1, "max_rows " << max_rows);
  d_work_ = backend->allocate_buffer(static_cast<size_t>(max_rows * vocab_size) * sizeof(float));
  d_out_ = backend->allocate_buffer(static_cast<size_t>(3 * max_rows) * sizeof(int32_t));
  out_host_.resize(3 * max_rows);
}

void DeviceSampler::sample(const Tensor& logits, const std::vector<SamplingContext>& rows,
                           std::vector<int32_t>* tokens, std::vector<TokenLogprobs>* logprobs) {
  const int64_t R = static_cast<int64_t>(rows.size());
  PAGEDLLM_CHECK(R <= max_rows_, "" << R << " sampling rows, room for " << max_rows_);
  PAGEDLLM_CHECK(logits.ndim == 2 && logits.shape[0] == R && logits.shape[1] == vocab_size_,
                 "device sampling logits do not match " << R << " rows of " << vocab_size_);
  tokens->assign(R, 0);
  logprobs->assign(R, TokenLogprobs());
  if (R == 0) return;
  const std::vector<int32_t>& packed = packer_.pack(rows);
  const int64_t num_packed = static_cast<int64_t>(packed.size());
  if (num_packed > packed_capacity_) {
    packed_capacity_ = std::max(num_packed, 2 * packed_capacity_);
    d_packed_ = backend_->allocate_buffer(static_cast<size_t>(packed_capacity_) * sizeof(int32_t));
  }
  backend_->copy_to_device(d_packed_.data(), packed.data(), packed.size() * sizeof(int32_t));

  bool want_logprobs = false;
  for (const SamplingContext& ctx : rows) want_logprobs = want_logprobs || ctx.params->logprobs >= 0;
  int32_t* base = static_cast<int32_t*>(d_packed_.data());
  int32_t* out = static_cast<int32_t*>(d_out_.data());
  SampleParams p;
  p.logits = logits;
  p.rows = Tensor::contiguous(base, DType::kInt32, {R, kSampleRowInts});
  p.token_lists = Tensor::contiguous(base + R * kSampleRowInts, DType::kInt32, {num_packed - R * kSampleRowInts});
  p.work = d_work_.as_tensor(DType::kFloat32, {max_rows_, vocab_size_}).slice_rows(0, R);
  p.token_ids = Tensor::contiguous(out, DType::kInt32, {R});
  if (want_logprobs) {
    p.ranks = Tensor::contiguous(out + max_rows_, DType::kInt32, {R});
    p.logprobs = Tensor::contiguous(out + 2 * max_rows_, DType::kFloat32, {R});
  }
  backend_->sample(p);
  backend_->copy_to_host(out_host_.data(), out, static_cast<size_t>((want_logprobs ? 3 : 1) * max_rows_) * sizeof(int32_t));

  for (int64_t r = 0; r < R; ++r) {
    (*tokens)[r] = out_host_[r];
    if (rows[r].params->logprobs < 0) continue;
    TokenLogprobs& lp = (*logprobs)[r];
    lp.token_id = out_host_[r];
    lp.rank = out_host_[max_rows_ + r];
    std::memcpy(&lp.logprob, &out_host_[2 * max_rows_ + r], sizeof(float));
  }
}

}  // namespace pagedllm
