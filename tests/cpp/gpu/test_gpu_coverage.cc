// Op coverage (DESIGN.md rule 8): every Backend op of backend.h and every launcher declared in
// cuda/kernels/*.cuh needs at least one GPU_OP_TEST. Runs without a device.
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "gpu_test.h"

namespace {

// Names of `virtual void <op>(const <Op>Params& p)` in backend.h.
std::set<std::string> backend_ops() {
  std::ifstream in(std::string(PAGEDLLM_SOURCE_DIR) + "/cpp/src/backend/backend.h");
  std::set<std::string> ops;
  std::string line;
  while (std::getline(in, line)) {
    const size_t v = line.find("virtual void ");
    if (v == std::string::npos || line.find("Params& p)") == std::string::npos) continue;
    const size_t begin = v + std::string("virtual void ").size();
    ops.insert(line.substr(begin, line.find('(', begin) - begin));
  }
  return ops;
}

// <op> of every `void launch_<op>(` in cuda/kernels/*.cuh.
std::set<std::string> launcher_ops() {
  std::set<std::string> ops;
  const std::string needle = "void launch_";
  for (const auto& entry : std::filesystem::directory_iterator(std::string(PAGEDLLM_SOURCE_DIR) + "/cuda/kernels")) {
    if (entry.path().extension() != ".cuh") continue;
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line)) {
      const size_t v = line.find(needle);
      if (v == std::string::npos) continue;
      const size_t begin = v + needle.size();
      const size_t end = line.find('(', begin);
      if (end != std::string::npos) ops.insert(line.substr(begin, end - begin));
    }
  }
  return ops;
}

HOST_TEST(GpuCoverage, every_backend_op_and_launcher_has_a_case) {
  const std::set<std::string> declared = backend_ops();
  EXPECT_GE(declared.size(), size_t{10});
  for (const std::string& op : declared)
    if (!pagedllm_test::covered_ops().count(op)) PAGEDLLM_TEST_FAIL_(false, "backend op without a GPU test: " + op);
  const std::set<std::string> launchers = launcher_ops();
  EXPECT_GE(launchers.size(), size_t{2});
  for (const std::string& op : launchers)
    if (!pagedllm_test::covered_ops().count(op)) PAGEDLLM_TEST_FAIL_(false, "launcher without a GPU test: launch_" + op);
}

}  // namespace
