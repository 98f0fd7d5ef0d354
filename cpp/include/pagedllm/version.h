#pragma once

#define PAGEDLLM_VERSION "0.1.0"

namespace pagedllm {
inline const char* version() { return PAGEDLLM_VERSION; }
}  // namespace pagedllm
