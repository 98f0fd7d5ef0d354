// FreeBlockQueue: a doubly linked list of free block ids threaded through two index arrays,
// so push_back, pop_front and remove (of any block, for later prefix-cache eviction) are O(1)
// with no allocation after construction.
// Invariant: contains(b) is true exactly for the blocks linked in the list; size() counts them.
#pragma once

#include <cstdint>
#include <vector>

namespace pagedllm {

class FreeBlockQueue {
 public:
  // Starts with all blocks [0, num_blocks) queued in increasing order.
  explicit FreeBlockQueue(int64_t num_blocks);

  int64_t size() const { return size_; }
  bool contains(int32_t block_id) const;
  int32_t pop_front();               // precondition: size() > 0
  void push_back(int32_t block_id);  // precondition: !contains(block_id)
  void remove(int32_t block_id);     // precondition: contains(block_id)
  // The ids in queue order (for tests and invariant checks). O(size).
  std::vector<int32_t> to_vector() const;

 private:
  static constexpr int32_t kNone = -1;
  std::vector<int32_t> prev_;     // [num_blocks]
  std::vector<int32_t> next_;     // [num_blocks]
  std::vector<uint8_t> in_list_;  // [num_blocks]
  int32_t head_ = kNone;
  int32_t tail_ = kNone;
  int64_t size_ = 0;
};

}  // namespace pagedllm
