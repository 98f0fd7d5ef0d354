// load_model_config: Hugging Face config.json (transformers 4.x and 5.x layouts) ->
// ModelConfig. Invariant: a returned ModelConfig names a supported architecture, has positive
// sizes with num_attention_heads % num_key_value_heads == 0 and an even head_dim, a rope type
// rope.cc implements with valid parameters, and eos ids without duplicates. Absent and null
// fields mean the same thing: the default.
#include "model/model_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "weights/json.h"

namespace pagedllm {

namespace {

constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

Status corrupt(const std::string& file, const std::string& field, const std::string& what) {
  return Status(StatusCode::kCorruptData, file + ": field '" + field + "' " + what);
}

// The member `key` of obj, or nullptr when absent or null.
const JsonValue* member(const JsonValue& obj, const std::string& key) {
  const JsonValue* v = obj.find(key);
  return (v && !v->is_null()) ? v : nullptr;
}

bool is_integer(const JsonValue& v) {
  if (!v.is_number()) return false;
  double d = v.as_number();
  return std::fabs(d) <= kMaxExactInteger && std::trunc(d) == d;
}

// Each read_* leaves *out unchanged when the field is absent or null, and fails with
// kCorruptData naming the field when it has the wrong type.
Status read_int(const JsonValue& obj, const std::string& key, const std::string& file,
                int64_t* out) {
  const JsonValue* v = member(obj, key);
  if (!v) return Status();
  if (!is_integer(*v)) return corrupt(file, key, "must be an integer");
  *out = v->as_int();
  return Status();
}

Status read_positive_int(const JsonValue& obj, const std::string& key, const std::string& file,
                         int64_t* out) {
  int64_t value = *out;
  Status s = read_int(obj, key, file, &value);
  if (!s.ok()) return s;
  if (value <= 0) return corrupt(file, key, "must be a positive integer");
  *out = value;
  return Status();
}

Status read_number(const JsonValue& obj, const std::string& key, const std::string& file,
                   double* out) {
  const JsonValue* v = member(obj, key);
  if (!v) return Status();
  if (!v->is_number() || !std::isfinite(v->as_number())) {
    return corrupt(file, key, "must be a finite number");
  }
  *out = v->as_number();
  return Status();
}

Status read_bool(const JsonValue& obj, const std::string& key, const std::string& file,
                 bool* out) {
  const JsonValue* v = member(obj, key);
  if (!v) return Status();
  if (!v->is_bool()) return corrupt(file, key, "must be true or false");
  *out = v->as_bool();
  return Status();
}

Status read_string(const JsonValue& obj, const std::string& key, const std::string& file,
                   std::string* out) {
  const JsonValue* v = member(obj, key);
  if (!v) return Status();
  if (!v->is_string()) return corrupt(file, key, "must be a string");
  *out = v->as_string();
  return Status();
}

// Appends the token id(s) of `key` (an integer or a list of integers) not already in *ids.
Status read_token_ids(const JsonValue& obj, const std::string& key, const std::string& file,
                      std::vector<int32_t>* ids) {
  const JsonValue* v = member(obj, key);
  if (!v) return Status();
  std::vector<JsonValue> items = v->is_array() ? v->as_array() : std::vector<JsonValue>{*v};
  for (const JsonValue& item : items) {
    if (!is_integer(item) || item.as_int() < 0 ||
        item.as_int() > std::numeric_limits<int32_t>::max()) {
      return corrupt(file, key, "must be a token id or a list of token ids");
    }
    int32_t id = static_cast<int32_t>(item.as_int());
    if (std::find(ids->begin(), ids->end(), id) == ids->end()) ids->push_back(id);
  }
  return Status();
}

// kNotFound when the file is absent, kCorruptData when it is not a JSON object.
Result<JsonValue> read_json_object(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status(StatusCode::kNotFound, path + " does not exist");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return Status(StatusCode::kNotFound, "cannot read " + path);
  Result<JsonValue> json = JsonValue::parse(text.str());
  if (!json.ok()) return Status(StatusCode::kCorruptData, path + ": " + json.status().message());
  if (!json->is_object()) return Status(StatusCode::kCorruptData, path + " is not a JSON object");
  return json;
}

Status read_architecture(const JsonValue& json, const std::string& file, std::string* out) {
  const JsonValue* archs = member(json, "architectures");
  if (archs) {
    if (!archs->is_array() || archs->as_array().empty() || !archs->as_array()[0].is_string()) {
      return corrupt(file, "architectures", "must be a non-empty list of strings");
    }
    *out = archs->as_array()[0].as_string();
  } else {
    static const std::map<std::string, std::string> kByModelType = {
        {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"},
        {"qwen2", "Qwen2ForCausalLM"}, {"qwen3", "Qwen3ForCausalLM"}};
    std::string model_type;
    Status s = read_string(json, "model_type", file, &model_type);
    if (!s.ok()) return s;
    auto it = kByModelType.find(model_type);
    if (it == kByModelType.end()) return corrupt(file, "architectures", "is missing");
    *out = it->second;
  }
  const auto& supported = supported_architectures();
  if (std::find(supported.begin(), supported.end(), *out) == supported.end()) {
    std::string list;
    for (const std::string& a : supported) list += (list.empty() ? "" : ", ") + a;
    return Status(StatusCode::kUnsupported,
                  "architecture " + *out + " is not supported (supported: " + list + ")");
  }
  return Status();
}

// "rope_parameters" (5.x, may carry rope_theta) or "rope_scaling" (4.x) + top-level rope_theta.
Status read_rope(const JsonValue& json, const std::string& file, ModelConfig* config) {
  Status s = read_number(json, "rope_theta", file, &config->rope_theta);
  if (!s.ok()) return s;
  std::string source = "rope_parameters";
  const JsonValue* params = member(json, source);
  if (!params) {
    source = "rope_scaling";
    params = member(json, source);
  }
  RopeScaling& rope = config->rope_scaling;
  if (params) {
    if (!params->is_object()) return corrupt(file, source, "must be an object");
    for (const auto& entry : params->as_object()) {
      if (entry.second.is_object()) {
        return Status(StatusCode::kUnsupported,
                      file + ": per-layer-type " + source + " are not supported");
      }
    }
    const std::string prefix = source + ".";
    auto field = [&](const char* key, double* out) {
      return read_number(*params, key, file, out).ok()
                 ? Status()
                 : corrupt(file, prefix + key, "must be a finite number");
    };
    if (!(s = field("rope_theta", &config->rope_theta)).ok()) return s;
    if (!(s = read_string(*params, "type", file, &rope.type)).ok()) return s;
    if (!(s = read_string(*params, "rope_type", file, &rope.type)).ok()) return s;
    if (!(s = field("factor", &rope.factor)).ok()) return s;
    if (!(s = field("low_freq_factor", &rope.low_freq_factor)).ok()) return s;
    if (!(s = field("high_freq_factor", &rope.high_freq_factor)).ok()) return s;
    rope.original_max_position_embeddings = config->max_position_embeddings;
    s = read_int(*params, "original_max_position_embeddings", file,
                 &rope.original_max_position_embeddings);
    if (!s.ok()) return s;
    s = read_int(json, "original_max_position_embeddings", file,
                 &rope.original_max_position_embeddings);
    if (!s.ok()) return s;
  }
  if (!(config->rope_theta > 0)) return corrupt(file, "rope_theta", "must be positive");
  if (rope.type == "default") return Status();
  if (rope.type != "linear" && rope.type != "llama3") {
    return Status(StatusCode::kUnsupported, file + ": rope type '" + rope.type +
                                                "' is not supported (supported: default, "
                                                "linear, llama3)");
  }
  if (!member(*params, "factor")) return corrupt(file, source + ".factor", "is missing");
  if (!(rope.factor > 0)) return corrupt(file, source + ".factor", "must be positive");
  if (rope.type == "llama3") {
    for (const char* key : {"low_freq_factor", "high_freq_factor"}) {
      if (!member(*params, key)) return corrupt(file, source + "." + key, "is missing");
    }
    if (!(rope.low_freq_factor > 0) || !(rope.high_freq_factor > rope.low_freq_factor)) {
      return corrupt(file, source + ".high_freq_factor",
                     "must exceed low_freq_factor, which must be positive");
    }
    if (rope.original_max_position_embeddings <= 0) {
      return corrupt(file, source + ".original_max_position_embeddings", "must be positive");
    }
  }
  return Status();
}

// Mistral: one window for every layer. Qwen2/Qwen3: a window only with use_sliding_window, on
// the layers marked "sliding_attention" (layer_types) or at index >= max_window_layers; a mix of
// windowed and full layers is unsupported.
Status read_sliding_window(const JsonValue& json, const std::string& file, ModelConfig* config) {
  if (config->architecture == "LlamaForCausalLM") return Status();
  int64_t window = 0;
  Status s = read_int(json, "sliding_window", file, &window);
  if (!s.ok()) return s;
  if (window < 0) return corrupt(file, "sliding_window", "must be non-negative");
  if (config->architecture == "MistralForCausalLM") {
    config->sliding_window = window;
    return Status();
  }
  bool use_sliding_window = false;
  if (!(s = read_bool(json, "use_sliding_window", file, &use_sliding_window)).ok()) return s;
  if (!use_sliding_window || window == 0) return Status();
  int64_t num_sliding = 0;
  const JsonValue* layer_types = member(json, "layer_types");
  if (layer_types) {
    if (!layer_types->is_array()) return corrupt(file, "layer_types", "must be a list");
    for (const JsonValue& t : layer_types->as_array()) {
      if (t.is_string() && t.as_string() == "sliding_attention") ++num_sliding;
    }
    if (static_cast<int64_t>(layer_types->as_array().size()) != config->num_hidden_layers) {
      return corrupt(file, "layer_types", "must have num_hidden_layers entries");
    }
  } else {
    int64_t max_window_layers = 28;
    if (!(s = read_int(json, "max_window_layers", file, &max_window_layers)).ok()) return s;
    num_sliding = std::max<int64_t>(0, config->num_hidden_layers - max_window_layers);
  }
  if (num_sliding == 0) return Status();
  if (num_sliding != config->num_hidden_layers) {
    return Status(StatusCode::kUnsupported,
                  file + ": a sliding window on only some layers is not supported");
  }
  config->sliding_window = window;
  return Status();
}

Status parse_config(const JsonValue& json, const std::string& file, ModelConfig* config) {
  Status s = read_architecture(json, file, &config->architecture);
  if (!s.ok()) return s;
  const std::pair<const char*, int64_t*> required[] = {
      {"vocab_size", &config->vocab_size},
      {"hidden_size", &config->hidden_size},
      {"intermediate_size", &config->intermediate_size},
      {"num_hidden_layers", &config->num_hidden_layers},
      {"num_attention_heads", &config->num_attention_heads}};
  for (const auto& [key, out] : required) {
    if (!member(json, key)) return corrupt(file, key, "is missing");
    if (!(s = read_positive_int(json, key, file, out)).ok()) return s;
  }
  config->num_key_value_heads = config->num_attention_heads;
  if (!(s = read_positive_int(json, "num_key_value_heads", file,
                              &config->num_key_value_heads)).ok()) {
    return s;
  }
  if (config->num_attention_heads % config->num_key_value_heads != 0) {
    return corrupt(file, "num_key_value_heads", "must divide num_attention_heads");
  }
  if (member(json, "head_dim")) {
    if (!(s = read_positive_int(json, "head_dim", file, &config->head_dim)).ok()) return s;
  } else if (config->hidden_size % config->num_attention_heads != 0) {
    return corrupt(file, "hidden_size", "must be a multiple of num_attention_heads");
  } else {
    config->head_dim = config->hidden_size / config->num_attention_heads;
  }
  if (config->head_dim % 2 != 0) return corrupt(file, "head_dim", "must be even");

  if (!(s = read_number(json, "rms_norm_eps", file, &config->rms_norm_eps)).ok()) return s;
  if (!(config->rms_norm_eps > 0)) return corrupt(file, "rms_norm_eps", "must be positive");
  s = read_positive_int(json, "max_position_embeddings", file, &config->max_position_embeddings);
  if (!s.ok()) return s;
  s = read_bool(json, "tie_word_embeddings", file, &config->tie_word_embeddings);
  if (!s.ok()) return s;
  if (!(s = read_string(json, "hidden_act", file, &config->hidden_act)).ok()) return s;
  if (config->hidden_act != "silu") {
    return Status(StatusCode::kUnsupported, file + ": hidden_act '" + config->hidden_act +
                                                "' is not supported (only silu)");
  }
  if (!(s = read_string(json, "torch_dtype", file, &config->torch_dtype)).ok()) return s;
  if (!(s = read_string(json, "dtype", file, &config->torch_dtype)).ok()) return s;
  if (!(s = read_rope(json, file, config)).ok()) return s;

  const std::string& arch = config->architecture;
  if (arch == "LlamaForCausalLM" || arch == "Qwen3ForCausalLM") {
    if (!(s = read_bool(json, "attention_bias", file, &config->attention_bias)).ok()) return s;
  }
  if (arch == "LlamaForCausalLM") {
    bool mlp_bias = false;
    if (!(s = read_bool(json, "mlp_bias", file, &mlp_bias)).ok()) return s;
    if (mlp_bias) return Status(StatusCode::kUnsupported, file + ": mlp_bias is not supported");
  }
  if (arch == "Qwen2ForCausalLM") config->attention_bias = true;
  config->qk_norm = arch == "Qwen3ForCausalLM";
  if (!(s = read_sliding_window(json, file, config)).ok()) return s;

  if (!(s = read_token_ids(json, "eos_token_id", file, &config->eos_token_ids)).ok()) return s;
  std::vector<int32_t> bos;
  if (!(s = read_token_ids(json, "bos_token_id", file, &bos)).ok()) return s;
  if (bos.size() > 1) return corrupt(file, "bos_token_id", "must be a single token id");
  if (!bos.empty()) config->bos_token_id = bos[0];
  return Status();
}

}  // namespace

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> kArchitectures = {
      "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
  return kArchitectures;
}

Result<ModelConfig> load_model_config(const std::string& model_dir) {
  const std::string config_path = (std::filesystem::path(model_dir) / "config.json").string();
  Result<JsonValue> json = read_json_object(config_path);
  if (!json.ok()) return json.status();
  ModelConfig config;
  Status s = parse_config(json.value(), config_path, &config);
  if (!s.ok()) return s;

  const std::string gen_path =
      (std::filesystem::path(model_dir) / "generation_config.json").string();
  Result<JsonValue> gen = read_json_object(gen_path);
  if (!gen.ok() && gen.status().code() != StatusCode::kNotFound) return gen.status();
  if (gen.ok()) {
    if (!(s = read_token_ids(gen.value(), "eos_token_id", gen_path, &config.eos_token_ids)).ok()) {
      return s;
    }
    std::vector<int32_t> bos;
    if (!(s = read_token_ids(gen.value(), "bos_token_id", gen_path, &bos)).ok()) return s;
    if (config.bos_token_id < 0 && bos.size() == 1) config.bos_token_id = bos[0];
  }
  return config;
}

}  // namespace pagedllm
