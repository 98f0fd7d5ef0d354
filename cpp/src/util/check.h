// PAGEDLLM_CHECK: internal invariants that stay on in release builds and name the bug.
// User input never reaches a CHECK: it is validated first and fails with a Status.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace pagedllm {

// Thrown only for broken internal invariants; the engine converts it to StatusCode::kInternal
// at the public boundary.
class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

[[noreturn]] void check_failed(const char* file, int line, const char* cond, const std::string& msg);

}  // namespace pagedllm

#define PAGEDLLM_CHECK(cond, ...)                                                  \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::ostringstream pagedllm_check_os_;                                       \
      pagedllm_check_os_ << "" __VA_ARGS__;                                        \
      ::pagedllm::check_failed(__FILE__, __LINE__, #cond, pagedllm_check_os_.str()); \
    }                                                                              \
  } while (0)
