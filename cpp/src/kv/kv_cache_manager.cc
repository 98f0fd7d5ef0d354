// KVCacheManager: per-sequence block tables over one BlockPool, plus prefix-cache lookup and
// registration.
// Invariants: tables_[s].blocks.size() == cdiv(tables_[s].num_tokens, block_size_); a table
// never holds a block twice; pool_.ref_count(b) == number of tables holding b;
// tables_[s].num_cached_blocks <= num_tokens / block_size_; at most one of num_cached_blocks
// and num_shared_blocks is nonzero (the latter only with caching off); a block past both
// prefixes of its table is uncached and held by no other table except within their
// num_shared_blocks (tables started by shared_prefix() or fork()); num_used_slots_ == sum of
// tables_[s].num_tokens; block_tokens_ rows of cached blocks hold their tokens.
#include "kv/kv_cache_manager.h"

#include <algorithm>

#include "util/check.h"

namespace pagedllm {

namespace {

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

KVCacheManager::KVCacheManager(int64_t num_blocks, int64_t block_size, bool enable_caching)
    : block_size_(block_size), enable_caching_(enable_caching), pool_(num_blocks) {
  PAGEDLLM_CHECK(block_size >= 1, "block_size must be >= 1, got " << block_size);
  if (enable_caching_) block_tokens_.assign(static_cast<size_t>(num_blocks * block_size), 0);
}

const int32_t* KVCacheManager::cached_tokens(int32_t block_id) const {
  return block_tokens_.data() + static_cast<int64_t>(block_id) * block_size_;
}

ComputedBlocks KVCacheManager::get_computed_blocks(const std::vector<int32_t>& token_ids,
                                                   int64_t max_num_tokens) const {
  ComputedBlocks hit;
  if (!enable_caching_) return hit;
  const int64_t num_full = std::min<int64_t>(max_num_tokens, static_cast<int64_t>(token_ids.size())) / block_size_;
  // Copies of one block's content (sequences that computed it at the same time) are all kept,
  // so level i keeps every cached block holding tokens block i whose parent matched level i - 1.
  std::vector<int32_t> frontier = {-1};
  std::vector<int32_t> next;
  BlockHash parent_hash = kRootBlockHash;
  int64_t num_hit = 0;
  for (; num_hit < num_full; ++num_hit) {
    const int32_t* tokens = token_ids.data() + num_hit * block_size_;
    const BlockHash hash = hash_block_tokens(parent_hash, tokens, block_size_);
    next.clear();
    for (int32_t b : pool_.cached_blocks(hash)) {
      const int32_t parent = pool_.cached_parent(b);
      if (std::find(frontier.begin(), frontier.end(), parent) != frontier.end() && pool_.has_parent(b, parent) &&
          std::equal(tokens, tokens + block_size_, cached_tokens(b))) {
        next.push_back(b);
      }
    }
    if (next.empty()) break;
    frontier.swap(next);
    parent_hash = hash;
  }
  hit.block_ids.resize(static_cast<size_t>(num_hit));
  int32_t block_id = num_hit > 0 ? frontier.front() : -1;
  for (int64_t i = num_hit - 1; i >= 0; --i) {
    hit.block_ids[i] = block_id;
    block_id = pool_.cached_parent(block_id);
  }
  PAGEDLLM_CHECK(block_id == -1, "cached prefix chain does not start at a first block");
  hit.num_tokens = num_hit * block_size_;
  return hit;
}

ComputedBlocks KVCacheManager::shared_prefix(uint64_t src_seq_id, int64_t num_tokens) const {
  auto it = tables_.find(src_seq_id);
  PAGEDLLM_CHECK(it != tables_.end(), "shared_prefix of unknown sequence " << src_seq_id);
  PAGEDLLM_CHECK(num_tokens >= 0 && num_tokens % block_size_ == 0 && num_tokens <= it->second.num_tokens,
                 "shared_prefix of " << num_tokens << " tokens from a sequence of " << it->second.num_tokens);
  const int64_t num_blocks = num_tokens / block_size_;
  PAGEDLLM_CHECK(!enable_caching_ || num_blocks <= it->second.num_cached_blocks,
                 "shared_prefix past the cached blocks of sequence " << src_seq_id);
  ComputedBlocks prefix;
  prefix.block_ids.assign(it->second.blocks.begin(), it->second.blocks.begin() + num_blocks);
  prefix.num_tokens = num_tokens;
  return prefix;
}

int64_t KVCacheManager::num_blocks_needed(uint64_t seq_id, int64_t num_total_tokens,
                                          const ComputedBlocks& computed) const {
  PAGEDLLM_CHECK(num_total_tokens >= 0, "negative token count " << num_total_tokens);
  auto it = tables_.find(seq_id);
  int64_t num_want = cdiv(num_total_tokens, block_size_);
  if (!computed.block_ids.empty()) {
    PAGEDLLM_CHECK(it == tables_.end(), "cached prefix offered to existing sequence " << seq_id);
    int64_t num_hit = static_cast<int64_t>(computed.block_ids.size());
    PAGEDLLM_CHECK(num_hit <= num_want, "cached prefix of " << num_hit << " blocks exceeds "
                                                            << num_total_tokens << " tokens");
    int64_t num_free_hits = 0;
    for (int32_t b : computed.block_ids) num_free_hits += pool_.ref_count(b) == 0 ? 1 : 0;
    return num_want - num_hit + num_free_hits;
  }
  int64_t num_have = it == tables_.end() ? 0 : static_cast<int64_t>(it->second.blocks.size());
  return num_want > num_have ? num_want - num_have : 0;
}

bool KVCacheManager::can_allocate(uint64_t seq_id, int64_t num_total_tokens, const ComputedBlocks& computed) const {
  return num_blocks_needed(seq_id, num_total_tokens, computed) <= pool_.num_free_blocks();
}

bool KVCacheManager::allocate_slots(uint64_t seq_id, int64_t num_total_tokens, const ComputedBlocks& computed) {
  if (!can_allocate(seq_id, num_total_tokens, computed)) return false;
  Entry& entry = tables_[seq_id];
  int32_t parent = -1;
  for (int32_t block_id : computed.block_ids) {
    if (enable_caching_) {
      PAGEDLLM_CHECK(pool_.has_parent(block_id, parent),
                     "cached prefix block " << block_id << " changed since the lookup");
      pool_.touch(block_id);
    } else {
      PAGEDLLM_CHECK(pool_.ref_count(block_id) >= 1, "shared prefix block " << block_id << " is free");
      pool_.incref(block_id);
    }
    entry.blocks.push_back(block_id);
    parent = block_id;
  }
  const int64_t num_prefix = static_cast<int64_t>(computed.block_ids.size());
  if (num_prefix > 0) (enable_caching_ ? entry.num_cached_blocks : entry.num_shared_blocks) = num_prefix;
  const int64_t num_want = cdiv(num_total_tokens, block_size_);
  while (static_cast<int64_t>(entry.blocks.size()) < num_want) entry.blocks.push_back(pool_.allocate());
  if (num_total_tokens > entry.num_tokens) {
    num_used_slots_ += num_total_tokens - entry.num_tokens;
    entry.num_tokens = num_total_tokens;
  }
  return true;
}

int64_t KVCacheManager::fork(uint64_t src_seq_id, uint64_t dst_seq_id, int64_t num_tokens,
                             std::pair<int32_t, int32_t>* copy) {
  auto src = tables_.find(src_seq_id);
  PAGEDLLM_CHECK(src != tables_.end(), "fork of unknown sequence " << src_seq_id);
  PAGEDLLM_CHECK(tables_.count(dst_seq_id) == 0, "fork into existing sequence " << dst_seq_id);
  PAGEDLLM_CHECK(num_tokens >= 1 && num_tokens <= src->second.num_tokens,
                 "fork of " << num_tokens << " tokens from a sequence of " << src->second.num_tokens);
  const int64_t num_full = num_tokens / block_size_;
  PAGEDLLM_CHECK(!enable_caching_ || src->second.num_cached_blocks >= num_full,
                 "fork of sequence " << src_seq_id << " past its cached blocks");
  const std::vector<int32_t> src_blocks = src->second.blocks;  // tables_ may rehash below
  Entry& dst = tables_[dst_seq_id];
  for (int64_t i = 0; i < num_full; ++i) {
    pool_.incref(src_blocks[i]);
    dst.blocks.push_back(src_blocks[i]);
  }
  (enable_caching_ ? dst.num_cached_blocks : dst.num_shared_blocks) = num_full;
  *copy = {-1, -1};
  dst.num_tokens = num_full * block_size_;
  if (num_tokens > dst.num_tokens && pool_.num_free_blocks() > 0) {
    const int32_t block_id = pool_.allocate();
    *copy = {src_blocks[num_full], block_id};
    dst.blocks.push_back(block_id);
    dst.num_tokens = num_tokens;
  }
  num_used_slots_ += dst.num_tokens;
  return dst.num_tokens;
}

void KVCacheManager::cache_full_blocks(uint64_t seq_id, const std::vector<int32_t>& token_ids,
                                       int64_t num_computed_tokens) {
  if (!enable_caching_) return;
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return;
  Entry& entry = it->second;
  PAGEDLLM_CHECK(num_computed_tokens <= static_cast<int64_t>(token_ids.size()) &&
                     num_computed_tokens <= entry.num_tokens,
                 "sequence " << seq_id << " reports " << num_computed_tokens << " computed tokens of "
                             << token_ids.size() << " (" << entry.num_tokens << " allocated)");
  const int64_t num_full = num_computed_tokens / block_size_;
  for (int64_t i = entry.num_cached_blocks; i < num_full; ++i) {
    const int32_t block_id = entry.blocks[i];
    const int32_t parent = i == 0 ? -1 : entry.blocks[i - 1];
    const BlockHash parent_hash = i == 0 ? kRootBlockHash : pool_.block_hash(parent);
    const int32_t* tokens = token_ids.data() + i * block_size_;
    pool_.cache_block(block_id, hash_block_tokens(parent_hash, tokens, block_size_), parent);
    std::copy(tokens, tokens + block_size_, block_tokens_.begin() + static_cast<int64_t>(block_id) * block_size_);
  }
  entry.num_cached_blocks = std::max(entry.num_cached_blocks, num_full);
}

void KVCacheManager::free(uint64_t seq_id) {
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return;
  const std::vector<int32_t>& blocks = it->second.blocks;
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) pool_.decref(*b);
  num_used_slots_ -= it->second.num_tokens;
  tables_.erase(it);
}

KVUsage KVCacheManager::usage() const {
  KVUsage u;
  std::unordered_map<int32_t, int64_t> filled;  // block id -> slots filled by its fullest holder
  for (const auto& kv : tables_) {
    const Entry& entry = kv.second;
    for (size_t i = 0; i < entry.blocks.size(); ++i) {
      const int64_t fill = std::min(block_size_, entry.num_tokens - static_cast<int64_t>(i) * block_size_);
      int64_t& best = filled[entry.blocks[i]];
      best = std::max(best, fill);
    }
    u.num_block_refs += static_cast<int64_t>(entry.blocks.size());
  }
  u.num_blocks_held = static_cast<int64_t>(filled.size());
  u.num_slots_allocated = u.num_blocks_held * block_size_;
  for (const auto& kv : filled) u.num_slots_filled += kv.second;
  return u;
}

bool KVCacheManager::has_sequence(uint64_t seq_id) const { return tables_.count(seq_id) != 0; }

const std::vector<int32_t>& KVCacheManager::block_table(uint64_t seq_id) const {
  auto it = tables_.find(seq_id);
  PAGEDLLM_CHECK(it != tables_.end(), "block_table of unknown sequence " << seq_id);
  return it->second.blocks;
}

int64_t KVCacheManager::num_cached_blocks(uint64_t seq_id) const {
  auto it = tables_.find(seq_id);
  PAGEDLLM_CHECK(it != tables_.end(), "num_cached_blocks of unknown sequence " << seq_id);
  return it->second.num_cached_blocks;
}

void KVCacheManager::check_cached_tokens(uint64_t seq_id, const std::vector<int32_t>& token_ids) const {
  auto it = tables_.find(seq_id);
  PAGEDLLM_CHECK(it != tables_.end(), "check_cached_tokens of unknown sequence " << seq_id);
  const Entry& entry = it->second;
  PAGEDLLM_CHECK(entry.num_cached_blocks * block_size_ <= static_cast<int64_t>(token_ids.size()),
                 "sequence " << seq_id << " has more cached blocks than tokens");
  for (int64_t i = 0; i < entry.num_cached_blocks; ++i) {
    const int32_t* tokens = token_ids.data() + i * block_size_;
    PAGEDLLM_CHECK(std::equal(tokens, tokens + block_size_, cached_tokens(entry.blocks[i])),
                   "sequence " << seq_id << " block " << i << " (block id " << entry.blocks[i]
                               << ") holds KV of other tokens");
  }
}

void KVCacheManager::check_invariants() const {
  pool_.check_invariants();
  std::vector<int32_t> holders(static_cast<size_t>(pool_.num_blocks()), 0);         // [num_blocks]
  std::vector<const Entry*> last_holder(static_cast<size_t>(pool_.num_blocks()), nullptr);  // [num_blocks]
  std::vector<int32_t> sharers(static_cast<size_t>(pool_.num_blocks()), 0);  // [num_blocks]
  for (const auto& kv : tables_) {
    for (int64_t i = 0; i < kv.second.num_shared_blocks; ++i) ++sharers[kv.second.blocks[i]];
  }
  int64_t num_tokens = 0;
  for (const auto& kv : tables_) {
    const Entry& entry = kv.second;
    PAGEDLLM_CHECK(entry.num_tokens >= 0, "sequence " << kv.first << " has negative num_tokens");
    PAGEDLLM_CHECK(static_cast<int64_t>(entry.blocks.size()) == cdiv(entry.num_tokens, block_size_),
                   "sequence " << kv.first << " holds " << entry.blocks.size() << " blocks for "
                               << entry.num_tokens << " tokens");
    PAGEDLLM_CHECK(entry.num_cached_blocks >= 0 && entry.num_cached_blocks <= entry.num_tokens / block_size_,
                   "sequence " << kv.first << " has " << entry.num_cached_blocks << " cached blocks for "
                               << entry.num_tokens << " tokens");
    PAGEDLLM_CHECK(enable_caching_ || entry.num_cached_blocks == 0, "cached blocks with caching off");
    PAGEDLLM_CHECK(!enable_caching_ || entry.num_shared_blocks == 0, "uncached shared blocks with caching on");
    PAGEDLLM_CHECK(entry.num_shared_blocks * block_size_ <= entry.num_tokens,
                   "sequence " << kv.first << " shares more blocks than it holds");
    for (size_t i = 0; i < entry.blocks.size(); ++i) {
      const int32_t block_id = entry.blocks[i];
      PAGEDLLM_CHECK(pool_.ref_count(block_id) >= 1, "sequence " << kv.first << " holds free block " << block_id);
      PAGEDLLM_CHECK(last_holder[block_id] != &entry,
                     "block " << block_id << " appears twice in the table of sequence " << kv.first);
      last_holder[block_id] = &entry;
      ++holders[block_id];
      if (static_cast<int64_t>(i) < entry.num_cached_blocks) {
        const int32_t parent = i == 0 ? -1 : entry.blocks[i - 1];
        PAGEDLLM_CHECK(pool_.has_parent(block_id, parent),
                       "sequence " << kv.first << " block " << i << " is not cached under its parent");
      } else if (static_cast<int64_t>(i) < entry.num_shared_blocks) {
        PAGEDLLM_CHECK(!pool_.is_cached(block_id), "sequence " << kv.first << " shared block " << i << " is cached");
      } else {
        PAGEDLLM_CHECK(!pool_.is_cached(block_id) && pool_.ref_count(block_id) == 1 + sharers[block_id],
                       "sequence " << kv.first << " block " << i
                                   << " past its cached prefix is cached or shared other than by forks");
      }
    }
    num_tokens += entry.num_tokens;
  }
  int64_t num_held = 0;
  for (int32_t b = 0; b < pool_.num_blocks(); ++b) {
    PAGEDLLM_CHECK(pool_.ref_count(b) == holders[b],
                   "block " << b << " has ref count " << pool_.ref_count(b) << " but " << holders[b]
                            << " tables hold it (leak or double use)");
    num_held += holders[b] > 0 ? 1 : 0;
    if (!pool_.is_cached(b)) continue;
    const int32_t parent = pool_.cached_parent(b);
    if (!pool_.has_parent(b, parent)) continue;  // its parent was evicted: unreachable until reused
    const BlockHash parent_hash = parent < 0 ? kRootBlockHash : pool_.block_hash(parent);
    PAGEDLLM_CHECK(pool_.block_hash(b) == hash_block_tokens(parent_hash, cached_tokens(b), block_size_),
                   "cached block " << b << " holds a hash of other tokens or another parent");
  }
  PAGEDLLM_CHECK(num_held == pool_.num_used_blocks(),
                 "tables hold " << num_held << " blocks but the pool has " << pool_.num_used_blocks() << " in use");
  PAGEDLLM_CHECK(num_tokens == num_used_slots_,
                 "tables hold " << num_tokens << " tokens but num_used_slots is " << num_used_slots_);
}

}  // namespace pagedllm
