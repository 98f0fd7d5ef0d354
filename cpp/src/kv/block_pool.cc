// BlockPool: ref counts plus the free list.
// Invariant: ref_counts_[b] == 0 <=> free_queue_.contains(b); counts are never negative.
#include "kv/block_pool.h"

#include "util/check.h"

namespace pagedllm {

BlockPool::BlockPool(int64_t num_blocks)
    : ref_counts_(static_cast<size_t>(num_blocks < 0 ? 0 : num_blocks), 0), free_queue_(num_blocks) {}

int32_t BlockPool::allocate() {
  PAGEDLLM_CHECK(num_free_blocks() > 0, "allocate from a block pool with no free blocks");
  int32_t block_id = free_queue_.pop_front();
  PAGEDLLM_CHECK(ref_counts_[block_id] == 0,
                 "free block " << block_id << " has ref count " << ref_counts_[block_id]);
  ref_counts_[block_id] = 1;
  return block_id;
}

void BlockPool::incref(int32_t block_id) {
  PAGEDLLM_CHECK(ref_count(block_id) >= 1, "incref of free block " << block_id);
  ++ref_counts_[block_id];
}

void BlockPool::decref(int32_t block_id) {
  PAGEDLLM_CHECK(ref_count(block_id) >= 1, "decref of free block " << block_id << " (double free)");
  if (--ref_counts_[block_id] == 0) free_queue_.push_back(block_id);
}

int32_t BlockPool::ref_count(int32_t block_id) const {
  PAGEDLLM_CHECK(block_id >= 0 && block_id < num_blocks(),
                 "block id " << block_id << " out of range [0, " << num_blocks() << ")");
  return ref_counts_[block_id];
}

void BlockPool::check_invariants() const {
  int64_t num_zero = 0;
  for (int32_t b = 0; b < num_blocks(); ++b) {
    int32_t count = ref_counts_[b];
    PAGEDLLM_CHECK(count >= 0, "block " << b << " has negative ref count " << count);
    PAGEDLLM_CHECK((count == 0) == free_queue_.contains(b),
                   "block " << b << " has ref count " << count << " but free-list membership "
                            << free_queue_.contains(b));
    if (count == 0) ++num_zero;
  }
  PAGEDLLM_CHECK(num_zero == free_queue_.size(),
                 "" << num_zero << " blocks have ref count 0 but the free list holds " << free_queue_.size());
  PAGEDLLM_CHECK(static_cast<int64_t>(free_queue_.to_vector().size()) == num_zero,
                 "free list links disagree with its size");
}

}  // namespace pagedllm
