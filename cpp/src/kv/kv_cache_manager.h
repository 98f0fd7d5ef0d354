// KVCacheManager: maps each sequence to its block table and grows/frees it through BlockPool;
// with prefix caching on, it names every full block by its chained hash and lets a new
// sequence start from the longest cached prefix of its tokens.
// Invariants: a sequence's table holds exactly cdiv(num_tokens_allocated, block_size) blocks,
// none twice; a block's ref count equals the number of tables holding it (no leak, no double
// use); the first num_cached_blocks blocks of a table are cached, each registered with the
// table's previous block as its parent and holding the sequence's tokens; the blocks after
// them are uncached and private to the table, except that with caching off a table started
// from shared_prefix() or fork() holds its first num_shared_blocks blocks together with the
// tables it was forked from (full blocks, ref count > 1). Pure host code.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kv/block_pool.h"

namespace pagedllm {

// What the sequences' tables hold at one moment. A block held by several tables (a shared
// prefix) is counted once, filled as far as its fullest holder fills it.
struct KVUsage {
  int64_t num_blocks_held = 0;      // distinct blocks in some table
  int64_t num_block_refs = 0;       // sum of table sizes (blocks needed without sharing)
  int64_t num_slots_allocated = 0;  // num_blocks_held * block_size
  int64_t num_slots_filled = 0;     // slots of held blocks that hold a token
  // (allocated - filled) / allocated over held blocks; 0 when none is held.
  double internal_waste() const {
    return num_slots_allocated == 0 ? 0.0
                                    : static_cast<double>(num_slots_allocated - num_slots_filled) / num_slots_allocated;
  }
  // Blocks that sharing saves: num_block_refs - num_blocks_held.
  int64_t num_blocks_saved() const { return num_block_refs - num_blocks_held; }
};

// A cached prefix found by get_computed_blocks: its blocks in order and the tokens they hold.
struct ComputedBlocks {
  std::vector<int32_t> block_ids;
  int64_t num_tokens = 0;  // block_ids.size() * block_size
};

class KVCacheManager {
 public:
  KVCacheManager(int64_t num_blocks, int64_t block_size, bool enable_caching = false);

  int64_t block_size() const { return block_size_; }
  bool enable_caching() const { return enable_caching_; }
  int64_t num_blocks() const { return pool_.num_blocks(); }
  int64_t num_free_blocks() const { return pool_.num_free_blocks(); }
  int64_t num_used_blocks() const { return pool_.num_used_blocks(); }
  // Free blocks still holding a cached hash.
  int64_t num_cached_free_blocks() const { return pool_.num_cached_free_blocks(); }
  // Token slots covered by allocated blocks vs. tokens actually stored, summed over sequences.
  int64_t num_allocated_slots() const { return num_used_blocks() * block_size_; }
  int64_t num_used_slots() const { return num_used_slots_; }

  // The longest cached prefix of token_ids[0, max_num_tokens), in whole blocks, each block's
  // tokens and parent compared exactly. Empty when caching is off. Never changes state; the
  // result is valid until the next call that changes the pool. Callers cap max_num_tokens at
  // num_tokens - 1 so the last token is recomputed and its logits exist.
  ComputedBlocks get_computed_blocks(const std::vector<int32_t>& token_ids, int64_t max_num_tokens) const;

  // Blocks seq_id would newly take from the free list to hold num_total_tokens tokens when it
  // starts from `computed` (a result of get_computed_blocks; only for a new sequence): new
  // blocks plus cached hit blocks that are now free. 0 if it already has them.
  int64_t num_blocks_needed(uint64_t seq_id, int64_t num_total_tokens,
                            const ComputedBlocks& computed = ComputedBlocks()) const;
  // The first num_tokens tokens of src_seq_id's table (whole blocks of KV the caller knows to
  // be computed) as a prefix a new sequence may start from: allocate_slots then shares them
  // (ref count + 1) instead of looking them up in the cache. With caching on they are cached
  // blocks, so this equals what get_computed_blocks would find. Never changes state.
  // Precondition: num_tokens % block_size == 0 and src_seq_id holds at least num_tokens tokens.
  ComputedBlocks shared_prefix(uint64_t src_seq_id, int64_t num_tokens) const;

  // Dry run: can seq_id grow to num_total_tokens tokens now? Never changes state.
  bool can_allocate(uint64_t seq_id, int64_t num_total_tokens,
                    const ComputedBlocks& computed = ComputedBlocks()) const;
  // Grows seq_id's table (creating it if new, starting with the `computed` hit blocks) to hold
  // num_total_tokens tokens. Returns false and changes nothing when the pool has too few free
  // blocks. Never shrinks a table. Precondition: `computed` is empty or seq_id is new,
  // computed.num_tokens <= num_total_tokens, and the pool has not changed since the lookup.
  bool allocate_slots(uint64_t seq_id, int64_t num_total_tokens,
                      const ComputedBlocks& computed = ComputedBlocks());
  // Copy-on-write fork (beam search): starts new sequence dst_seq_id holding the first
  // num_tokens tokens of src_seq_id. Its full blocks are src's (shared, ref count + 1; with
  // caching on they are src's cached blocks). A partially filled last block is copied: dst
  // gets a fresh block, *copy = {src block, dst block} for the caller to copy (copy_blocks)
  // before the next forward pass, and the result is num_tokens. When no block is free the
  // partial block is left out: *copy = {-1, -1} and the result is the tokens of the shared
  // full blocks (the caller recomputes the rest). Preconditions: dst_seq_id is new; src holds
  // num_tokens tokens, all computed (with caching on, its full blocks are cached).
  int64_t fork(uint64_t src_seq_id, uint64_t dst_seq_id, int64_t num_tokens, std::pair<int32_t, int32_t>* copy);
  // Registers the hashes of seq_id's blocks that are full of computed KV: token_ids[0,
  // num_computed_tokens) are the sequence's tokens whose KV the forward passes have written.
  // No-op when caching is off or the sequence is unknown.
  void cache_full_blocks(uint64_t seq_id, const std::vector<int32_t>& token_ids, int64_t num_computed_tokens);
  // Releases all blocks of seq_id, tail first (so a sequence's last blocks are evicted before
  // its first); cached blocks stay cached. No-op for an unknown id.
  void free(uint64_t seq_id);
  // Drops every cached hash. Returns false and changes nothing while any block is in use.
  bool reset_prefix_cache() { return pool_.reset_prefix_cache(); }

  // Walks every table: O(sum of table sizes).
  KVUsage usage() const;

  bool has_sequence(uint64_t seq_id) const;
  // The sequence's block ids in order. Precondition: has_sequence(seq_id).
  const std::vector<int32_t>& block_table(uint64_t seq_id) const;
  // Leading blocks of the sequence's table registered in the prefix cache.
  int64_t num_cached_blocks(uint64_t seq_id) const;
  int64_t num_sequences() const { return static_cast<int64_t>(tables_.size()); }

  void check_invariants() const;  // CHECK-fails on a leak, double use or count mismatch
  // CHECK-fails unless the cached blocks of seq_id hold token_ids' tokens.
  void check_cached_tokens(uint64_t seq_id, const std::vector<int32_t>& token_ids) const;

 private:
  struct Entry {
    std::vector<int32_t> blocks;
    int64_t num_tokens = 0;         // tokens the blocks were sized for
    int64_t num_cached_blocks = 0;  // leading blocks registered in the prefix cache
    int64_t num_shared_blocks = 0;  // leading uncached blocks shared at creation (caching off)
  };
  const int32_t* cached_tokens(int32_t block_id) const;  // [block_size]

  int64_t block_size_;
  bool enable_caching_;
  BlockPool pool_;
  std::unordered_map<uint64_t, Entry> tables_;
  std::vector<int32_t> block_tokens_;  // [num_blocks, block_size] tokens of cached blocks
  int64_t num_used_slots_ = 0;
};

}  // namespace pagedllm
