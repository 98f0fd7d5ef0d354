// host_memory_info(): the default Backend::memory_info(), describing host RAM.
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "backend/backend.h"

namespace pagedllm {

DeviceMemoryInfo host_memory_info() {
  DeviceMemoryInfo info;
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0) info.total_bytes = static_cast<int64_t>(pages) * page_size;
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    long long kib = 0;
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      if (std::sscanf(line, "MemAvailable: %lld kB", &kib) == 1) {
        info.free_bytes = static_cast<int64_t>(kib) * 1024;
        break;
      }
    }
    std::fclose(f);
  }
  return info;
}

}  // namespace pagedllm
