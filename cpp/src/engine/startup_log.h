// The start-up log of Engine::create: StartupPhases times each phase (load weights, profile,
// KV cache, graph capture; disjoint and in order, begin() ends the running phase) and
// print_startup writes the KV-cache size, how it was chosen, the graphs (graph_bytes: the device
// memory their capture took) and the phases to stderr.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "engine/kv_cache_sizing.h"
#include "pagedllm/engine.h"

namespace pagedllm {

class StartupPhases {
 public:
  StartupPhases() : start_(Clock::now()), phase_start_(start_) {}

  void begin(std::string name) {
    end();
    name_ = std::move(name);
    phase_start_ = Clock::now();
  }
  void end() {
    if (name_.empty()) return;
    phases_.emplace_back(std::move(name_), seconds_since(phase_start_));
    name_.clear();
  }
  double total_seconds() const { return seconds_since(start_); }
  const std::vector<std::pair<std::string, double>>& phases() const { return phases_; }
  // "load weights 1.20 s, profile 0.31 s, ..."
  std::string summary() const {
    std::string s;
    char buf[64];
    for (const auto& [name, sec] : phases_) {
      std::snprintf(buf, sizeof(buf), "%.2f s", sec);
      if (!s.empty()) s += ", ";
      s += name + " " + buf;
    }
    return s;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  }
  Clock::time_point start_, phase_start_;
  std::string name_;
  std::vector<std::pair<std::string, double>> phases_;
};

void print_startup(const ModelInfo& info, const std::string& device, const KvCacheSizing& sizing,
                   double gpu_memory_utilization, const std::vector<int64_t>& graph_sizes,
                   int64_t graph_bytes, const StartupPhases& phases);

}  // namespace pagedllm
