// BlockPool: the fixed set of KV-cache blocks, with ref counts and an O(1) free list.
// Invariants: every block is either free (ref count 0, in the free list exactly once) or in use
// (ref count >= 1, not in the free list); num_free_blocks() equals the free list's length.
// Pure host code: it hands out block ids and never touches device memory.
#pragma once

#include <cstdint>
#include <vector>

#include "kv/free_block_queue.h"

namespace pagedllm {

class BlockPool {
 public:
  explicit BlockPool(int64_t num_blocks);

  int64_t num_blocks() const { return static_cast<int64_t>(ref_counts_.size()); }
  int64_t num_free_blocks() const { return free_queue_.size(); }
  int64_t num_used_blocks() const { return num_blocks() - num_free_blocks(); }

  // Takes the least recently freed block and sets its ref count to 1.
  // Precondition: num_free_blocks() > 0 (checked).
  int32_t allocate();
  // Adds a reference to an in-use block (sharing). Precondition: ref_count(block_id) >= 1.
  void incref(int32_t block_id);
  // Drops a reference; the block returns to the free list when its count reaches 0.
  // Precondition: ref_count(block_id) >= 1 (a double free is an internal error).
  void decref(int32_t block_id);
  int32_t ref_count(int32_t block_id) const;

  // Walks the whole pool and fails a CHECK on any broken invariant. O(num_blocks).
  void check_invariants() const;

 private:
  std::vector<int32_t> ref_counts_;  // [num_blocks]
  FreeBlockQueue free_queue_;
};

}  // namespace pagedllm
