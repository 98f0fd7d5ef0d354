#include "runner/model_runner.h"

#include <algorithm>
#include <cstring>

namespace pagedllm {

ModelRunner::ModelRunner(const RunnerConfig& config, Backend* backend, LlamaModel* model)
    : config_(config), backend_(backend), model_(model) {
  const ModelConfig& mc = model->config();
  const int64_t T = config.max_num_batched_tokens, B = config.max_num_seqs;
  max_blocks_per_seq_ = (config.max_model_len + config.block_size - 1) / config.block_size;
  vocab_size_ = mc.vocab_size;
  logits_chunk_rows_ = std::max<int64_t>(B, 64);

  const int64_t nkv = mc.num_key_value_heads, D = mc.head_dim;
  const size_t layer_bytes = static_cast<size_t>(config.num_kv_blocks * nkv * config.block_size * D) *
                             dtype_size(model->dtype());
  for (int64_t i = 0; i < mc.num_hidden_layers; ++i) {
    kv_storage_.push_back(backend->allocate_buffer(layer_bytes));
    kv_storage_.push_back(backend->allocate_buffer(layer_bytes));
    KvCacheLayer layer;
    layer.k = kv_storage_[2 * i].as_tensor(model->dtype(), {config.num_kv_blocks, nkv, config.block_size, D});
    layer.v = kv_storage_[2 * i + 1].as_tensor(model->dtype(), {config.num_kv_blocks, nkv, config.block_size, D});
    kv_cache_.push_back(layer);
  }

  input_ids_.resize(T);
  positions_.resize(T);
  slot_mapping_.resize(T);
  block_tables_.resize(B * max_blocks_per_seq_);
  query_start_loc_.resize(B + 1);
  seq_lens_.resize(B);
  d_input_ids_ = backend->allocate_buffer(T * sizeof(int32_t));
  d_positions_ = backend->allocate_buffer(T * sizeof(int32_t));
  d_slot_mapping_ = backend->allocate_buffer(T * sizeof(int64_t));
  d_block_tables_ = backend->allocate_buffer(B * max_blocks_per_seq_ * sizeof(int32_t));
  d_query_start_loc_ = backend->allocate_buffer((B + 1) * sizeof(int32_t));
  d_seq_lens_ = backend->allocate_buffer(B * sizeof(int32_t));
  d_logits_indices_ = backend->allocate_buffer(T * sizeof(int32_t));
  const DType act = backend->activation_dtype(model->dtype());
  d_hidden_ = backend->allocate_buffer(T * mc.hidden_size * dtype_size(act));
  d_logits_ = backend->allocate_buffer(logits_chunk_rows_ * vocab_size_ * sizeof(float));
}

int64_t ModelRunner::kv_cache_bytes() const {
  int64_t total = 0;
  for (const Buffer& b : kv_storage_) total += static_cast<int64_t>(b.nbytes());
  return total;
}

void ModelRunner::build_inputs(const SchedulerOutput& output, const KVCacheManager& kv,
                               const std::vector<int32_t>& logits_indices) {
  const int64_t bs = config_.block_size;
  int64_t t = 0;
  query_start_loc_[0] = 0;
  for (size_t b = 0; b < output.scheduled.size(); ++b) {
    const ScheduledRequest& s = output.scheduled[b];
    const Request& r = *s.request;
    const std::vector<int32_t>& table = kv.block_table(r.seq_id);
    const int64_t end = s.num_computed_before + s.num_tokens;
    PAGEDLLM_CHECK(static_cast<int64_t>(table.size()) * bs >= end,
                   "request " << r.request_id << " has " << table.size() << " blocks for " << end << " tokens");
    PAGEDLLM_CHECK(static_cast<int64_t>(table.size()) <= max_blocks_per_seq_, "block table longer than max_model_len");
    for (int64_t pos = s.num_computed_before; pos < end; ++pos, ++t) {
      input_ids_[t] = r.token_ids[pos];
      positions_[t] = static_cast<int32_t>(pos);
      slot_mapping_[t] = static_cast<int64_t>(table[pos / bs]) * bs + pos % bs;
    }
    std::copy(table.begin(), table.end(), block_tables_.begin() + b * max_blocks_per_seq_);
    query_start_loc_[b + 1] = static_cast<int32_t>(t);
    seq_lens_[b] = static_cast<int32_t>(end);
  }
  PAGEDLLM_CHECK(t == output.num_scheduled_tokens, "scheduled token count mismatch");
  const size_t T = t, B = output.scheduled.size();
  backend_->copy_to_device(d_input_ids_.data(), input_ids_.data(), T * sizeof(int32_t));
  backend_->copy_to_device(d_positions_.data(), positions_.data(), T * sizeof(int32_t));
  backend_->copy_to_device(d_slot_mapping_.data(), slot_mapping_.data(), T * sizeof(int64_t));
  backend_->copy_to_device(d_block_tables_.data(), block_tables_.data(), B * max_blocks_per_seq_ * sizeof(int32_t));
  backend_->copy_to_device(d_query_start_loc_.data(), query_start_loc_.data(), (B + 1) * sizeof(int32_t));
  backend_->copy_to_device(d_seq_lens_.data(), seq_lens_.data(), B * sizeof(int32_t));
  backend_->copy_to_device(d_logits_indices_.data(), logits_indices.data(), logits_indices.size() * sizeof(int32_t));
}

const float* ModelRunner::execute(const SchedulerOutput& output, const KVCacheManager& kv,
                                  const std::vector<int32_t>& logits_indices) {
  PAGEDLLM_CHECK(!output.empty(), "execute() of an empty step");
  PAGEDLLM_CHECK(output.num_scheduled_tokens <= config_.max_num_batched_tokens, "token budget exceeded");
  PAGEDLLM_CHECK(static_cast<int64_t>(output.scheduled.size()) <= config_.max_num_seqs, "sequence budget exceeded");
  build_inputs(output, kv, logits_indices);

  const int64_t T = output.num_scheduled_tokens, B = static_cast<int64_t>(output.scheduled.size());
  const int64_t R = static_cast<int64_t>(logits_indices.size());
  ForwardBatch batch;
  batch.input_ids = d_input_ids_.as_tensor(DType::kInt32, {T});
  batch.positions = d_positions_.as_tensor(DType::kInt32, {T});
  batch.slot_mapping = d_slot_mapping_.as_tensor(DType::kInt64, {T});
  batch.block_tables = d_block_tables_.as_tensor(DType::kInt32, {B, max_blocks_per_seq_});
  batch.query_start_loc = d_query_start_loc_.as_tensor(DType::kInt32, {B + 1});
  batch.seq_lens = d_seq_lens_.as_tensor(DType::kInt32, {B});
  batch.logits_indices = d_logits_indices_.as_tensor(DType::kInt32, {R});
  for (int64_t b = 0; b < B; ++b) {
    batch.max_query_len = std::max(batch.max_query_len, query_start_loc_[b + 1] - query_start_loc_[b]);
    batch.max_seq_len = std::max(batch.max_seq_len, seq_lens_[b]);
  }

  const int64_t H = model_->config().hidden_size;
  const DType act = backend_->activation_dtype(model_->dtype());
  Tensor hidden = d_hidden_.as_tensor(act, {std::max<int64_t>(R, 1), H}).slice_rows(0, R);
  model_->forward(batch, kv_cache_, hidden);

  if (static_cast<int64_t>(logits_host_.size()) < R * vocab_size_) logits_host_.resize(R * vocab_size_);
  for (int64_t begin = 0; begin < R; begin += logits_chunk_rows_) {
    const int64_t end = std::min(R, begin + logits_chunk_rows_);
    Tensor logits = d_logits_.as_tensor(DType::kFloat32, {logits_chunk_rows_, vocab_size_}).slice_rows(0, end - begin);
    model_->compute_logits(hidden.slice_rows(begin, end), logits);
    backend_->copy_to_host(logits_host_.data() + begin * vocab_size_, logits.data,
                           (end - begin) * vocab_size_ * sizeof(float));
  }
  return logits_host_.data();
}

}  // namespace pagedllm
