// pagedllm_generate: loads a model directory and generates greedily from token ids.
//
//   pagedllm_generate MODEL_DIR [--max-tokens N] [--dtype D] [--num-kv-blocks N] IDS [IDS ...]
//
// Each IDS argument is one prompt: comma-separated token ids ("1,15043,29892"). All prompts
// run together in one continuously batched engine; each line of output is
// "<prompt index>: <generated ids separated by spaces>".
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "pagedllm/pagedllm.h"

namespace {

bool parse_ids(const std::string& text, std::vector<int32_t>* ids) {
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0') return false;
    ids->push_back(static_cast<int32_t>(v));
  }
  return !ids->empty();
}

int usage() {
  std::fprintf(stderr, "usage: pagedllm_generate MODEL_DIR [--max-tokens N] [--dtype D] [--num-kv-blocks N] IDS...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  pagedllm::EngineConfig config;
  config.model = argv[1];
  pagedllm::SamplingParams params;
  params.temperature = 0.0f;
  params.max_tokens = 16;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--max-tokens" || arg == "--dtype" || arg == "--num-kv-blocks") && i + 1 < argc) {
      std::string value = argv[++i];
      if (arg == "--max-tokens") params.max_tokens = std::atoll(value.c_str());
      if (arg == "--dtype") config.dtype = value;
      if (arg == "--num-kv-blocks") config.num_kv_blocks = std::atoll(value.c_str());
      continue;
    }
    std::vector<int32_t> ids;
    if (!parse_ids(arg, &ids)) return usage();
    prompts.push_back(ids);
  }
  if (prompts.empty()) return usage();

  auto created = pagedllm::Engine::create(config);
  if (!created.ok()) {
    std::fprintf(stderr, "error: %s\n", created.status().message().c_str());
    return 1;
  }
  pagedllm::Engine& engine = *created.value();
  for (size_t i = 0; i < prompts.size(); ++i) {
    pagedllm::Status status = engine.add_request(std::to_string(i), prompts[i], params);
    if (!status.ok()) {
      std::fprintf(stderr, "error: request %zu: %s\n", i, status.message().c_str());
      return 1;
    }
  }
  std::map<int, std::vector<int32_t>> generated;
  while (engine.has_unfinished_requests()) {
    auto outputs = engine.step();
    if (!outputs.ok()) {
      std::fprintf(stderr, "error: %s\n", outputs.status().message().c_str());
      return 1;
    }
    for (const pagedllm::RequestOutput& out : outputs.value()) {
      auto& ids = generated[std::stoi(out.request_id)];
      ids.insert(ids.end(), out.new_token_ids.begin(), out.new_token_ids.end());
    }
  }
  for (const auto& [index, ids] : generated) {
    std::printf("%d:", index);
    for (int32_t id : ids) std::printf(" %d", id);
    std::printf("\n");
  }
  return 0;
}
