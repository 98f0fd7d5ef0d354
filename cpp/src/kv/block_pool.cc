// BlockPool: ref counts, the LRU free list and the prefix-cache index.
// Invariants: ref_counts_[b] == 0 <=> free_queue_.contains(b); counts are never negative;
// cached_[b] <=> b is listed exactly once in cache_[hashes_[b]]; no list in cache_ is empty;
// num_cached_free_ counts the blocks with cached_ set and ref count 0.
#include "kv/block_pool.h"

#include <algorithm>

#include "util/check.h"

namespace pagedllm {

BlockPool::BlockPool(int64_t num_blocks)
    : ref_counts_(static_cast<size_t>(num_blocks < 0 ? 0 : num_blocks), 0),
      free_queue_(num_blocks),
      cached_(ref_counts_.size(), 0),
      hashes_(ref_counts_.size(), 0),
      parents_(ref_counts_.size(), -1),
      parent_generations_(ref_counts_.size(), 0),
      generations_(ref_counts_.size(), 0) {}

int32_t BlockPool::allocate() {
  PAGEDLLM_CHECK(num_free_blocks() > 0, "allocate from a block pool with no free blocks");
  int32_t block_id = free_queue_.pop_front();
  PAGEDLLM_CHECK(ref_counts_[block_id] == 0,
                 "free block " << block_id << " has ref count " << ref_counts_[block_id]);
  if (cached_[block_id]) {
    --num_cached_free_;
    uncache(block_id);
  }
  ref_counts_[block_id] = 1;
  return block_id;
}

void BlockPool::incref(int32_t block_id) {
  PAGEDLLM_CHECK(ref_count(block_id) >= 1, "incref of free block " << block_id);
  ++ref_counts_[block_id];
}

void BlockPool::decref(int32_t block_id) {
  PAGEDLLM_CHECK(ref_count(block_id) >= 1, "decref of free block " << block_id << " (double free)");
  if (--ref_counts_[block_id] == 0) {
    free_queue_.push_back(block_id);
    if (cached_[block_id]) ++num_cached_free_;
  }
}

int32_t BlockPool::ref_count(int32_t block_id) const {
  PAGEDLLM_CHECK(block_id >= 0 && block_id < num_blocks(),
                 "block id " << block_id << " out of range [0, " << num_blocks() << ")");
  return ref_counts_[block_id];
}

void BlockPool::cache_block(int32_t block_id, BlockHash hash, int32_t parent_block_id) {
  PAGEDLLM_CHECK(ref_count(block_id) >= 1, "cache_block of free block " << block_id);
  PAGEDLLM_CHECK(!cached_[block_id], "block " << block_id << " is already cached");
  if (parent_block_id >= 0) {
    PAGEDLLM_CHECK(is_cached(parent_block_id),
                   "block " << block_id << " cached under uncached parent " << parent_block_id);
    PAGEDLLM_CHECK(parent_block_id != block_id, "block " << block_id << " is its own parent");
  }
  cached_[block_id] = 1;
  hashes_[block_id] = hash;
  parents_[block_id] = parent_block_id;
  parent_generations_[block_id] = parent_block_id >= 0 ? generations_[parent_block_id] : 0;
  cache_[hash].push_back(block_id);
}

bool BlockPool::is_cached(int32_t block_id) const {
  ref_count(block_id);  // range check
  return cached_[block_id] != 0;
}

BlockHash BlockPool::block_hash(int32_t block_id) const {
  PAGEDLLM_CHECK(is_cached(block_id), "block_hash of uncached block " << block_id);
  return hashes_[block_id];
}

const std::vector<int32_t>& BlockPool::cached_blocks(BlockHash hash) const {
  static const std::vector<int32_t> kNone;
  auto it = cache_.find(hash);
  return it == cache_.end() ? kNone : it->second;
}

bool BlockPool::has_parent(int32_t block_id, int32_t parent_block_id) const {
  if (!is_cached(block_id) || parents_[block_id] != parent_block_id) return false;
  if (parent_block_id < 0) return true;
  return cached_[parent_block_id] && generations_[parent_block_id] == parent_generations_[block_id];
}

int32_t BlockPool::cached_parent(int32_t block_id) const {
  PAGEDLLM_CHECK(is_cached(block_id), "cached_parent of uncached block " << block_id);
  return parents_[block_id];
}

void BlockPool::touch(int32_t block_id) {
  PAGEDLLM_CHECK(is_cached(block_id), "cache hit on uncached block " << block_id);
  if (ref_counts_[block_id] == 0) {
    free_queue_.remove(block_id);
    --num_cached_free_;
  }
  ++ref_counts_[block_id];
}

bool BlockPool::reset_prefix_cache() {
  if (num_used_blocks() != 0) return false;
  for (int32_t b = 0; b < num_blocks(); ++b) {
    if (cached_[b]) uncache(b);
  }
  num_cached_free_ = 0;
  return true;
}

void BlockPool::uncache(int32_t block_id) {
  auto it = cache_.find(hashes_[block_id]);
  PAGEDLLM_CHECK(it != cache_.end(), "cached block " << block_id << " is missing from the index");
  std::vector<int32_t>& list = it->second;
  auto pos = std::find(list.begin(), list.end(), block_id);
  PAGEDLLM_CHECK(pos != list.end(), "cached block " << block_id << " is not listed under its hash");
  *pos = list.back();
  list.pop_back();
  if (list.empty()) cache_.erase(it);
  cached_[block_id] = 0;
  parents_[block_id] = -1;
  ++generations_[block_id];
}

void BlockPool::check_invariants() const {
  int64_t num_zero = 0;
  int64_t num_cached = 0;
  int64_t num_cached_free = 0;
  for (int32_t b = 0; b < num_blocks(); ++b) {
    int32_t count = ref_counts_[b];
    PAGEDLLM_CHECK(count >= 0, "block " << b << " has negative ref count " << count);
    PAGEDLLM_CHECK((count == 0) == free_queue_.contains(b),
                   "block " << b << " has ref count " << count << " but free-list membership "
                            << free_queue_.contains(b));
    if (count == 0) ++num_zero;
    if (!cached_[b]) continue;
    ++num_cached;
    if (count == 0) ++num_cached_free;
    const std::vector<int32_t>& list = cached_blocks(hashes_[b]);
    PAGEDLLM_CHECK(std::count(list.begin(), list.end(), b) == 1,
                   "cached block " << b << " is listed " << std::count(list.begin(), list.end(), b)
                                   << " times under its hash");
  }
  int64_t num_listed = 0;
  for (const auto& kv : cache_) {
    PAGEDLLM_CHECK(!kv.second.empty(), "empty list under hash " << kv.first << " in the index");
    for (int32_t b : kv.second) {
      PAGEDLLM_CHECK(b >= 0 && b < num_blocks() && cached_[b] && hashes_[b] == kv.first,
                     "index lists block " << b << " under a hash it does not hold");
    }
    num_listed += static_cast<int64_t>(kv.second.size());
  }
  PAGEDLLM_CHECK(num_listed == num_cached, "index lists " << num_listed << " blocks but " << num_cached << " are cached");
  PAGEDLLM_CHECK(num_cached_free == num_cached_free_,
                 "" << num_cached_free << " free cached blocks but the counter says " << num_cached_free_);
  PAGEDLLM_CHECK(num_zero == free_queue_.size(),
                 "" << num_zero << " blocks have ref count 0 but the free list holds " << free_queue_.size());
  PAGEDLLM_CHECK(static_cast<int64_t>(free_queue_.to_vector().size()) == num_zero,
                 "free list links disagree with its size");
}

}  // namespace pagedllm
