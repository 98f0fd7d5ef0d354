// BlockPool: the fixed set of KV-cache blocks, with ref counts, an O(1) LRU free list and the
// prefix-cache index (block hash -> cached blocks).
// Invariants: every block is either free (ref count 0, in the free list exactly once) or in use
// (ref count >= 1, not in the free list); num_free_blocks() equals the free list's length.
// A cached block holds the KV of one full block named by its hash and is listed under that hash
// exactly once; it stays cached while free (evictable, in LRU order) and loses its hash only
// when allocate() reuses it or reset_prefix_cache() runs, so a block in use is never evicted.
// Every loss of a hash bumps the block's generation, which invalidates children registered
// against its old content.
// Pure host code: it hands out block ids and never touches device memory.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "kv/block_hash.h"
#include "kv/free_block_queue.h"

namespace pagedllm {

class BlockPool {
 public:
  explicit BlockPool(int64_t num_blocks);

  int64_t num_blocks() const { return static_cast<int64_t>(ref_counts_.size()); }
  int64_t num_free_blocks() const { return free_queue_.size(); }
  int64_t num_used_blocks() const { return num_blocks() - num_free_blocks(); }
  // Free blocks that still hold a cached hash (reusable by a hit until evicted).
  int64_t num_cached_free_blocks() const { return num_cached_free_; }

  // Takes the least recently freed block, evicting its cached hash if it has one, and sets its
  // ref count to 1. Precondition: num_free_blocks() > 0 (checked).
  int32_t allocate();
  // Adds a reference to an in-use block (sharing). Precondition: ref_count(block_id) >= 1.
  void incref(int32_t block_id);
  // Drops a reference; at 0 the block goes to the free list's tail, keeping its cached hash.
  // Precondition: ref_count(block_id) >= 1 (a double free is an internal error).
  void decref(int32_t block_id);
  int32_t ref_count(int32_t block_id) const;

  // Registers in-use, uncached block_id as holding the full block named `hash` whose parent is
  // the cached block parent_block_id (-1 for a sequence's first block). Duplicates of content
  // already cached are allowed (both are listed).
  void cache_block(int32_t block_id, BlockHash hash, int32_t parent_block_id);
  bool is_cached(int32_t block_id) const;
  BlockHash block_hash(int32_t block_id) const;  // precondition: is_cached(block_id)
  // The cached blocks listed under hash (empty if none). Valid until the pool changes.
  const std::vector<int32_t>& cached_blocks(BlockHash hash) const;
  // True when cached block_id was registered with parent_block_id as its parent (-1: none) and
  // that parent still holds the content it held then.
  bool has_parent(int32_t block_id, int32_t parent_block_id) const;
  // The parent block_id was registered with (-1: none). Precondition: is_cached(block_id).
  int32_t cached_parent(int32_t block_id) const;
  // A cache hit: adds a reference to cached block_id, taking it off the free list if it was
  // free. Precondition: is_cached(block_id).
  void touch(int32_t block_id);
  // Drops every cached hash. Returns false and changes nothing while any block is in use.
  bool reset_prefix_cache();

  // Walks the whole pool and fails a CHECK on any broken invariant. O(num_blocks).
  void check_invariants() const;

 private:
  void uncache(int32_t block_id);

  std::vector<int32_t> ref_counts_;  // [num_blocks]
  FreeBlockQueue free_queue_;
  std::vector<uint8_t> cached_;                 // [num_blocks] 1 if the block holds a hash
  std::vector<BlockHash> hashes_;               // [num_blocks] valid where cached_
  std::vector<int32_t> parents_;                // [num_blocks] parent block id or -1
  std::vector<uint64_t> parent_generations_;    // [num_blocks] parent's generation at caching
  std::vector<uint64_t> generations_;           // [num_blocks] bumped when a hash is dropped
  std::unordered_map<BlockHash, std::vector<int32_t>> cache_;  // hash -> cached blocks
  int64_t num_cached_free_ = 0;
};

}  // namespace pagedllm
