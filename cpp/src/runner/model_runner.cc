#include "runner/model_runner.h"

#include <algorithm>
#include <cstring>

#include "runner/graph_sizes.h"

namespace pagedllm {

ModelRunner::ModelRunner(const RunnerConfig& config, Backend* backend, LlamaModel* model)
    : config_(config), backend_(backend), model_(model) {
  const ModelConfig& mc = model->config();
  const int64_t T = config.max_num_batched_tokens, B = config.max_num_seqs;
  PAGEDLLM_CHECK(B >= 1 && B <= T, "max_num_seqs " << B << " must be in [1, max_num_batched_tokens " << T << "]");
  max_blocks_per_seq_ = (config.max_model_len + config.block_size - 1) / config.block_size;
  vocab_size_ = mc.vocab_size;
  logits_chunk_rows_ = std::max<int64_t>(B, 64);

  inputs_ = std::make_unique<StepInputs>(backend, T, B, max_blocks_per_seq_);
  const DType act = backend->activation_dtype(model->dtype());
  d_hidden_ = backend->allocate_buffer(T * mc.hidden_size * dtype_size(act));
  d_logits_ = backend->allocate_buffer(logits_chunk_rows_ * vocab_size_ * sizeof(float));
  block_mapping_.resize(2 * B);
  d_block_mapping_ = backend->allocate_buffer(2 * B * sizeof(int64_t));
}

void ModelRunner::allocate_kv_cache(int64_t num_blocks) {
  PAGEDLLM_CHECK(kv_cache_.empty() && num_blocks >= 1, "allocate_kv_cache(" << num_blocks << ") called twice or empty");
  const int64_t L = model_->config().num_hidden_layers;
  num_kv_blocks_ = num_blocks;
  kv_cache_ = make_kv_layers(num_blocks, &kv_storage_);
  std::vector<int64_t> cache_ptrs(2 * L);  // [2, L]
  for (int64_t i = 0; i < L; ++i) {
    cache_ptrs[i] = reinterpret_cast<int64_t>(kv_cache_[i].k.data);
    cache_ptrs[L + i] = reinterpret_cast<int64_t>(kv_cache_[i].v.data);
  }
  d_cache_ptrs_ = backend_->allocate_buffer(2 * L * sizeof(int64_t));
  backend_->copy_to_device(d_cache_ptrs_.data(), cache_ptrs.data(), 2 * L * sizeof(int64_t));
}

int64_t ModelRunner::kv_cache_bytes() const {
  int64_t total = 0;
  for (const Buffer& b : kv_storage_) total += static_cast<int64_t>(b.nbytes());
  return total;
}

void ModelRunner::copy_blocks(const std::vector<std::pair<int32_t, int32_t>>& pairs) {
  const int64_t L = static_cast<int64_t>(kv_cache_.size());
  const int64_t max_pairs = config_.max_num_seqs;
  for (size_t begin = 0; begin < pairs.size(); begin += max_pairs) {
    const int64_t n = std::min<int64_t>(max_pairs, static_cast<int64_t>(pairs.size() - begin));
    for (int64_t i = 0; i < n; ++i) {
      block_mapping_[2 * i] = pairs[begin + i].first;
      block_mapping_[2 * i + 1] = pairs[begin + i].second;
    }
    backend_->copy_to_device(d_block_mapping_.data(), block_mapping_.data(), 2 * n * sizeof(int64_t));
    CopyBlocksParams p;
    p.key_caches = d_cache_ptrs_.as_tensor(DType::kInt64, {2 * L}).slice_rows(0, L);
    p.value_caches = d_cache_ptrs_.as_tensor(DType::kInt64, {2 * L}).slice_rows(L, 2 * L);
    p.block_mapping = d_block_mapping_.as_tensor(DType::kInt64, {max_pairs, 2}).slice_rows(0, n);
    p.num_blocks = num_kv_blocks_;
    p.block_bytes = static_cast<int64_t>(kv_cache_.front().k.nbytes()) / num_kv_blocks_;
    backend_->copy_blocks(p);
  }
}

int32_t ModelRunner::stage(const SchedulerOutput& output, const KVCacheManager& kv,
                           const std::vector<int32_t>& logits_indices) {
  const int64_t bs = config_.block_size;
  StepInputs& in = *inputs_;
  int32_t* input_ids = in.input_ids();
  int32_t* positions = in.positions();
  int64_t* slot_mapping = in.slot_mapping();
  int32_t* query_start_loc = in.query_start_loc();
  int32_t max_seq_len = 0;
  int64_t t = 0;
  query_start_loc[0] = 0;
  for (size_t b = 0; b < output.scheduled.size(); ++b) {
    const ScheduledRequest& s = output.scheduled[b];
    const Request& r = *s.request;
    const std::vector<int32_t>& table = kv.block_table(r.seq_id);
    const int64_t end = s.num_computed_before + s.num_tokens;
    PAGEDLLM_CHECK(static_cast<int64_t>(table.size()) * bs >= end,
                   "request " << r.request_id << " has " << table.size() << " blocks for " << end << " tokens");
    PAGEDLLM_CHECK(static_cast<int64_t>(table.size()) <= max_blocks_per_seq_, "block table longer than max_model_len");
    for (int64_t pos = s.num_computed_before; pos < end; ++pos, ++t) {
      input_ids[t] = r.token_ids[pos];
      positions[t] = static_cast<int32_t>(pos);
      slot_mapping[t] = static_cast<int64_t>(table[pos / bs]) * bs + pos % bs;
    }
    std::copy(table.begin(), table.end(), in.block_table(static_cast<int64_t>(b)));
    query_start_loc[b + 1] = static_cast<int32_t>(t);
    in.seq_lens()[b] = static_cast<int32_t>(end);
    max_seq_len = std::max(max_seq_len, static_cast<int32_t>(end));
  }
  PAGEDLLM_CHECK(t == output.num_scheduled_tokens, "scheduled token count mismatch");
  std::copy(logits_indices.begin(), logits_indices.end(), in.logits_indices());
  return max_seq_len;
}

void ModelRunner::upload_inputs(int64_t num_seqs) {
  inputs_->upload(num_seqs);
  backend_->plan_attention({inputs_->query_start_loc(), inputs_->seq_lens(), inputs_->block_table(0), num_seqs,
                            max_blocks_per_seq_, config_.block_size, model_->config().num_attention_heads,
                            model_->config().num_key_value_heads, model_->config().head_dim, config_.max_num_seqs,
                            config_.max_num_batched_tokens, config_.max_model_len});
}

Tensor ModelRunner::logits_rows(int64_t rows) const {
  return d_logits_.as_tensor(DType::kFloat32, {logits_chunk_rows_, vocab_size_}).slice_rows(0, rows);
}

const float* ModelRunner::logits_to_host(const Tensor& logits, int64_t begin_row) {
  const int64_t rows = logits.shape[0];
  if (static_cast<int64_t>(logits_host_.size()) < (begin_row + rows) * vocab_size_) {
    logits_host_.resize((begin_row + rows) * vocab_size_);
  }
  backend_->copy_to_host(logits_host_.data() + begin_row * vocab_size_, logits.data,
                         rows * vocab_size_ * sizeof(float));
  return logits_host_.data();
}

void ModelRunner::run_decode(int64_t padded) {
  ForwardBatch batch = inputs_->device_batch(padded, padded, padded);
  batch.max_query_len = 1;
  batch.max_seq_len = static_cast<int32_t>(config_.max_model_len);
  const DType act = backend_->activation_dtype(model_->dtype());
  Tensor hidden = d_hidden_.as_tensor(act, {padded, model_->config().hidden_size});
  model_->forward(batch, kv_cache_, hidden);
  model_->compute_logits(hidden, logits_rows(padded));
}

void ModelRunner::capture_graphs(const std::vector<int64_t>& sizes) {
  PAGEDLLM_CHECK(!kv_cache_.empty() && backend_->supports_graphs(), "graph capture needs a KV cache and graphs");
  PAGEDLLM_CHECK(graph_sizes_.empty(), "graphs captured twice");
  std::vector<int64_t> ids(sizes.size());
  for (size_t i = sizes.size(); i-- > 0;) {
    const int64_t padded = sizes[i];
    PAGEDLLM_CHECK(padded >= 1 && padded <= config_.max_num_seqs && (i == 0 || sizes[i - 1] < padded),
                   "graph sizes must ascend within [1, max_num_seqs]");
    inputs_->pad_decode(0, padded);
    upload_inputs(padded);
    run_decode(padded);  // warm-up: lazy library initialisation happens outside the capture
    backend_->synchronize();
    backend_->begin_capture();
    try {
      run_decode(padded);
    } catch (...) {
      try {
        backend_->end_capture();
      } catch (...) {
      }
      throw;
    }
    ids[i] = backend_->end_capture();
    backend_->replay_graph(ids[i]);  // the first launch uploads the graph: do it at start-up
  }
  backend_->synchronize();
  graph_sizes_ = sizes;
  graph_ids_ = std::move(ids);
}

std::vector<KvCacheLayer> ModelRunner::make_kv_layers(int64_t num_blocks, std::vector<Buffer>* storage) {
  const ModelConfig& mc = model_->config();
  const int64_t nkv = mc.num_key_value_heads, D = mc.head_dim, bs = config_.block_size;
  const size_t bytes = static_cast<size_t>(num_blocks * nkv * bs * D) * dtype_size(model_->dtype());
  std::vector<KvCacheLayer> layers;
  for (int64_t i = 0; i < mc.num_hidden_layers; ++i) {
    storage->push_back(backend_->allocate_buffer(bytes));
    storage->push_back(backend_->allocate_buffer(bytes));
    const size_t k = storage->size() - 2;
    layers.push_back({(*storage)[k].as_tensor(model_->dtype(), {num_blocks, nkv, bs, D}),
                      (*storage)[k + 1].as_tensor(model_->dtype(), {num_blocks, nkv, bs, D})});
  }
  return layers;
}

void ModelRunner::profile_run() {
  const ModelConfig& mc = model_->config();
  const int64_t B = config_.max_num_seqs, bs = config_.block_size;
  const int64_t T = std::min(config_.max_num_batched_tokens, B * config_.max_model_len);  // no sequence > max_model_len
  const int64_t longest = (T + B - 1) / B;
  const int64_t blocks = (longest + bs - 1) / bs;
  std::vector<Buffer> storage;
  const std::vector<KvCacheLayer> cache = make_kv_layers(blocks, &storage);
  StepInputs& in = *inputs_;
  int64_t t = 0;
  in.query_start_loc()[0] = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = T / B + (b < T % B ? 1 : 0);
    for (int64_t pos = 0; pos < n; ++pos, ++t) {
      in.input_ids()[t] = 0;
      in.positions()[t] = static_cast<int32_t>(pos);
      in.slot_mapping()[t] = -1;
    }
    for (int64_t k = 0; k < max_blocks_per_seq_; ++k) in.block_table(b)[k] = static_cast<int32_t>(k < blocks ? k : 0);
    in.query_start_loc()[b + 1] = static_cast<int32_t>(t);
    in.seq_lens()[b] = static_cast<int32_t>(n);
    in.logits_indices()[b] = static_cast<int32_t>(t - 1);
  }
  upload_inputs(B);
  ForwardBatch batch = in.device_batch(T, B, B);
  batch.max_query_len = static_cast<int32_t>(longest);
  batch.max_seq_len = static_cast<int32_t>(longest);
  const DType act = backend_->activation_dtype(model_->dtype());
  Tensor hidden = d_hidden_.as_tensor(act, {B, mc.hidden_size});
  model_->forward(batch, cache, hidden);
  model_->compute_logits(hidden, logits_rows(B));
  backend_->synchronize();
}

const float* ModelRunner::execute(const SchedulerOutput& output, const KVCacheManager& kv,
                                  const std::vector<int32_t>& logits_indices, Tensor* device_logits) {
  PAGEDLLM_CHECK(!output.empty(), "execute() of an empty step");
  PAGEDLLM_CHECK(!kv_cache_.empty(), "execute() before allocate_kv_cache()");
  PAGEDLLM_CHECK(output.num_scheduled_tokens <= config_.max_num_batched_tokens, "token budget exceeded");
  PAGEDLLM_CHECK(static_cast<int64_t>(output.scheduled.size()) <= config_.max_num_seqs, "sequence budget exceeded");
  const int64_t T = output.num_scheduled_tokens, B = static_cast<int64_t>(output.scheduled.size());
  const int64_t R = static_cast<int64_t>(logits_indices.size());
  const int32_t max_seq_len = stage(output, kv, logits_indices);

  const int64_t padded = is_decode_only_step(output, logits_indices) ? graph_padded_size(graph_sizes_, B) : -1;
  if (padded > 0) {
    inputs_->pad_decode(B, padded);
    upload_inputs(padded);
    const size_t g = std::lower_bound(graph_sizes_.begin(), graph_sizes_.end(), padded) - graph_sizes_.begin();
    backend_->replay_graph(graph_ids_[g]);
    ++num_graph_steps_;
    if (device_logits != nullptr) {
      *device_logits = logits_rows(B);
      return nullptr;
    }
    return logits_to_host(logits_rows(B), 0);
  }

  upload_inputs(B);
  ForwardBatch batch = inputs_->device_batch(T, B, R);
  batch.max_seq_len = max_seq_len;
  for (int64_t b = 0; b < B; ++b) {
    batch.max_query_len = std::max(batch.max_query_len, inputs_->query_start_loc()[b + 1] - inputs_->query_start_loc()[b]);
  }
  const int64_t H = model_->config().hidden_size;
  const DType act = backend_->activation_dtype(model_->dtype());
  Tensor hidden = d_hidden_.as_tensor(act, {std::max<int64_t>(R, 1), H}).slice_rows(0, R);
  model_->forward(batch, kv_cache_, hidden);

  for (int64_t begin = 0; begin < R; begin += logits_chunk_rows_) {
    const int64_t end = std::min(R, begin + logits_chunk_rows_);
    Tensor logits = logits_rows(end - begin);
    model_->compute_logits(hidden.slice_rows(begin, end), logits);
    if (device_logits == nullptr) logits_to_host(logits, begin);
  }
  if (R == 0) backend_->synchronize();
  if (device_logits != nullptr) {
    PAGEDLLM_CHECK(R <= logits_chunk_rows_, "" << R << " device logits rows, room for " << logits_chunk_rows_);
    *device_logits = logits_rows(R);
    return nullptr;
  }
  return logits_host_.data();
}

}  // namespace pagedllm
