// What this build of pagedllm contains (for diagnostics and the test suite).
#pragma once

#include <string>
#include <vector>

namespace pagedllm {

struct BuildInfo {
  // Backends compiled in: "cpu", then "cuda" when the CUDA backend was built.
  std::vector<std::string> backends;
  // True when the build found nvcc with PAGEDLLM_CUDA = AUTO or ON, so "cuda" is expected in
  // backends (a CUDA backend skipped for a missing dependency leaves it out).
  bool cuda_compiler_found = false;
};

BuildInfo build_info();

}  // namespace pagedllm
