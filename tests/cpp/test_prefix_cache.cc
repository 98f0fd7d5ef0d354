// Prefix caching below the scheduler: block hashes, the pool's cache index and LRU eviction,
// and the KV manager's lookup / allocation / registration, with a randomized workload that
// simulates the KV each slot holds and checks that a hit only ever serves the right KV.
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "kv/block_hash.h"
#include "kv/block_pool.h"
#include "kv/kv_cache_manager.h"
#include "test_harness.h"
#include "util/check.h"

using pagedllm::BlockHash;
using pagedllm::BlockHashExtra;
using pagedllm::BlockPool;
using pagedllm::ComputedBlocks;
using pagedllm::hash_block_tokens;
using pagedllm::KVCacheManager;
using pagedllm::kRootBlockHash;

namespace {

std::vector<int32_t> iota_tokens(int32_t first, int64_t n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[i] = first + static_cast<int32_t>(i);
  return t;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Allocates a new sequence with its cached prefix and registers `num_computed` tokens.
ComputedBlocks admit(KVCacheManager& kv, uint64_t seq, const std::vector<int32_t>& tokens, int64_t num_computed) {
  ComputedBlocks hit = kv.get_computed_blocks(tokens, static_cast<int64_t>(tokens.size()) - 1);
  bool ok = kv.allocate_slots(seq, static_cast<int64_t>(tokens.size()), hit);
  if (!ok) PAGEDLLM_TEST_FAIL_(true, "admit: allocation failed");
  kv.cache_full_blocks(seq, tokens, num_computed);
  kv.check_invariants();
  return hit;
}

}  // namespace

TEST(BlockHash, ChainsParentTokensAndExtraKeys) {
  std::vector<int32_t> a = iota_tokens(5, 16);
  BlockHash h = hash_block_tokens(kRootBlockHash, a.data(), 16);
  EXPECT_EQ(h, hash_block_tokens(kRootBlockHash, a.data(), 16));
  EXPECT_NE(h, hash_block_tokens(h, a.data(), 16));
  EXPECT_NE(hash_block_tokens(1, a.data(), 16), hash_block_tokens(2, a.data(), 16));
  EXPECT_NE(h, hash_block_tokens(kRootBlockHash, a.data(), 15));
  EXPECT_NE(h, hash_block_tokens(kRootBlockHash, a.data(), 16, BlockHashExtra{7}));
  EXPECT_EQ(hash_block_tokens(kRootBlockHash, a.data(), 16, BlockHashExtra{7}),
            hash_block_tokens(kRootBlockHash, a.data(), 16, BlockHashExtra{7}));
  std::set<BlockHash> seen = {h};
  for (int i = 0; i < 16; ++i) {
    for (int32_t delta : {1, -1, 1 << 20}) {
      std::vector<int32_t> b = a;
      b[i] += delta;
      EXPECT_TRUE(seen.insert(hash_block_tokens(kRootBlockHash, b.data(), 16)).second);
    }
  }
  std::vector<int32_t> swapped = a;
  std::swap(swapped[0], swapped[1]);
  EXPECT_NE(h, hash_block_tokens(kRootBlockHash, swapped.data(), 16));
  std::vector<int32_t> odd = iota_tokens(0, 3);
  EXPECT_NE(hash_block_tokens(kRootBlockHash, odd.data(), 3), hash_block_tokens(kRootBlockHash, odd.data(), 2));
  EXPECT_CHECK_FAILS(hash_block_tokens(kRootBlockHash, a.data(), -1));
}

TEST(BlockHash, FewCollisionsOverSmallInputs) {
  std::set<BlockHash> seen;
  int64_t n = 0;
  for (int32_t x = 0; x < 64; ++x) {
    for (int32_t y = 0; y < 64; ++y) {
      int32_t t[2] = {x, y};
      for (BlockHash parent : {kRootBlockHash, BlockHash{0}, BlockHash{1}}) {
        seen.insert(hash_block_tokens(parent, t, 2));
        ++n;
      }
    }
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), n);
}

TEST(BlockPool, CachedBlocksSurviveFreeAndLeaveInLruOrder) {
  BlockPool pool(4);
  int32_t a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
  pool.cache_block(a, 11, -1);
  pool.cache_block(b, 22, a);
  EXPECT_TRUE(pool.is_cached(a));
  EXPECT_FALSE(pool.is_cached(c));
  EXPECT_EQ(pool.block_hash(b), BlockHash{22});
  EXPECT_TRUE(pool.has_parent(b, a));
  EXPECT_FALSE(pool.has_parent(b, -1));
  EXPECT_TRUE(pool.has_parent(a, -1));
  EXPECT_EQ(pool.num_cached_free_blocks(), 0);
  pool.decref(b);
  pool.decref(a);
  pool.decref(c);
  EXPECT_EQ(pool.num_free_blocks(), 4);
  EXPECT_EQ(pool.num_cached_free_blocks(), 2);
  EXPECT_TRUE((pool.cached_blocks(11) == std::vector<int32_t>{a}));
  pool.check_invariants();
  // Free order is now [3, b, a, c]: allocation takes the head, evicting cached blocks only
  // when it reaches them.
  EXPECT_EQ(pool.allocate(), 3);
  EXPECT_EQ(pool.num_cached_free_blocks(), 2);
  EXPECT_EQ(pool.allocate(), b);
  EXPECT_FALSE(pool.is_cached(b));
  EXPECT_TRUE(pool.cached_blocks(22).empty());
  EXPECT_EQ(pool.num_cached_free_blocks(), 1);
  pool.check_invariants();
  // A hit on a free cached block takes it off the free list; a hit on a used one shares it.
  pool.touch(a);
  EXPECT_EQ(pool.ref_count(a), 1);
  EXPECT_EQ(pool.num_cached_free_blocks(), 0);
  pool.touch(a);
  EXPECT_EQ(pool.ref_count(a), 2);
  EXPECT_EQ(pool.allocate(), c);
  EXPECT_EQ(pool.num_free_blocks(), 0);
  EXPECT_TRUE(pool.is_cached(a));
  pool.check_invariants();
  EXPECT_CHECK_FAILS(pool.touch(c));
  EXPECT_CHECK_FAILS(pool.cache_block(a, 33, -1));
  EXPECT_CHECK_FAILS(pool.cache_block(c, 33, b));
  EXPECT_CHECK_FAILS(pool.block_hash(c));
}

TEST(BlockPool, EvictionInvalidatesChildrenOfOldContent) {
  BlockPool pool(3);
  int32_t p = pool.allocate(), child = pool.allocate();
  pool.cache_block(p, 1, -1);
  pool.cache_block(child, 2, p);
  pool.decref(p);  // p free and cached; child in use
  EXPECT_TRUE(pool.has_parent(child, p));
  EXPECT_EQ(pool.allocate(), 2);
  EXPECT_EQ(pool.allocate(), p);  // evicts p: child's parent content is gone
  EXPECT_FALSE(pool.has_parent(child, p));
  pool.cache_block(p, 1, -1);  // same hash, new content: the child must still not match
  EXPECT_FALSE(pool.has_parent(child, p));
  EXPECT_TRUE(pool.is_cached(child));
  EXPECT_EQ(pool.ref_count(child), 1);
  pool.check_invariants();
}

TEST(BlockPool, DuplicatesAndCollisionsShareAHash) {
  BlockPool pool(3);
  int32_t a = pool.allocate(), b = pool.allocate();
  pool.cache_block(a, 9, -1);
  pool.cache_block(b, 9, -1);
  std::vector<int32_t> list = pool.cached_blocks(9);
  std::sort(list.begin(), list.end());
  EXPECT_TRUE((list == std::vector<int32_t>{a, b}));
  pool.decref(a);
  pool.decref(b);
  pool.check_invariants();
  EXPECT_EQ(pool.allocate(), 2);
  EXPECT_EQ(pool.allocate(), a);
  EXPECT_TRUE((pool.cached_blocks(9) == std::vector<int32_t>{b}));
  pool.check_invariants();
}

TEST(BlockPool, ResetPrefixCacheOnlyWhenIdle) {
  BlockPool pool(2);
  int32_t a = pool.allocate();
  pool.cache_block(a, 5, -1);
  EXPECT_FALSE(pool.reset_prefix_cache());
  EXPECT_TRUE(pool.is_cached(a));
  pool.decref(a);
  EXPECT_EQ(pool.num_cached_free_blocks(), 1);
  EXPECT_TRUE(pool.reset_prefix_cache());
  EXPECT_FALSE(pool.is_cached(a));
  EXPECT_TRUE(pool.cached_blocks(5).empty());
  EXPECT_EQ(pool.num_cached_free_blocks(), 0);
  EXPECT_EQ(pool.num_free_blocks(), 2);
  pool.check_invariants();
}

TEST(PrefixCache, HitMissAndTheLastTokenIsRecomputed) {
  KVCacheManager kv(20, 4, true);
  std::vector<int32_t> prompt = iota_tokens(10, 10);  // blocks [10..13] [14..17] [18 19]
  EXPECT_EQ(kv.get_computed_blocks(prompt, 9).num_tokens, 0);
  admit(kv, 1, prompt, 10);
  EXPECT_EQ(kv.num_cached_blocks(1), 2);
  // Same prompt: 8 tokens cached (the partial block never is).
  ComputedBlocks hit = kv.get_computed_blocks(prompt, 9);
  EXPECT_EQ(hit.num_tokens, 8);
  EXPECT_TRUE((hit.block_ids == std::vector<int32_t>{kv.block_table(1)[0], kv.block_table(1)[1]}));
  // A prompt of exactly two blocks hits only the first: its last token must be recomputed.
  std::vector<int32_t> exact = iota_tokens(10, 8);
  EXPECT_EQ(kv.get_computed_blocks(exact, 7).num_tokens, 4);
  EXPECT_EQ(kv.get_computed_blocks(exact, 8).num_tokens, 8);
  // Divergence inside the second block: only the first block hits.
  std::vector<int32_t> diverged = prompt;
  diverged[6] = 99;
  EXPECT_EQ(kv.get_computed_blocks(diverged, 9).num_tokens, 4);
  // Same second block after another first block: the chain differs, no hit at all.
  std::vector<int32_t> other_head = prompt;
  other_head[0] = 99;
  EXPECT_EQ(kv.get_computed_blocks(other_head, 9).num_tokens, 0);
  // Sharing: a second sequence holds the hit blocks with ref count 2.
  ComputedBlocks got = admit(kv, 2, concat(iota_tokens(10, 8), {50, 51, 52}), 11);
  EXPECT_EQ(got.num_tokens, 8);
  EXPECT_EQ(kv.block_table(2)[0], kv.block_table(1)[0]);
  EXPECT_EQ(kv.num_used_blocks(), 4);
  kv.check_cached_tokens(2, concat(iota_tokens(10, 8), {50, 51, 52}));
  EXPECT_CHECK_FAILS(kv.check_cached_tokens(2, concat(iota_tokens(11, 8), {50, 51, 52})));
  // Disabled caching never hits and never registers.
  KVCacheManager off(20, 4, false);
  admit(off, 1, prompt, 10);
  EXPECT_EQ(off.num_cached_blocks(1), 0);
  EXPECT_EQ(off.get_computed_blocks(prompt, 9).num_tokens, 0);
}

TEST(PrefixCache, FreedBlocksStayCachedUntilEvictedTailFirst) {
  KVCacheManager kv(6, 2, true);
  std::vector<int32_t> a = iota_tokens(0, 7);  // 3 full blocks + 1 partial
  admit(kv, 1, a, 7);
  std::vector<int32_t> table = kv.block_table(1);
  kv.free(1);
  EXPECT_EQ(kv.num_used_blocks(), 0);
  EXPECT_EQ(kv.num_cached_free_blocks(), 3);
  EXPECT_EQ(kv.get_computed_blocks(a, 6).num_tokens, 6);
  // Free list: the two never-used blocks, then sequence 1's blocks tail first. The first three
  // allocations evict nothing cached (the third is the uncached partial block).
  ASSERT_TRUE(kv.allocate_slots(2, 6));
  EXPECT_EQ(kv.num_cached_free_blocks(), 3);
  EXPECT_EQ(kv.get_computed_blocks(a, 6).num_tokens, 6);
  ASSERT_TRUE(kv.allocate_slots(2, 8));  // evicts the prefix's last block
  EXPECT_EQ(kv.num_cached_free_blocks(), 2);
  EXPECT_EQ(kv.get_computed_blocks(a, 6).num_tokens, 4);
  ASSERT_TRUE(kv.allocate_slots(2, 10));  // then its middle one
  EXPECT_EQ(kv.num_cached_free_blocks(), 1);
  EXPECT_EQ(kv.get_computed_blocks(a, 6).num_tokens, 2);
  const std::vector<int32_t>& t2 = kv.block_table(2);
  EXPECT_EQ(std::count(t2.begin(), t2.end(), table[0]), 0);
  EXPECT_EQ(std::count(t2.begin(), t2.end(), table[1]), 1);
  EXPECT_EQ(std::count(t2.begin(), t2.end(), table[2]), 1);
  kv.check_invariants();
}

TEST(PrefixCache, EvictionNeverTouchesBlocksInUse) {
  KVCacheManager kv(4, 2, true);
  std::vector<int32_t> a = iota_tokens(0, 4);
  admit(kv, 1, a, 4);  // 2 cached blocks in use
  ASSERT_TRUE(kv.allocate_slots(2, 4));
  EXPECT_FALSE(kv.allocate_slots(3, 1));
  EXPECT_FALSE(kv.can_allocate(3, 1));
  EXPECT_EQ(kv.get_computed_blocks(a, 4).num_tokens, 4);
  kv.free(2);
  ASSERT_TRUE(kv.allocate_slots(3, 4));
  EXPECT_EQ(kv.get_computed_blocks(a, 4).num_tokens, 4);
  EXPECT_EQ(kv.num_free_blocks(), 0);
  kv.check_invariants();
}

TEST(PrefixCache, DryRunCountsFreeHitBlocksOnce) {
  KVCacheManager kv(4, 2, true);
  std::vector<int32_t> a = iota_tokens(0, 5);
  admit(kv, 1, a, 5);  // blocks: 2 cached, 1 partial
  kv.free(1);
  ComputedBlocks hit = kv.get_computed_blocks(a, 4);
  ASSERT_EQ(hit.num_tokens, 4);
  // 4 free blocks; the hit takes its 2 free cached blocks off the free list.
  EXPECT_EQ(kv.num_blocks_needed(2, 8, hit), 4);
  EXPECT_TRUE(kv.can_allocate(2, 8, hit));
  EXPECT_FALSE(kv.can_allocate(2, 9, hit));
  ASSERT_TRUE(kv.allocate_slots(7, 1));  // one block used elsewhere
  hit = kv.get_computed_blocks(a, 4);
  ASSERT_EQ(hit.num_tokens, 4);
  EXPECT_TRUE(kv.can_allocate(2, 6, hit));
  EXPECT_FALSE(kv.can_allocate(2, 7, hit));
  EXPECT_FALSE(kv.allocate_slots(2, 7, hit));
  EXPECT_FALSE(kv.has_sequence(2));
  ASSERT_TRUE(kv.allocate_slots(2, 6, hit));
  EXPECT_EQ(kv.num_cached_blocks(2), 2);
  EXPECT_EQ(kv.num_free_blocks(), 0);
  kv.check_invariants();
  // While shared, a second hit needs no free block for the prefix.
  hit = kv.get_computed_blocks(a, 4);
  EXPECT_EQ(kv.num_blocks_needed(3, 4, hit), 0);
  ASSERT_TRUE(kv.allocate_slots(3, 4, hit));
  EXPECT_EQ(kv.num_cached_blocks(3), 2);
  kv.check_invariants();
  EXPECT_CHECK_FAILS(kv.num_blocks_needed(3, 8, hit));  // a hit for an existing sequence
}

TEST(PrefixCache, ResetDropsHashesOnlyWhenNoSequenceHoldsBlocks) {
  KVCacheManager kv(8, 2, true);
  std::vector<int32_t> a = iota_tokens(0, 6);
  admit(kv, 1, a, 6);
  EXPECT_FALSE(kv.reset_prefix_cache());
  EXPECT_EQ(kv.get_computed_blocks(a, 5).num_tokens, 4);
  kv.free(1);
  EXPECT_EQ(kv.num_cached_free_blocks(), 3);
  EXPECT_TRUE(kv.reset_prefix_cache());
  EXPECT_EQ(kv.num_cached_free_blocks(), 0);
  EXPECT_EQ(kv.get_computed_blocks(a, 5).num_tokens, 0);
  kv.check_invariants();
  admit(kv, 2, a, 6);
  EXPECT_EQ(kv.num_cached_blocks(2), 3);
  kv.check_invariants();
}

TEST(PrefixCache, ConcurrentDuplicatesStayReachable) {
  // Two sequences compute the same prefix before either is cached; after the first is evicted
  // the second's copy still serves hits through its own chain.
  KVCacheManager kv(10, 2, true);
  std::vector<int32_t> a = iota_tokens(0, 5);
  ASSERT_TRUE(kv.allocate_slots(1, 5));
  ASSERT_TRUE(kv.allocate_slots(2, 5));
  kv.cache_full_blocks(1, a, 2);
  kv.cache_full_blocks(2, a, 5);
  kv.cache_full_blocks(1, a, 5);
  kv.check_invariants();
  EXPECT_EQ(kv.get_computed_blocks(a, 4).num_tokens, 4);
  kv.free(1);
  kv.check_invariants();
  ComputedBlocks hit = kv.get_computed_blocks(a, 4);
  EXPECT_EQ(hit.num_tokens, 4);
  kv.free(2);
  while (kv.num_free_blocks() > 0 && kv.get_computed_blocks(a, 4).num_tokens == 4) {
    ASSERT_TRUE(kv.allocate_slots(100 + static_cast<uint64_t>(kv.num_free_blocks()), 1));
    kv.check_invariants();
  }
  EXPECT_LT(kv.get_computed_blocks(a, 4).num_tokens, 4);
}

namespace {

// The simulated KV of position p of `tokens`: a function of the whole prefix tokens[0, p].
uint64_t kv_value(const std::vector<int32_t>& tokens, int64_t p) {
  uint64_t h = 1469598103934665603ULL;
  for (int64_t i = 0; i <= p; ++i) h = (h ^ static_cast<uint64_t>(tokens[i] + 1)) * 1099511628211ULL;
  return h;
}

struct SimSeq {
  std::vector<int32_t> tokens;
  int64_t num_computed = 0;
};

// Writes the simulated KV of seq's positions [begin, end) into the slots its table maps them to.
void write_kv(const KVCacheManager& kv, uint64_t id, const SimSeq& s, int64_t begin, int64_t end,
              std::vector<uint64_t>* slots) {
  const std::vector<int32_t>& table = kv.block_table(id);
  for (int64_t p = begin; p < end; ++p) (*slots)[table[p / kv.block_size()] * kv.block_size() + p % kv.block_size()] = kv_value(s.tokens, p);
}

// Every computed position of every live sequence reads its own KV through its table.
void check_kv(const KVCacheManager& kv, const std::map<uint64_t, SimSeq>& seqs, const std::vector<uint64_t>& slots) {
  for (const auto& e : seqs) {
    const std::vector<int32_t>& table = kv.block_table(e.first);
    for (int64_t p = 0; p < e.second.num_computed; ++p) {
      uint64_t got = slots[table[p / kv.block_size()] * kv.block_size() + p % kv.block_size()];
      if (got != kv_value(e.second.tokens, p)) {
        PAGEDLLM_TEST_FAIL_(true, "sequence " + std::to_string(e.first) + " reads wrong KV at position " + std::to_string(p));
      }
    }
    kv.check_cached_tokens(e.first, e.second.tokens);
  }
}

}  // namespace

TEST(PrefixCache, RandomSharedPrefixWorkloadsServeOnlyTheirOwnKv) {
  int64_t total_hits = 0;
  int64_t total_evictions_seen = 0;
  for (uint32_t seed = 1; seed <= 24; ++seed) {
    std::mt19937 rng(seed);
    const int64_t block_size = int64_t{1} << (rng() % 4);
    const int64_t num_blocks = 6 + static_cast<int64_t>(rng() % 40);
    const int32_t alphabet = 2 + static_cast<int32_t>(rng() % 3);
    KVCacheManager kv(num_blocks, block_size, true);
    std::vector<uint64_t> slots(static_cast<size_t>(num_blocks * block_size), 0);  // [num_blocks * block_size]
    std::vector<std::vector<int32_t>> families;
    for (int f = 0; f < 4; ++f) {
      std::vector<int32_t> prefix;
      for (int64_t i = 0, n = static_cast<int64_t>(rng() % (4 * block_size + 3)); i < n; ++i) {
        prefix.push_back(static_cast<int32_t>(rng() % alphabet));
      }
      families.push_back(prefix);
    }
    std::map<uint64_t, SimSeq> seqs;
    uint64_t next_id = 1;
    int64_t prev_cached_free = 0;
    for (int op = 0; op < 1500; ++op) {
      const int kind = static_cast<int>(rng() % 10);
      if (kind < 4) {  // admit a new sequence: shared prefix + random suffix, partial first chunk
        SimSeq s;
        s.tokens = families[rng() % families.size()];
        for (int64_t i = 0, n = 1 + static_cast<int64_t>(rng() % (2 * block_size + 2)); i < n; ++i) {
          s.tokens.push_back(static_cast<int32_t>(rng() % alphabet));
        }
        const int64_t len = static_cast<int64_t>(s.tokens.size());
        ComputedBlocks hit = kv.get_computed_blocks(s.tokens, len - 1);
        ASSERT_LE(hit.num_tokens, len - 1);
        ASSERT_EQ(hit.num_tokens % block_size, 0);
        for (int64_t p = 0; p < hit.num_tokens; ++p) {
          const int32_t block = hit.block_ids[p / block_size];
          ASSERT_EQ(slots[block * block_size + p % block_size], kv_value(s.tokens, p));
        }
        const int64_t total = hit.num_tokens + 1 + static_cast<int64_t>(rng() % (len - hit.num_tokens));
        const uint64_t id = next_id++;
        const bool fits = kv.can_allocate(id, total, hit);
        ASSERT_EQ(kv.allocate_slots(id, total, hit), fits);
        if (fits) {
          total_hits += hit.num_tokens;
          s.num_computed = hit.num_tokens;
          write_kv(kv, id, s, s.num_computed, total, &slots);
          s.num_computed = total;
          kv.cache_full_blocks(id, s.tokens, s.num_computed);
          seqs[id] = s;
        } else {
          ASSERT_FALSE(kv.has_sequence(id));
        }
      } else if (kind < 8 && !seqs.empty()) {  // a step: finish the prompt chunk or decode
        auto it = seqs.begin();
        std::advance(it, rng() % seqs.size());
        SimSeq& s = it->second;
        if (s.num_computed == static_cast<int64_t>(s.tokens.size())) s.tokens.push_back(static_cast<int32_t>(rng() % alphabet));
        const int64_t total = std::min<int64_t>(static_cast<int64_t>(s.tokens.size()),
                                                s.num_computed + 1 + static_cast<int64_t>(rng() % (2 * block_size)));
        if (kv.allocate_slots(it->first, total)) {
          write_kv(kv, it->first, s, s.num_computed, total, &slots);
          s.num_computed = total;
          kv.cache_full_blocks(it->first, s.tokens, s.num_computed);
        } else {  // preemption: the sequence recomputes later (here: is dropped)
          kv.free(it->first);
          seqs.erase(it);
        }
      } else if (kind < 9 && !seqs.empty()) {  // finish or abort
        auto it = seqs.begin();
        std::advance(it, rng() % seqs.size());
        kv.free(it->first);
        seqs.erase(it);
      } else if (rng() % 8 == 0) {
        EXPECT_EQ(kv.reset_prefix_cache(), seqs.empty());
        if (seqs.empty()) EXPECT_EQ(kv.num_cached_free_blocks(), 0);
      }
      kv.check_invariants();
      check_kv(kv, seqs, slots);
      if (kv.num_cached_free_blocks() < prev_cached_free && kind < 8) ++total_evictions_seen;
      prev_cached_free = kv.num_cached_free_blocks();
    }
    for (const auto& e : seqs) kv.free(e.first);
    kv.check_invariants();
    EXPECT_EQ(kv.num_used_blocks(), 0);
    EXPECT_EQ(kv.num_used_slots(), 0);
  }
  EXPECT_GT(total_hits, 1000);
  EXPECT_GT(total_evictions_seen, 100);
}
