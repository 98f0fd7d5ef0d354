// create_backend's device strings and errors, and build_info(): a build that found nvcc must
// contain the CUDA backend (so a CUDA build silently skipped, e.g. for missing cuBLAS headers,
// fails this test), and asking for "cuda" fails with the error that fits this build.
#include <iostream>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "pagedllm/build_info.h"
#include "test_harness.h"

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(BackendFactory, build_info_lists_the_compiled_backends) {
  const pagedllm::BuildInfo info = pagedllm::build_info();
  ASSERT_TRUE(!info.backends.empty());
  EXPECT_EQ(info.backends[0], "cpu");
#if defined(PAGEDLLM_CUDA_COMPILER_FOUND)
  EXPECT_TRUE(info.cuda_compiler_found);
  EXPECT_TRUE(info.backends.size() == 2 && info.backends[1] == "cuda");
#endif
  std::cout << "built backends:";
  for (const std::string& b : info.backends) std::cout << " " << b;
  std::cout << "\n";
}

TEST(BackendFactory, device_strings) {
  std::string error;
  EXPECT_TRUE(pagedllm::create_backend("tpu", 1, &error) == nullptr);
  EXPECT_TRUE(contains(error, "unknown device 'tpu': use 'cpu', 'cuda' or 'cuda:N'"));
  EXPECT_TRUE(pagedllm::create_backend("cuda:", 1, &error) == nullptr);
  EXPECT_TRUE(contains(error, "malformed device 'cuda:'"));
  EXPECT_TRUE(pagedllm::create_backend("cuda:-1", 1, &error) == nullptr);
  EXPECT_TRUE(contains(error, "malformed device 'cuda:-1'"));
  EXPECT_TRUE(pagedllm::create_backend("CPU", 1, &error) == nullptr);
  EXPECT_TRUE(pagedllm::create_backend("cpu", 1, &error) != nullptr);
}

TEST(BackendFactory, cuda_error_fits_the_build) {
  std::string error;
  std::unique_ptr<pagedllm::Backend> b = pagedllm::create_backend("cuda", 1, &error);
  if (pagedllm::build_info().backends.size() > 1) {
    if (b != nullptr) {
      EXPECT_EQ(b->name(), "cuda:0");
    } else {
      EXPECT_TRUE(contains(error, "no cuda device is available") || contains(error, "cuBLAS"));
    }
  } else {
    EXPECT_TRUE(b == nullptr);
    EXPECT_TRUE(contains(error, "this build has no CUDA backend (built backends: cpu)"));
    EXPECT_TRUE(contains(error, "PAGEDLLM_CUDA=ON"));
  }
}

}  // namespace
