#include "model/llama.h"

#include <cmath>
#include <sstream>
#include <string>

#include "model/rope.h"

namespace pagedllm {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

// Finds `name` and checks its shape; fills *out with a host view.
Status find_tensor(const WeightSet& weights, const std::string& name, std::vector<int64_t> shape,
                   Tensor* out) {
  const TensorInfo* info = weights.find(name);
  if (info == nullptr) return Status(StatusCode::kCorruptData, "missing tensor '" + name + "'");
  if (info->shape != shape) {
    return Status(StatusCode::kCorruptData, "tensor '" + name + "' has shape " +
                                                shape_string(info->shape) + ", expected " + shape_string(shape));
  }
  if (info->dtype != DType::kFloat32 && info->dtype != DType::kBFloat16 && info->dtype != DType::kFloat16) {
    return Status(StatusCode::kUnsupported,
                  "tensor '" + name + "' has dtype " + dtype_name(info->dtype) + "; expected a float dtype");
  }
  *out = info->as_tensor();
  return Status();
}

}  // namespace

Result<std::unique_ptr<LlamaModel>> LlamaModel::load(const ModelConfig& config, const WeightSet& weights,
                                                     Backend* backend, DType dtype, int64_t max_num_tokens,
                                                     int64_t max_position) {
  std::unique_ptr<LlamaModel> model(new LlamaModel(config, backend, dtype));
  Status status = model->load_weights(weights);
  if (!status.ok()) return status;
  model->allocate_workspace(max_num_tokens, max_position);
  return model;
}

Status LlamaModel::load_weights(const WeightSet& weights) {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, D = c.head_dim, I = c.intermediate_size, V = c.vocab_size;
  const int64_t nq = c.num_attention_heads, nkv = c.num_key_value_heads;
  Status status;

  // Loads `name` with `shape` in `dtype` (norms and biases always float32).
  auto load = [&](const std::string& name, std::vector<int64_t> shape, DType dtype, Tensor* out) {
    if (!status.ok()) return;
    Tensor host;
    status = find_tensor(weights, name, std::move(shape), &host);
    if (!status.ok()) return;
    Buffer storage;
    *out = backend_->upload_weight(host, dtype, &storage);
    if (storage.data() != nullptr) storage_.push_back(std::move(storage));
  };

  auto linear = [&](const std::vector<std::string>& names, const std::vector<std::vector<int64_t>>& shapes,
                    const std::vector<Tensor*>& outs, Tensor* fused) {
    if (status.ok()) status = load_linear(weights, names, shapes, outs, fused);
  };

  load("model.embed_tokens.weight", {V, H}, dtype_, &embed_tokens_);
  load("model.norm.weight", {H}, DType::kFloat32, &final_norm_);
  if (c.tie_word_embeddings && weights.find("lm_head.weight") == nullptr) {
    lm_head_ = embed_tokens_;
    if (status.ok()) try_pack({embed_tokens_}, &lm_head_);  // the embedding stays mapped: no release
  } else {
    linear({"lm_head.weight"}, {{V, H}}, {&lm_head_}, nullptr);
  }
  layers_.resize(c.num_hidden_layers);
  for (int64_t i = 0; i < c.num_hidden_layers && status.ok(); ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Layer& l = layers_[i];
    load(p + "input_layernorm.weight", {H}, DType::kFloat32, &l.input_norm);
    load(p + "post_attention_layernorm.weight", {H}, DType::kFloat32, &l.post_norm);
    linear({p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"},
           {{nq * D, H}, {nkv * D, H}, {nkv * D, H}}, {&l.q_proj, &l.k_proj, &l.v_proj},
           c.attention_bias ? nullptr : &l.qkv_proj);
    linear({p + "self_attn.o_proj.weight"}, {{H, nq * D}}, {&l.o_proj}, nullptr);
    if (c.attention_bias) {
      load(p + "self_attn.q_proj.bias", {nq * D}, DType::kFloat32, &l.q_bias);
      load(p + "self_attn.k_proj.bias", {nkv * D}, DType::kFloat32, &l.k_bias);
      load(p + "self_attn.v_proj.bias", {nkv * D}, DType::kFloat32, &l.v_bias);
    }
    if (c.qk_norm) {
      load(p + "self_attn.q_norm.weight", {D}, DType::kFloat32, &l.q_norm);
      load(p + "self_attn.k_norm.weight", {D}, DType::kFloat32, &l.k_norm);
    }
    linear({p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"}, {{I, H}, {I, H}},
           {&l.gate_proj, &l.up_proj}, &l.gate_up_proj);
    linear({p + "mlp.down_proj.weight"}, {{H, I}}, {&l.down_proj}, nullptr);
  }
  return status;
}

bool LlamaModel::try_pack(const std::vector<Tensor>& parts, Tensor* out) {
  Buffer storage;
  Tensor packed = backend_->pack_linear_weight(parts, &storage);
  if (packed.data == nullptr) return false;
  *out = packed;
  storage_.push_back(std::move(storage));
  return true;
}

Status LlamaModel::load_linear(const WeightSet& weights, const std::vector<std::string>& names,
                               const std::vector<std::vector<int64_t>>& shapes,
                               const std::vector<Tensor*>& outs, Tensor* fused) {
  std::vector<Tensor> hosts(names.size());  // views into the mapped files
  std::vector<Tensor> parts(names.size());
  std::vector<Buffer> part_storage(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    Status status = find_tensor(weights, names[i], shapes[i], &hosts[i]);
    if (!status.ok()) return status;
    parts[i] = backend_->upload_weight(hosts[i], dtype_, &part_storage[i]);
  }
  // Packing copies the weights: the parts' own conversions (part_storage) are freed on return,
  // and the mapped source pages leave the resident set (no second copy of the weights in RSS).
  auto pack = [&](const std::vector<size_t>& group, Tensor* out) {
    std::vector<Tensor> inputs;
    for (size_t i : group) inputs.push_back(parts[i]);
    if (!try_pack(inputs, out)) return false;
    for (size_t i : group) release_mapped_pages(hosts[i].data, hosts[i].nbytes());
    return true;
  };
  std::vector<size_t> all(parts.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  if (fused != nullptr && pack(all, fused)) return Status();
  for (size_t i = 0; i < parts.size(); ++i) {
    if (pack({i}, outs[i])) continue;
    *outs[i] = parts[i];
    if (part_storage[i].data() != nullptr) storage_.push_back(std::move(part_storage[i]));
  }
  return Status();
}

void LlamaModel::allocate_workspace(int64_t max_num_tokens, int64_t max_position) {
  const ModelConfig& c = config_;
  const DType act = backend_->activation_dtype(dtype_);
  const size_t a = dtype_size(act);
  const int64_t T = max_num_tokens, H = c.hidden_size, D = c.head_dim, I = c.intermediate_size;
  const int64_t nq = c.num_attention_heads, nkv = c.num_key_value_heads;
  max_num_tokens_ = T;
  max_position_ = max_position;

  std::vector<float> table = build_cos_sin_cache(c, max_position);
  cos_sin_cache_ = backend_->allocate_buffer(table.size() * sizeof(float));
  backend_->copy_to_device(cos_sin_cache_.data(), table.data(), table.size() * sizeof(float));

  residual_ = backend_->allocate_buffer(T * H * a);
  normed_ = backend_->allocate_buffer(T * H * a);
  qkv_ = backend_->allocate_buffer(T * (nq + 2 * nkv) * D * a);
  attn_out_ = backend_->allocate_buffer(T * nq * D * a);
  proj_out_ = backend_->allocate_buffer(T * H * a);
  gate_up_ = backend_->allocate_buffer(T * 2 * I * a);
  act_ = backend_->allocate_buffer(T * I * a);
}

int64_t LlamaModel::kv_cache_bytes_per_block(int64_t block_size) const {
  return 2 * config_.num_hidden_layers * config_.num_key_value_heads * block_size * config_.head_dim *
         static_cast<int64_t>(dtype_size(dtype_));
}

void LlamaModel::attention(const Layer& l, const ForwardBatch& batch, const KvCacheLayer& kv, int64_t T) {
  const ModelConfig& c = config_;
  const DType act = backend_->activation_dtype(dtype_);
  const int64_t H = c.hidden_size, D = c.head_dim;
  const int64_t nq = c.num_attention_heads, nkv = c.num_key_value_heads;
  const int64_t width = (nq + 2 * nkv) * D;

  Tensor normed = normed_.as_tensor(act, {T, H});
  Tensor qkv = qkv_.as_tensor(act, {T, width});
  Tensor q2 = qkv.slice_cols(0, nq * D);
  Tensor k2 = qkv.slice_cols(nq * D, (nq + nkv) * D);
  Tensor v2 = qkv.slice_cols((nq + nkv) * D, width);
  if (l.qkv_proj.data != nullptr) {
    backend_->linear({normed, l.qkv_proj, Tensor(), qkv});
  } else {
    backend_->linear({normed, l.q_proj, l.q_bias, q2});
    backend_->linear({normed, l.k_proj, l.k_bias, k2});
    backend_->linear({normed, l.v_proj, l.v_bias, v2});
  }

  // [T, heads, D] views into the qkv rows.
  auto heads_view = [&](const Tensor& cols, int64_t heads) {
    Tensor t = cols;
    t.ndim = 3;
    t.shape[0] = T, t.shape[1] = heads, t.shape[2] = D;
    t.stride[0] = width, t.stride[1] = D, t.stride[2] = 1;
    return t;
  };
  Tensor q = heads_view(q2, nq), k = heads_view(k2, nkv), v = heads_view(v2, nkv);
  if (c.qk_norm) {
    backend_->head_rms_norm({q, l.q_norm, static_cast<float>(c.rms_norm_eps)});
    backend_->head_rms_norm({k, l.k_norm, static_cast<float>(c.rms_norm_eps)});
  }
  Tensor cos_sin = cos_sin_cache_.as_tensor(DType::kFloat32, {max_position_, D});
  backend_->rotary_embedding({batch.positions, q, k, cos_sin});
  backend_->write_kv_cache({k, v, batch.slot_mapping, kv.k, kv.v});

  PagedAttentionParams p;
  p.q = q;
  p.k_cache = kv.k;
  p.v_cache = kv.v;
  p.block_tables = batch.block_tables;
  p.query_start_loc = batch.query_start_loc;
  p.seq_lens = batch.seq_lens;
  p.out = attn_out_.as_tensor(act, {T, nq, D});
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  p.max_query_len = batch.max_query_len;
  p.max_seq_len = batch.max_seq_len;
  backend_->paged_attention(p);
}

void LlamaModel::forward(const ForwardBatch& batch, const std::vector<KvCacheLayer>& kv_cache, Tensor hidden_out) {
  const ModelConfig& c = config_;
  const DType act = backend_->activation_dtype(dtype_);
  const int64_t T = batch.input_ids.shape[0];
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int64_t nq = c.num_attention_heads;
  const float eps = static_cast<float>(c.rms_norm_eps);
  PAGEDLLM_CHECK(T >= 1 && T <= max_num_tokens_, "step of " << T << " tokens exceeds the workspace of "
                                                            << max_num_tokens_);
  PAGEDLLM_CHECK(kv_cache.size() == layers_.size(), "one KV cache layer per model layer");

  Tensor residual = residual_.as_tensor(act, {T, H});
  Tensor normed = normed_.as_tensor(act, {T, H});
  Tensor proj_out = proj_out_.as_tensor(act, {T, H});
  Tensor attn_out = attn_out_.as_tensor(act, {T, nq * D});
  Tensor gate_up = gate_up_.as_tensor(act, {T, 2 * I});
  Tensor mlp_act = act_.as_tensor(act, {T, I});

  backend_->embedding({batch.input_ids, embed_tokens_, residual});
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    if (i == 0) {
      backend_->rms_norm({residual, Tensor(), l.input_norm, normed, eps});
    } else {
      backend_->rms_norm({proj_out, residual, l.input_norm, normed, eps});
    }
    attention(l, batch, kv_cache[i], T);
    backend_->linear({attn_out, l.o_proj, Tensor(), proj_out});
    backend_->rms_norm({proj_out, residual, l.post_norm, normed, eps});
    if (l.gate_up_proj.data != nullptr) {
      backend_->linear({normed, l.gate_up_proj, Tensor(), gate_up});
    } else {
      backend_->linear({normed, l.gate_proj, Tensor(), gate_up.slice_cols(0, I)});
      backend_->linear({normed, l.up_proj, Tensor(), gate_up.slice_cols(I, 2 * I)});
    }
    backend_->silu_and_mul({gate_up, mlp_act});
    backend_->linear({mlp_act, l.down_proj, Tensor(), proj_out});
  }
  backend_->rms_norm({proj_out, residual, final_norm_, normed, eps});
  backend_->gather_rows({normed, batch.logits_indices, hidden_out});
}

void LlamaModel::compute_logits(const Tensor& hidden, Tensor logits_out) {
  backend_->linear({hidden, lm_head_, Tensor(), logits_out});
}

}  // namespace pagedllm
