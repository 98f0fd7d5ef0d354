#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/rope.h"
#include "test_harness.h"
#include "util/check.h"

using pagedllm::ModelConfig;
using pagedllm::Result;
using pagedllm::StatusCode;

namespace {

// A scratch model directory removed with its files when the test ends.
struct ModelDir {
  std::string path;
  ModelDir() {
    char tmpl[] = "/tmp/pagedllm_cfg_XXXXXX";
    const char* made = mkdtemp(tmpl);
    if (made) path = made;
  }
  ~ModelDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path + "/" + name, std::ios::binary) << text;
  }
};

Result<ModelConfig> load(const std::string& config, const std::string& generation = "") {
  ModelDir dir;
  dir.write("config.json", config);
  if (!generation.empty()) dir.write("generation_config.json", generation);
  return pagedllm::load_model_config(dir.path);
}

ModelConfig load_ok(const std::string& config, const std::string& generation = "") {
  Result<ModelConfig> r = load(config, generation);
  if (!r.ok()) PAGEDLLM_TEST_FAIL_(true, "load failed: " + r.status().message());
  return r.value();
}

int code(StatusCode c) { return static_cast<int>(c); }

// Expects `config` to fail with `expected`, the message mentioning `needle`.
void expect_error(const std::string& config, StatusCode expected, const std::string& needle) {
  Result<ModelConfig> r = load(config);
  if (r.ok()) {
    PAGEDLLM_TEST_FAIL_(false, "accepted a bad config, expected an error naming " + needle);
    return;
  }
  EXPECT_EQ(code(r.status().code()), code(expected));
  if (r.status().message().find(needle) == std::string::npos) {
    PAGEDLLM_TEST_FAIL_(false, "message '" + r.status().message() + "' lacks '" + needle + "'");
  }
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  if (at == std::string::npos) PAGEDLLM_TEST_FAIL_(true, "test bug: no '" + from + "'");
  return text.replace(at, from.size(), to);
}

std::vector<int32_t> ids(std::initializer_list<int32_t> v) { return v; }

const char* kMinimal = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 100,
  "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
  "num_attention_heads": 4})";

const char* kLlama4x = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096,
  "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})";

const char* kLlama5x = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": true, "attention_dropout": 0.0,
  "bos_token_id": 1, "dtype": "float16", "eos_token_id": 2, "head_dim": 64,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 5632, "max_position_embeddings": 4096, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 22,
  "num_key_value_heads": 4, "pad_token_id": null, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_parameters": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 8192, "rope_theta": 500000.0,
                      "rope_type": "llama3"},
  "tie_word_embeddings": true, "transformers_version": "5.23.0", "use_cache": true,
  "vocab_size": 32000})";

const char* kMistral4x = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32000})";

const char* kMistral5x = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "dtype": "bfloat16",
  "eos_token_id": 2, "head_dim": 128, "hidden_act": "silu", "hidden_size": 5120,
  "intermediate_size": 14336, "max_position_embeddings": 1024000, "model_type": "mistral",
  "num_attention_heads": 32, "num_hidden_layers": 40, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
  "sliding_window": null, "tie_word_embeddings": false, "vocab_size": 131072})";

const char* kQwen2_4x = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

const char* kQwen2_5x = R"({
  "architectures": ["Qwen2ForCausalLM"], "bos_token_id": null, "dtype": "bfloat16",
  "eos_token_id": null, "hidden_act": "silu", "hidden_size": 1536,
  "intermediate_size": 8960, "layer_types": ["full_attention", "full_attention"],
  "max_position_embeddings": 131072, "max_window_layers": 2, "model_type": "qwen2",
  "num_attention_heads": 12, "num_hidden_layers": 2, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
  "sliding_window": null, "tie_word_embeddings": false, "use_sliding_window": false,
  "vocab_size": 151936})";

const char* kQwen3_4x = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "intermediate_size": 3072, "max_position_embeddings": 40960,
  "max_window_layers": 28, "model_type": "qwen3", "num_attention_heads": 16,
  "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
  "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_sliding_window": false,
  "vocab_size": 151936})";

const char* kQwen3_5x = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "dtype": "bfloat16",
  "eos_token_id": [151645, 151643], "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 2560, "intermediate_size": 9728, "layer_types": ["full_attention"],
  "max_position_embeddings": 262144, "max_window_layers": 36, "model_type": "qwen3",
  "num_attention_heads": 32, "num_hidden_layers": 1, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 5000000, "rope_type": "default"},
  "sliding_window": null, "tie_word_embeddings": true, "use_sliding_window": false,
  "vocab_size": 151936})";

// HF's formulas in double precision, written independently of rope.cc.
std::vector<double> naive_inv_freq(double theta, int64_t dim) {
  std::vector<double> out;
  for (int64_t i = 0; i < dim; i += 2) out.push_back(1.0 / std::pow(theta, double(i) / dim));
  return out;
}

std::vector<double> naive_llama3(std::vector<double> inv, double factor, double low, double high,
                                 double old_len, int counts[3]) {
  const double low_wavelen = old_len / low, high_wavelen = old_len / high;
  for (double& f : inv) {
    double wavelen = 2 * M_PI / f;
    if (wavelen < high_wavelen) {
      ++counts[0];
    } else if (wavelen > low_wavelen) {
      ++counts[2];
      f = f / factor;
    } else {
      ++counts[1];
      double smooth = (old_len / wavelen - low) / (high - low);
      f = (1 - smooth) * f / factor + smooth * f;
    }
  }
  return inv;
}

// Float32 arithmetic against a double reference: `rel` relative tolerance per element.
void expect_inv_freq_near(const std::vector<double>& got, const std::vector<double>& want,
                          double rel = 4e-7) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], rel * want[i]);
}

}  // namespace

TEST(ModelConfig, Llama4x) {
  ModelConfig c = load_ok(kLlama4x);
  EXPECT_EQ(c.architecture, std::string("LlamaForCausalLM"));
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, std::string("llama3"));
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.torch_dtype, std::string("bfloat16"));
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_TRUE(c.eos_token_ids == ids({128001, 128008, 128009}));
  EXPECT_EQ(c.bos_token_id, 128000);
}

TEST(ModelConfig, Llama5x) {
  ModelConfig c = load_ok(kLlama5x);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, std::string("llama3"));
  EXPECT_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_EQ(c.torch_dtype, std::string("float16"));
  EXPECT_TRUE(c.eos_token_ids == ids({2}));
  EXPECT_EQ(c.bos_token_id, 1);
}

TEST(ModelConfig, Mistral) {
  ModelConfig c = load_ok(kMistral4x);
  EXPECT_EQ(c.architecture, std::string("MistralForCausalLM"));
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_scaling.type, std::string("default"));
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  ModelConfig d = load_ok(kMistral5x);
  EXPECT_EQ(d.sliding_window, 0);
  EXPECT_EQ(d.head_dim, 128);
  EXPECT_EQ(d.hidden_size, 5120);
  EXPECT_EQ(d.rope_theta, 1000000.0);
  EXPECT_EQ(d.max_position_embeddings, 1024000);
}

TEST(ModelConfig, Qwen2) {
  ModelConfig c = load_ok(kQwen2_4x);
  EXPECT_EQ(c.architecture, std::string("Qwen2ForCausalLM"));
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_TRUE(c.eos_token_ids == ids({151643}));
  ModelConfig d = load_ok(kQwen2_5x);
  EXPECT_TRUE(d.attention_bias);
  EXPECT_EQ(d.head_dim, 128);
  EXPECT_EQ(d.rope_theta, 10000.0);
  EXPECT_EQ(d.sliding_window, 0);
  EXPECT_TRUE(d.eos_token_ids.empty());
  EXPECT_EQ(d.bos_token_id, -1);
  EXPECT_TRUE(load_ok(replace(kQwen2_4x, "\"attention_dropout\"",
                              "\"attention_bias\": false, \"attention_dropout\""))
                  .attention_bias);
}

TEST(ModelConfig, Qwen3) {
  ModelConfig c = load_ok(kQwen3_4x);
  EXPECT_EQ(c.architecture, std::string("Qwen3ForCausalLM"));
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_scaling.type, std::string("default"));
  EXPECT_EQ(c.sliding_window, 0);
  ModelConfig d = load_ok(kQwen3_5x);
  EXPECT_TRUE(d.qk_norm);
  EXPECT_EQ(d.rope_theta, 5e6);
  EXPECT_TRUE(d.eos_token_ids == ids({151645, 151643}));
}

TEST(ModelConfig, QwenSlidingWindow) {
  std::string on = replace(kQwen2_4x, "\"use_sliding_window\": false",
                           "\"use_sliding_window\": true");
  EXPECT_EQ(load_ok(on).sliding_window, 0);
  EXPECT_EQ(load_ok(replace(on, "\"max_window_layers\": 24", "\"max_window_layers\": 0"))
                .sliding_window,
            32768);
  expect_error(replace(on, "\"max_window_layers\": 24", "\"max_window_layers\": 12"),
               StatusCode::kUnsupported, "sliding window");
  std::string layers = replace(kQwen2_5x, "\"use_sliding_window\": false",
                               "\"use_sliding_window\": true");
  layers = replace(layers, "\"sliding_window\": null", "\"sliding_window\": 4096");
  EXPECT_EQ(load_ok(layers).sliding_window, 0);
  EXPECT_EQ(load_ok(replace(layers, "[\"full_attention\", \"full_attention\"]",
                            "[\"sliding_attention\", \"sliding_attention\"]"))
                .sliding_window,
            4096);
  expect_error(replace(layers, "[\"full_attention\", \"full_attention\"]",
                       "[\"full_attention\", \"sliding_attention\"]"),
               StatusCode::kUnsupported, "sliding window");
}

TEST(ModelConfig, Defaults) {
  ModelConfig c = load_ok(kMinimal);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, std::string("default"));
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.hidden_act, std::string("silu"));
  EXPECT_EQ(c.torch_dtype, std::string("float32"));
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_EQ(c.bos_token_id, -1);
  std::string nulls = replace(kMinimal, "\"vocab_size\"",
                              "\"head_dim\": null, \"num_key_value_heads\": null, "
                              "\"rope_scaling\": null, \"eos_token_id\": null, \"vocab_size\"");
  ModelConfig d = load_ok(nulls);
  EXPECT_EQ(d.num_key_value_heads, 4);
  EXPECT_EQ(d.head_dim, 16);
  std::string by_type = replace(kMinimal, "\"architectures\": [\"LlamaForCausalLM\"]",
                                "\"model_type\": \"qwen3\"");
  EXPECT_EQ(load_ok(by_type).architecture, std::string("Qwen3ForCausalLM"));
}

TEST(ModelConfig, EosMergedWithGenerationConfig) {
  std::string config =
      replace(kMinimal, "\"vocab_size\"", "\"eos_token_id\": [2, 3], \"vocab_size\"");
  ModelConfig c = load_ok(config, R"({"bos_token_id": 1, "eos_token_id": [3, 4, 2, 4]})");
  EXPECT_TRUE(c.eos_token_ids == ids({2, 3, 4}));
  EXPECT_EQ(c.bos_token_id, 1);
  ModelConfig d = load_ok(kQwen2_4x, R"({"bos_token_id": 7, "eos_token_id": [151645, 151643]})");
  EXPECT_TRUE(d.eos_token_ids == ids({151643, 151645}));
  EXPECT_EQ(d.bos_token_id, 151643);
  EXPECT_TRUE(load_ok(kMinimal, R"({"eos_token_id": 9})").eos_token_ids == ids({9}));
  EXPECT_EQ(code(load(kMinimal, "{\"eos_token_id\": [1,").status().code()),
            code(StatusCode::kCorruptData));
  EXPECT_EQ(code(load(kMinimal, R"({"eos_token_id": "x"})").status().code()),
            code(StatusCode::kCorruptData));
}

TEST(ModelConfig, MissingOrMalformedFile) {
  ModelDir dir;
  auto r = pagedllm::load_model_config(dir.path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code(r.status().code()), code(StatusCode::kNotFound));
  EXPECT_EQ(code(pagedllm::load_model_config(dir.path + "/absent").status().code()),
            code(StatusCode::kNotFound));
  expect_error("{\"architectures\": [", StatusCode::kCorruptData, "config.json");
  expect_error("[1]", StatusCode::kCorruptData, "config.json");
}

TEST(ModelConfig, RequiredFields) {
  for (const char* field : {"vocab_size", "hidden_size", "intermediate_size",
                            "num_hidden_layers", "num_attention_heads"}) {
    std::string key = std::string("\"") + field + "\": ";
    std::string text = kMinimal;
    size_t at = text.find(key) + key.size();
    size_t end = text.find_first_of(",}", at);
    std::string value = text.substr(at, end - at);
    expect_error(replace(text, key + value, "\"unused\": 0"), StatusCode::kCorruptData, field);
    for (const char* bad : {"0", "-4", "2.5", "\"64\"", "null", "true"}) {
      expect_error(replace(text, key + value, key + bad), StatusCode::kCorruptData, field);
    }
  }
  expect_error(replace(kMinimal, "[\"LlamaForCausalLM\"]", "[]"), StatusCode::kCorruptData,
               "architectures");
  expect_error(replace(kMinimal, "\"architectures\": [\"LlamaForCausalLM\"], ", ""),
               StatusCode::kCorruptData, "architectures");
}

TEST(ModelConfig, InvalidValues) {
  std::string base = kMinimal;
  auto with = [&](const std::string& extra) {
    return replace(base, "\"vocab_size\"", extra + ", \"vocab_size\"");
  };
  expect_error(with("\"num_key_value_heads\": 3"), StatusCode::kCorruptData,
               "num_key_value_heads");
  expect_error(with("\"num_key_value_heads\": 0"), StatusCode::kCorruptData,
               "num_key_value_heads");
  expect_error(with("\"head_dim\": 15"), StatusCode::kCorruptData, "head_dim");
  expect_error(replace(base, "\"hidden_size\": 64", "\"hidden_size\": 66"),
               StatusCode::kCorruptData, "hidden_size");
  expect_error(with("\"rms_norm_eps\": \"small\""), StatusCode::kCorruptData, "rms_norm_eps");
  expect_error(with("\"rms_norm_eps\": NaN"), StatusCode::kCorruptData, "rms_norm_eps");
  expect_error(with("\"tie_word_embeddings\": 1"), StatusCode::kCorruptData,
               "tie_word_embeddings");
  expect_error(with("\"eos_token_id\": [1, -2]"), StatusCode::kCorruptData, "eos_token_id");
  expect_error(with("\"eos_token_id\": 4294967296"), StatusCode::kCorruptData, "eos_token_id");
  expect_error(with("\"rope_theta\": 0"), StatusCode::kCorruptData, "rope_theta");
  expect_error(with("\"rope_scaling\": [1]"), StatusCode::kCorruptData, "rope_scaling");
  expect_error(with("\"rope_scaling\": {\"type\": \"linear\"}"), StatusCode::kCorruptData,
               "rope_scaling.factor");
  expect_error(with("\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": \"2\"}"),
               StatusCode::kCorruptData, "rope_scaling.factor");
  expect_error(with("\"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8.0, "
                    "\"high_freq_factor\": 4.0}"),
               StatusCode::kCorruptData, "rope_parameters.low_freq_factor");
  expect_error(with("\"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8.0, "
                    "\"low_freq_factor\": 4.0, \"high_freq_factor\": 4.0}"),
               StatusCode::kCorruptData, "high_freq_factor");
}

TEST(ModelConfig, UnsupportedInputs) {
  std::string base = kMinimal;
  auto with = [&](const std::string& extra) {
    return replace(base, "\"vocab_size\"", extra + ", \"vocab_size\"");
  };
  expect_error(replace(base, "LlamaForCausalLM", "GPT2LMHeadModel"), StatusCode::kUnsupported,
               "Qwen3ForCausalLM");
  expect_error(replace(base, "LlamaForCausalLM", "GPT2LMHeadModel"), StatusCode::kUnsupported,
               "GPT2LMHeadModel");
  expect_error(with("\"hidden_act\": \"gelu\""), StatusCode::kUnsupported, "gelu");
  for (const char* type : {"dynamic", "yarn", "longrope"}) {
    expect_error(with(std::string("\"rope_scaling\": {\"rope_type\": \"") + type +
                      "\", \"factor\": 2.0}"),
                 StatusCode::kUnsupported, type);
    expect_error(with(std::string("\"rope_parameters\": {\"type\": \"") + type +
                      "\", \"factor\": 2.0, \"rope_theta\": 10000.0}"),
                 StatusCode::kUnsupported, type);
  }
  expect_error(with("\"rope_parameters\": {\"full_attention\": {\"rope_type\": \"default\"}}"),
               StatusCode::kUnsupported, "rope_parameters");
  expect_error(with("\"mlp_bias\": true"), StatusCode::kUnsupported, "mlp_bias");
}

TEST(ModelConfig, RopeFieldSources) {
  auto with = [](const std::string& extra) {
    return replace(kMinimal, "\"vocab_size\"", extra + ", \"vocab_size\"");
  };
  ModelConfig a = load_ok(with("\"rope_theta\": 1000.0, \"rope_scaling\": "
                               "{\"type\": \"linear\", \"factor\": 4.0}"));
  EXPECT_EQ(a.rope_scaling.type, std::string("linear"));
  EXPECT_EQ(a.rope_scaling.factor, 4.0);
  EXPECT_EQ(a.rope_theta, 1000.0);
  ModelConfig b = load_ok(with("\"rope_theta\": 1000.0, \"rope_parameters\": "
                               "{\"rope_type\": \"default\", \"rope_theta\": 20000.0}"));
  EXPECT_EQ(b.rope_theta, 20000.0);
  ModelConfig c = load_ok(with("\"max_position_embeddings\": 4096, \"rope_parameters\": "
                               "{\"rope_type\": \"llama3\", \"factor\": 8.0, "
                               "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}"));
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
}

TEST(Rope, DefaultInvFreqMatchesHfFormula) {
  ModelConfig c;
  for (double theta : {10000.0, 500000.0, 1000000.0}) {
    for (int64_t dim : {16, 64, 80, 128}) {
      c.rope_theta = theta;
      c.head_dim = dim;
      expect_inv_freq_near(pagedllm::rope_inv_freq(c), naive_inv_freq(theta, dim));
    }
  }
}

TEST(Rope, LinearInvFreqDividesByFactor) {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_scaling.type = "linear";
  c.rope_scaling.factor = 4.0;
  std::vector<double> want = naive_inv_freq(10000.0, 64);
  for (double& f : want) f /= 4.0;
  expect_inv_freq_near(pagedllm::rope_inv_freq(c), want);
}

TEST(Rope, Llama3InvFreqMatchesHfFormula) {
  for (double factor : {8.0, 32.0}) {
    ModelConfig c = load_ok(kLlama4x);
    c.rope_scaling.factor = factor;
    int counts[3] = {0, 0, 0};
    std::vector<double> want =
        naive_llama3(naive_inv_freq(500000.0, 128), factor, 1.0, 4.0, 8192, counts);
    EXPECT_GT(counts[0], 0);
    EXPECT_GT(counts[1], 0);
    EXPECT_GT(counts[2], 0);
    // The smoothing band divides by (high - low) after a subtraction: ~3x float rounding.
    expect_inv_freq_near(pagedllm::rope_inv_freq(c), want, 2e-6);
  }
}

TEST(Rope, CosSinCacheLayout) {
  ModelConfig c = load_ok(kLlama4x);
  const int64_t max_position = 300;
  std::vector<float> cache = pagedllm::build_cos_sin_cache(c, max_position);
  ASSERT_EQ(cache.size(), static_cast<size_t>(max_position * c.head_dim));
  std::vector<double> inv = pagedllm::rope_inv_freq(c);
  const int64_t half = c.head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    EXPECT_EQ(cache[i], 1.0f);
    EXPECT_EQ(cache[half + i], 0.0f);
  }
  for (int64_t p : {1, 7, 299}) {
    for (int64_t i = 0; i < half; ++i) {
      double angle = double(p) * inv[i];
      const float* row = cache.data() + p * c.head_dim;
      EXPECT_NEAR(row[i], std::cos(angle), 2e-5);
      EXPECT_NEAR(row[half + i], std::sin(angle), 2e-5);
    }
  }
  EXPECT_TRUE(pagedllm::build_cos_sin_cache(c, 0).empty());
}

TEST(Rope, PreconditionsAreChecked) {
  ModelConfig c;
  c.head_dim = 7;
  EXPECT_CHECK_FAILS(pagedllm::rope_inv_freq(c));
  c.head_dim = 8;
  c.rope_scaling.type = "yarn";
  EXPECT_CHECK_FAILS(pagedllm::rope_inv_freq(c));
  c.rope_scaling.type = "default";
  EXPECT_CHECK_FAILS(pagedllm::build_cos_sin_cache(c, -1));
}
