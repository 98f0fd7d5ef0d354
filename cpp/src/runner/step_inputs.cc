#include "runner/step_inputs.h"

#include <algorithm>

namespace pagedllm {
namespace {

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace

StepInputs::StepInputs(Backend* backend, int64_t max_tokens, int64_t max_seqs, int64_t max_blocks_per_seq)
    : backend_(backend), max_tokens_(max_tokens), max_seqs_(max_seqs), max_blocks_(max_blocks_per_seq) {
  PAGEDLLM_CHECK(max_tokens >= 1 && max_seqs >= 1 && max_blocks_per_seq >= 1, "empty step inputs");
  const size_t T = static_cast<size_t>(max_tokens), B = static_cast<size_t>(max_seqs);
  size_t at = 0;
  auto place = [&](size_t bytes) {
    const size_t off = at;
    at = align64(at + bytes);
    return off;
  };
  off_slot_mapping_ = place(T * sizeof(int64_t));
  off_input_ids_ = place(T * sizeof(int32_t));
  off_positions_ = place(T * sizeof(int32_t));
  off_logits_indices_ = place(T * sizeof(int32_t));
  off_query_start_loc_ = place((B + 1) * sizeof(int32_t));
  off_seq_lens_ = place(B * sizeof(int32_t));
  off_block_tables_ = place(B * static_cast<size_t>(max_blocks_per_seq) * sizeof(int32_t));
  total_bytes_ = at;
  host_ = backend->allocate_host(total_bytes_);
  PAGEDLLM_CHECK(host_ != nullptr, "out of host memory for " << total_bytes_ << " bytes of step inputs");
  std::fill_n(static_cast<char*>(host_), total_bytes_, 0);
  device_ = backend->allocate_buffer(total_bytes_);
}

StepInputs::~StepInputs() { backend_->deallocate_host(host_); }

void StepInputs::pad_decode(int64_t num_seqs, int64_t padded) {
  PAGEDLLM_CHECK(num_seqs >= 0 && num_seqs <= padded && padded <= max_seqs_ && padded <= max_tokens_,
                 "cannot pad " << num_seqs << " sequences to " << padded);
  query_start_loc()[0] = 0;
  for (int64_t b = num_seqs; b < padded; ++b) {
    input_ids()[b] = 0;
    positions()[b] = 0;
    slot_mapping()[b] = -1;
    logits_indices()[b] = static_cast<int32_t>(b);
    query_start_loc()[b + 1] = static_cast<int32_t>(b + 1);
    seq_lens()[b] = 1;
    std::fill_n(block_table(b), max_blocks_, 0);
  }
}

void StepInputs::upload(int64_t num_seqs) {
  PAGEDLLM_CHECK(num_seqs >= 1 && num_seqs <= max_seqs_, "upload of " << num_seqs << " sequences");
  const size_t end = off_block_tables_ + static_cast<size_t>(num_seqs * max_blocks_) * sizeof(int32_t);
  backend_->copy_to_device_async(device_.data(), host_, end);
}

Tensor StepInputs::device_tensor(size_t offset, DType dtype, int64_t n) const {
  return Tensor::contiguous(static_cast<char*>(device_.data()) + offset, dtype, {n});
}

ForwardBatch StepInputs::device_batch(int64_t num_tokens, int64_t num_seqs, int64_t num_logits) const {
  PAGEDLLM_CHECK(num_tokens <= max_tokens_ && num_seqs <= max_seqs_ && num_logits <= max_tokens_,
                 "step of " << num_tokens << " tokens, " << num_seqs << " sequences exceeds the inputs");
  ForwardBatch b;
  b.slot_mapping = device_tensor(off_slot_mapping_, DType::kInt64, num_tokens);
  b.input_ids = device_tensor(off_input_ids_, DType::kInt32, num_tokens);
  b.positions = device_tensor(off_positions_, DType::kInt32, num_tokens);
  b.logits_indices = device_tensor(off_logits_indices_, DType::kInt32, num_logits);
  b.query_start_loc = device_tensor(off_query_start_loc_, DType::kInt32, num_seqs + 1);
  b.seq_lens = device_tensor(off_seq_lens_, DType::kInt32, num_seqs);
  b.block_tables = Tensor::contiguous(static_cast<char*>(device_.data()) + off_block_tables_, DType::kInt32,
                                      {num_seqs, max_blocks_});
  return b;
}

}  // namespace pagedllm
