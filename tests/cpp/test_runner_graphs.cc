// ModelRunner graph capture and replay on the CPU: a RecordingBackend wraps the CPU backend and
// emulates a GPU graph (between begin_capture and end_capture it records each op with its
// params, by value, as a kernel launch would be captured, and refuses copies, synchronization
// and allocation; replay_graph re-runs the recorded ops). A runner with graphs and an eager
// runner on the same tiny random Llama must produce the same logits at every step of a
// workload mixing prefill chunks, decodes of 1..8 requests (padded to 1, 2, 4, 8) and
// finishing requests: this checks the padding (padded rows write no KV and read valid memory),
// the fixed input addresses, the logits rows and the graph selection without a GPU.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_cache_manager.h"
#include "model/llama.h"
#include "model/model_config.h"
#include "runner/model_runner.h"
#include "sched/scheduler.h"
#include "test_harness.h"
#include "weights/safetensors.h"

using namespace pagedllm;

namespace {

class RecordingBackend : public Backend {
 public:
  explicit RecordingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return "recording-" + inner_->name(); }
  DType activation_dtype(DType w) const override { return inner_->activation_dtype(w); }
  size_t default_kv_cache_bytes() const override { return inner_->default_kv_cache_bytes(); }
  void* allocate(size_t nbytes) override {
    PAGEDLLM_CHECK(!recording_, "allocation during capture");
    return inner_->allocate(nbytes);
  }
  void deallocate(void* data) override { inner_->deallocate(data); }
  void copy_to_device(void* d, const void* s, size_t n) override {
    PAGEDLLM_CHECK(!recording_, "copy_to_device during capture");
    inner_->copy_to_device(d, s, n);
  }
  void copy_to_device_async(void* d, const void* s, size_t n) override {
    PAGEDLLM_CHECK(!recording_, "copy_to_device_async during capture");
    inner_->copy_to_device_async(d, s, n);
  }
  void copy_to_host(void* d, const void* s, size_t n) override {
    PAGEDLLM_CHECK(!recording_, "copy_to_host during capture");
    inner_->copy_to_host(d, s, n);
  }
  void synchronize() override { PAGEDLLM_CHECK(!recording_, "synchronize during capture"); }
  // Weight storage is allocated and freed by the inner backend (it outlives the model).
  Tensor upload_weight(const Tensor& src, DType dtype, Buffer* storage) override {
    return inner_->upload_weight(src, dtype, storage);
  }
  Tensor pack_linear_weight(const std::vector<Tensor>& parts, Buffer* storage) override {
    return inner_->pack_linear_weight(parts, storage);
  }
  void embedding(const EmbeddingParams& p) override { op([=] { inner_->embedding(p); }); }
  void rms_norm(const RmsNormParams& p) override { op([=] { inner_->rms_norm(p); }); }
  void head_rms_norm(const HeadRmsNormParams& p) override { op([=] { inner_->head_rms_norm(p); }); }
  void linear(const LinearParams& p) override { op([=] { inner_->linear(p); }); }
  void rotary_embedding(const RotaryParams& p) override { op([=] { inner_->rotary_embedding(p); }); }
  void silu_and_mul(const SiluAndMulParams& p) override { op([=] { inner_->silu_and_mul(p); }); }
  void write_kv_cache(const WriteKvCacheParams& p) override { op([=] { inner_->write_kv_cache(p); }); }
  void paged_attention(const PagedAttentionParams& p) override { op([=] { inner_->paged_attention(p); }); }
  void gather_rows(const GatherRowsParams& p) override { op([=] { inner_->gather_rows(p); }); }
  void copy_blocks(const CopyBlocksParams& p) override { op([=] { inner_->copy_blocks(p); }); }

  bool supports_graphs() const override { return true; }
  void begin_capture() override {
    PAGEDLLM_CHECK(!recording_, "nested capture");
    recording_ = true;
    graphs_.emplace_back();
  }
  int64_t end_capture() override {
    PAGEDLLM_CHECK(recording_, "end_capture without begin");
    recording_ = false;
    return static_cast<int64_t>(graphs_.size()) - 1;
  }
  void replay_graph(int64_t id) override {
    PAGEDLLM_CHECK(!recording_ && id >= 0 && id < static_cast<int64_t>(graphs_.size()), "bad replay " << id);
    for (const auto& f : graphs_[static_cast<size_t>(id)]) f();
    ++num_replays_;
  }
  int64_t num_replays() const { return num_replays_; }
  int64_t num_graphs() const { return static_cast<int64_t>(graphs_.size()); }

 private:
  void op(std::function<void()> f) {
    if (recording_) {
      graphs_.back().push_back(std::move(f));
    } else {
      f();
    }
  }
  std::unique_ptr<Backend> inner_;
  bool recording_ = false;
  std::vector<std::vector<std::function<void()>>> graphs_;
  int64_t num_replays_ = 0;
};

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/pagedllm_graphs_XXXXXX";
    const char* made = mkdtemp(tmpl);
    PAGEDLLM_CHECK(made != nullptr, "mkdtemp failed");
    path = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

constexpr int64_t kVocab = 96, kHidden = 32, kInter = 64, kLayers = 2, kHeads = 4, kKvHeads = 2, kHeadDim = 8;
constexpr int64_t kMaxLen = 128;

// A random float32 Llama checkpoint (config.json + model.safetensors) in dir.
void write_tiny_llama(const std::string& dir) {
  std::ofstream(dir + "/config.json")
      << "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": " << kVocab
      << ", \"hidden_size\": " << kHidden << ", \"intermediate_size\": " << kInter
      << ", \"num_hidden_layers\": " << kLayers << ", \"num_attention_heads\": " << kHeads
      << ", \"num_key_value_heads\": " << kKvHeads << ", \"max_position_embeddings\": " << kMaxLen
      << ", \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"hidden_act\": \"silu\", "
         "\"tie_word_embeddings\": false, \"torch_dtype\": \"float32\", \"eos_token_id\": 2}";
  std::vector<std::pair<std::string, std::vector<int64_t>>> specs = {
      {"model.embed_tokens.weight", {kVocab, kHidden}}, {"model.norm.weight", {kHidden}},
      {"lm_head.weight", {kVocab, kHidden}}};
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    specs.push_back({p + "input_layernorm.weight", {kHidden}});
    specs.push_back({p + "post_attention_layernorm.weight", {kHidden}});
    specs.push_back({p + "self_attn.q_proj.weight", {kHeads * kHeadDim, kHidden}});
    specs.push_back({p + "self_attn.k_proj.weight", {kKvHeads * kHeadDim, kHidden}});
    specs.push_back({p + "self_attn.v_proj.weight", {kKvHeads * kHeadDim, kHidden}});
    specs.push_back({p + "self_attn.o_proj.weight", {kHidden, kHeads * kHeadDim}});
    specs.push_back({p + "mlp.gate_proj.weight", {kInter, kHidden}});
    specs.push_back({p + "mlp.up_proj.weight", {kInter, kHidden}});
    specs.push_back({p + "mlp.down_proj.weight", {kHidden, kInter}});
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  std::string header = "{", data;
  for (const auto& [name, shape] : specs) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    const bool norm = shape.size() == 1;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = norm ? 1.0f + 0.1f * dist(rng) : dist(rng);
    const size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    header += (header.size() > 1 ? ", \"" : "\"") + name + "\": {\"dtype\": \"F32\", \"shape\": [" +
              std::to_string(shape[0]) + (shape.size() > 1 ? ", " + std::to_string(shape[1]) : "") +
              "], \"data_offsets\": [" + std::to_string(begin) + ", " + std::to_string(data.size()) + "]}";
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  std::ofstream(dir + "/model.safetensors", std::ios::binary) << prefix << header << data;
}

// One engine-like pipeline: backend, model, runner, KV manager and scheduler.
struct Pipeline {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<WeightSet> weights;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<ModelRunner> runner;
  std::unique_ptr<KVCacheManager> kv;
  std::unique_ptr<Scheduler> scheduler;

  Pipeline(const std::string& dir, std::unique_ptr<Backend> b, const std::vector<int64_t>& graph_sizes) {
    backend = std::move(b);
    const ModelConfig mc = load_model_config(dir).value();
    weights = std::move(WeightSet::open_dir(dir).value());
    RunnerConfig rc;
    rc.block_size = 4;
    rc.max_num_batched_tokens = 24;
    rc.max_num_seqs = 8;
    rc.max_model_len = kMaxLen;
    model = std::move(LlamaModel::load(mc, *weights, backend.get(), DType::kFloat32, rc.max_num_batched_tokens,
                                       kMaxLen).value());
    runner = std::make_unique<ModelRunner>(rc, backend.get(), model.get());
    runner->profile_run();
    const int64_t num_blocks = 40;  // tight: forces preemption
    runner->allocate_kv_cache(num_blocks);
    if (!graph_sizes.empty()) runner->capture_graphs(graph_sizes);
    kv = std::make_unique<KVCacheManager>(num_blocks, rc.block_size, false);
    SchedulerConfig sc;
    sc.max_num_seqs = rc.max_num_seqs;
    sc.max_num_batched_tokens = rc.max_num_batched_tokens;
    sc.max_model_len = kMaxLen;
    sc.enable_chunked_prefill = true;
    scheduler = std::make_unique<Scheduler>(sc, kv.get());
  }
};

std::unique_ptr<Backend> cpu_backend() {
  std::string error;
  std::unique_ptr<Backend> b = create_backend("cpu", 1, &error);
  PAGEDLLM_CHECK(b != nullptr, "" << error);
  return b;
}

std::unique_ptr<Request> make_request(int64_t idx, std::mt19937& rng) {
  auto r = std::make_unique<Request>();
  r->request_id = "r" + std::to_string(idx);
  r->seq_id = 100 + static_cast<uint64_t>(idx);
  r->arrival_idx = idx;
  const int64_t len = 1 + static_cast<int64_t>(rng() % 30);
  for (int64_t i = 0; i < len; ++i) r->token_ids.push_back(static_cast<int32_t>(3 + rng() % (kVocab - 3)));
  r->num_prompt_tokens = len;
  r->params.max_tokens = 4 + static_cast<int64_t>(rng() % 14);
  r->params.ignore_eos = true;
  return r;
}

}  // namespace

TEST(RunnerGraphs, ReplayMatchesEagerThroughAWorkload) {
  TempDir dir;
  write_tiny_llama(dir.path);
  auto recording = std::make_unique<RecordingBackend>(cpu_backend());
  RecordingBackend* rec = recording.get();
  Pipeline eager(dir.path, cpu_backend(), {});
  Pipeline graphs(dir.path, std::move(recording), {1, 2, 4, 8});
  EXPECT_EQ(rec->num_graphs(), 4);
  ASSERT_TRUE(graphs.runner->graph_sizes() == (std::vector<int64_t>{1, 2, 4, 8}));

  int64_t next = 0;
  for (; next < 6; ++next) {
    std::mt19937 r1(static_cast<uint32_t>(next)), r2(static_cast<uint32_t>(next));
    eager.scheduler->add_request(make_request(next, r1));
    graphs.scheduler->add_request(make_request(next, r2));
  }
  int64_t steps = 0, decode_steps = 0;
  double max_diff = 0.0;
  while (eager.scheduler->has_unfinished_requests() && steps < 400) {
    SchedulerOutput a = eager.scheduler->schedule();
    SchedulerOutput b = graphs.scheduler->schedule();
    ASSERT_EQ(a.scheduled.size(), b.scheduled.size());
    if (a.empty()) break;
    std::vector<int32_t> rows;
    int64_t flat = 0;
    bool decode = true;
    for (const ScheduledRequest& s : a.scheduled) {
      if (s.samples) rows.push_back(static_cast<int32_t>(flat + s.num_tokens - 1));
      flat += s.num_tokens;
      decode = decode && s.num_tokens == 1 && s.samples;
    }
    decode_steps += decode ? 1 : 0;
    const float* la = eager.runner->execute(a, *eager.kv, rows);
    std::vector<float> copy(la, la + rows.size() * kVocab);
    const float* lb = graphs.runner->execute(b, *graphs.kv, rows);
    std::vector<int32_t> sampled(a.scheduled.size(), -1);
    size_t row = 0;
    for (size_t i = 0; i < a.scheduled.size(); ++i) {
      if (!a.scheduled[i].samples) continue;
      int32_t best = 0;
      for (int64_t v = 0; v < kVocab; ++v) {
        const float x = copy[row * kVocab + v], y = lb[row * kVocab + v];
        max_diff = std::max(max_diff, static_cast<double>(std::fabs(x - y)));
        if (x > copy[row * kVocab + best]) best = static_cast<int32_t>(v);
      }
      sampled[i] = best;
      ++row;
    }
    eager.scheduler->update(a, sampled);
    graphs.scheduler->update(b, sampled);
    if (steps % 5 == 2 && next < 14) {
      std::mt19937 r1(static_cast<uint32_t>(next)), r2(static_cast<uint32_t>(next));
      eager.scheduler->add_request(make_request(next, r1));
      graphs.scheduler->add_request(make_request(next, r2));
      ++next;
    }
    ++steps;
  }
  EXPECT_FALSE(eager.scheduler->has_unfinished_requests());
  EXPECT_FALSE(graphs.scheduler->has_unfinished_requests());
  EXPECT_LE(max_diff, 1e-4);
  EXPECT_GT(decode_steps, 5);
  EXPECT_EQ(graphs.runner->num_graph_steps(), decode_steps);
  EXPECT_EQ(rec->num_replays(), decode_steps + 4);  // + one upload replay per graph at capture
  EXPECT_EQ(eager.runner->num_graph_steps(), 0);
}

TEST(RunnerGraphs, CaptureRefusesHostWork) {
  auto recording = std::make_unique<RecordingBackend>(cpu_backend());
  recording->begin_capture();
  EXPECT_CHECK_FAILS(recording->synchronize());
  EXPECT_CHECK_FAILS(recording->allocate(64));
  recording->end_capture();
}
