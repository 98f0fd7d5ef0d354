// KVCacheManager: per-sequence block tables over one BlockPool.
// Invariants: tables_[s].blocks.size() == cdiv(tables_[s].num_tokens, block_size_); no block id
// appears twice across tables; the table sizes sum to pool_.num_used_blocks();
// num_used_slots_ == sum of tables_[s].num_tokens.
#include "kv/kv_cache_manager.h"

#include "util/check.h"

namespace pagedllm {

namespace {

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

KVCacheManager::KVCacheManager(int64_t num_blocks, int64_t block_size)
    : block_size_(block_size), pool_(num_blocks) {
  PAGEDLLM_CHECK(block_size >= 1, "block_size must be >= 1, got " << block_size);
}

int64_t KVCacheManager::num_blocks_needed(uint64_t seq_id, int64_t num_total_tokens) const {
  PAGEDLLM_CHECK(num_total_tokens >= 0, "negative token count " << num_total_tokens);
  auto it = tables_.find(seq_id);
  int64_t num_have = it == tables_.end() ? 0 : static_cast<int64_t>(it->second.blocks.size());
  int64_t num_want = cdiv(num_total_tokens, block_size_);
  return num_want > num_have ? num_want - num_have : 0;
}

bool KVCacheManager::can_allocate(uint64_t seq_id, int64_t num_total_tokens) const {
  return num_blocks_needed(seq_id, num_total_tokens) <= pool_.num_free_blocks();
}

bool KVCacheManager::allocate_slots(uint64_t seq_id, int64_t num_total_tokens) {
  int64_t num_new_blocks = num_blocks_needed(seq_id, num_total_tokens);
  if (num_new_blocks > pool_.num_free_blocks()) return false;
  Entry& entry = tables_[seq_id];
  for (int64_t i = 0; i < num_new_blocks; ++i) entry.blocks.push_back(pool_.allocate());
  if (num_total_tokens > entry.num_tokens) {
    num_used_slots_ += num_total_tokens - entry.num_tokens;
    entry.num_tokens = num_total_tokens;
  }
  return true;
}

void KVCacheManager::free(uint64_t seq_id) {
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return;
  for (int32_t block_id : it->second.blocks) pool_.decref(block_id);
  num_used_slots_ -= it->second.num_tokens;
  tables_.erase(it);
}

bool KVCacheManager::has_sequence(uint64_t seq_id) const { return tables_.count(seq_id) != 0; }

const std::vector<int32_t>& KVCacheManager::block_table(uint64_t seq_id) const {
  auto it = tables_.find(seq_id);
  PAGEDLLM_CHECK(it != tables_.end(), "block_table of unknown sequence " << seq_id);
  return it->second.blocks;
}

void KVCacheManager::check_invariants() const {
  pool_.check_invariants();
  std::vector<uint8_t> seen(static_cast<size_t>(pool_.num_blocks()), 0);  // [num_blocks]
  int64_t num_table_blocks = 0;
  int64_t num_tokens = 0;
  for (const auto& kv : tables_) {
    const Entry& entry = kv.second;
    PAGEDLLM_CHECK(entry.num_tokens >= 0, "sequence " << kv.first << " has negative num_tokens");
    PAGEDLLM_CHECK(static_cast<int64_t>(entry.blocks.size()) == cdiv(entry.num_tokens, block_size_),
                   "sequence " << kv.first << " holds " << entry.blocks.size() << " blocks for "
                               << entry.num_tokens << " tokens");
    for (int32_t block_id : entry.blocks) {
      PAGEDLLM_CHECK(pool_.ref_count(block_id) >= 1,
                     "sequence " << kv.first << " holds free block " << block_id);
      PAGEDLLM_CHECK(!seen[block_id], "block " << block_id << " appears in two tables");
      seen[block_id] = 1;
    }
    num_table_blocks += static_cast<int64_t>(entry.blocks.size());
    num_tokens += entry.num_tokens;
  }
  PAGEDLLM_CHECK(num_table_blocks == pool_.num_used_blocks(),
                 "tables hold " << num_table_blocks << " blocks but the pool has "
                                << pool_.num_used_blocks() << " in use (leak)");
  PAGEDLLM_CHECK(num_tokens == num_used_slots_,
                 "tables hold " << num_tokens << " tokens but num_used_slots is " << num_used_slots_);
}

}  // namespace pagedllm
