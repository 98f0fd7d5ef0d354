// main of pagedllm_gpu_tests. Prints one line per case run and the closing line "N passed,
// N failed"; without a device it runs only the HOST_TEST cases and then prints
// "SKIPPED: no GPU (<reason>)" as the very last line (exit 0 when those cases pass).
// Optional argv[1]: a substring filter on "Suite.name".
#include <exception>
#include <iostream>
#include <string>

#include "gpu_test.h"

namespace pagedllm_test {

namespace {

bool g_device = false;
pagedllm::gpuStream_t g_stream = nullptr;
int g_failures_in_case = 0;

}  // namespace

std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

void record_failure(const char* file, int line, const std::string& what) {
  ++g_failures_in_case;
  std::cerr << "  " << file << ":" << line << ": " << what << "\n";
}

bool device_available() { return g_device; }

pagedllm::gpuStream_t gpu_stream() { return g_stream; }

void sync_device() {
  PAGEDLLM_TEST_BOOL_(g_device, true);
  const pagedllm::gpuError_t launch = pagedllm::gpuGetLastError();
  const pagedllm::gpuError_t run = pagedllm::gpuStreamSynchronize(g_stream);
  if (launch != pagedllm::gpuSuccess || run != pagedllm::gpuSuccess) {
    const pagedllm::gpuError_t e = launch != pagedllm::gpuSuccess ? launch : run;
    PAGEDLLM_TEST_FAIL_(true, std::string("device error: ") + pagedllm::gpuGetErrorString(e));
  }
}

}  // namespace pagedllm_test

int main(int argc, char** argv) {
  using namespace pagedllm_test;
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int count = 0;
  const pagedllm::gpuError_t probe = pagedllm::gpuGetDeviceCount(&count);
  std::string no_device_reason;
  if (probe != pagedllm::gpuSuccess) {
    no_device_reason = pagedllm::gpuGetErrorString(probe);
    pagedllm::gpuGetLastError();
  } else if (count == 0) {
    no_device_reason = "no device";
  }
  g_device = no_device_reason.empty();
  if (g_device) {
    pagedllm::gpuDeviceProp_t prop;
    if (pagedllm::gpuSetDevice(0) != pagedllm::gpuSuccess ||
        pagedllm::gpuGetDeviceProperties(&prop, 0) != pagedllm::gpuSuccess ||
        pagedllm::gpuStreamCreateWithFlags(&g_stream, pagedllm::gpuStreamNonBlocking) != pagedllm::gpuSuccess) {
      std::cout << "device 0 is present but unusable: " << pagedllm::gpuGetErrorString(pagedllm::gpuGetLastError())
                << "\n0 passed, 1 failed\n";
      return 1;
    }
    std::cout << "device: " << prop.name << " (" << PAGEDLLM_GPU_PLATFORM_NAME << ", compute capability "
              << prop.major << "." << prop.minor << ")\n";
  }
  int passed = 0, failed = 0;
  for (const Case& c : registry()) {
    const std::string full = std::string(c.suite) + "." + c.name;
    if (filter && full.find(filter) == std::string::npos) continue;
    if (!g_device && !host_cases().count(full)) continue;
    g_failures_in_case = 0;
    try {
      c.fn();
    } catch (const AssertionAbort&) {
    } catch (const std::exception& e) {
      record_failure(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what());
    }
    if (g_device) {
      const pagedllm::gpuError_t e = pagedllm::gpuDeviceSynchronize();
      if (e != pagedllm::gpuSuccess) record_failure(__FILE__, __LINE__, std::string("device error after case: ") +
                                                                          pagedllm::gpuGetErrorString(e));
    }
    if (g_failures_in_case == 0) {
      ++passed;
      std::cout << "[ ok ] " << full << "\n";
    } else {
      ++failed;
      std::cout << "[FAIL] " << full << "\n";
    }
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  if (!g_device) std::cout << "SKIPPED: no GPU (" << no_device_reason << ")\n";
  if (g_stream != nullptr) pagedllm::gpuStreamDestroy(g_stream);
  return failed == 0 ? 0 : 1;
}
