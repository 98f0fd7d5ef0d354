#include <cstring>
#include <exception>

#include "test_harness.h"

namespace pagedllm_test {

std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

static int g_failures_in_case = 0;

void record_failure(const char* file, int line, const std::string& what) {
  ++g_failures_in_case;
  std::cerr << "  " << file << ":" << line << ": " << what << "\n";
}

}  // namespace pagedllm_test

// Prints one line per case and the closing line "N passed, N failed".
int main(int argc, char** argv) {
  using namespace pagedllm_test;
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0;
  for (const Case& c : registry()) {
    std::string full = std::string(c.suite) + "." + c.name;
    if (filter && full.find(filter) == std::string::npos) continue;
    g_failures_in_case = 0;
    try {
      c.fn();
    } catch (const AssertionAbort&) {
    } catch (const std::exception& e) {
      record_failure(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what());
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
  return failed == 0 ? 0 : 1;
}
