// AllocationStats: the live bytes of one backend's device allocations and their high-water
// mark, for Backend::memory_info() of backends whose allocator does not report them (GPU).
// Invariant: allocated_bytes() is the sum of the sizes of the pointers recorded and not yet
// released; peak_bytes() >= allocated_bytes(). Not thread-safe, like the backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "util/check.h"

namespace pagedllm {

class AllocationStats {
 public:
  void on_allocate(const void* data, size_t nbytes) {
    PAGEDLLM_CHECK(sizes_.emplace(data, nbytes).second, "allocation " << data << " recorded twice");
    allocated_ += static_cast<int64_t>(nbytes);
    if (allocated_ > peak_) peak_ = allocated_;
  }
  // Precondition: data was recorded by on_allocate and not released since.
  void on_deallocate(const void* data) {
    auto it = sizes_.find(data);
    PAGEDLLM_CHECK(it != sizes_.end(), "release of unknown allocation " << data);
    allocated_ -= static_cast<int64_t>(it->second);
    sizes_.erase(it);
  }
  void reset_peak() { peak_ = allocated_; }
  int64_t allocated_bytes() const { return allocated_; }
  int64_t peak_bytes() const { return peak_; }

 private:
  std::unordered_map<const void*, size_t> sizes_;
  int64_t allocated_ = 0;
  int64_t peak_ = 0;
};

}  // namespace pagedllm
