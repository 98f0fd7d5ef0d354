// KVCacheManager: maps each sequence to its block table and grows/frees it through BlockPool.
// Invariants: a sequence's table holds exactly cdiv(num_tokens_allocated, block_size) blocks;
// every block id in any table is in use in the pool; the sum over sequences of table sizes
// equals the pool's used blocks (no sharing yet). Pure host code.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "kv/block_pool.h"

namespace pagedllm {

class KVCacheManager {
 public:
  KVCacheManager(int64_t num_blocks, int64_t block_size);

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return pool_.num_blocks(); }
  int64_t num_free_blocks() const { return pool_.num_free_blocks(); }
  int64_t num_used_blocks() const { return pool_.num_used_blocks(); }
  // Token slots covered by allocated blocks vs. tokens actually stored, summed over sequences.
  int64_t num_allocated_slots() const { return num_used_blocks() * block_size_; }
  int64_t num_used_slots() const { return num_used_slots_; }

  // Blocks seq_id would need to hold num_total_tokens tokens (0 if it already has them).
  int64_t num_blocks_needed(uint64_t seq_id, int64_t num_total_tokens) const;
  // Dry run: can seq_id grow to num_total_tokens tokens now? Never changes state.
  bool can_allocate(uint64_t seq_id, int64_t num_total_tokens) const;
  // Grows seq_id's table (creating it if new) to hold num_total_tokens tokens. Returns false and
  // changes nothing when the pool has too few free blocks. Never shrinks a table.
  bool allocate_slots(uint64_t seq_id, int64_t num_total_tokens);
  // Releases all blocks of seq_id. No-op for an unknown id.
  void free(uint64_t seq_id);

  bool has_sequence(uint64_t seq_id) const;
  // The sequence's block ids in order. Precondition: has_sequence(seq_id).
  const std::vector<int32_t>& block_table(uint64_t seq_id) const;
  int64_t num_sequences() const { return static_cast<int64_t>(tables_.size()); }

  void check_invariants() const;  // CHECK-fails on a leak, double use or count mismatch

 private:
  struct Entry {
    std::vector<int32_t> blocks;
    int64_t num_tokens = 0;  // tokens the blocks were sized for
  };
  int64_t block_size_;
  BlockPool pool_;
  std::unordered_map<uint64_t, Entry> tables_;
  int64_t num_used_slots_ = 0;
};

}  // namespace pagedllm
