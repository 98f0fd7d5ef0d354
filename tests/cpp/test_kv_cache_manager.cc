#include <algorithm>
#include <iterator>
#include <map>
#include <random>
#include <set>

#include "kv/kv_cache_manager.h"
#include "test_harness.h"
#include "util/check.h"

using pagedllm::KVCacheManager;

namespace {

int64_t blocks_for(int64_t num_tokens, int64_t block_size) {
  int64_t n = 0;
  while (n * block_size < num_tokens) ++n;
  return n;
}

}  // namespace

TEST(KVCacheManager, GrowsTablesByBlocks) {
  KVCacheManager kv(10, 4);
  EXPECT_EQ(kv.num_blocks_needed(7, 0), 0);
  EXPECT_EQ(kv.num_blocks_needed(7, 1), 1);
  EXPECT_EQ(kv.num_blocks_needed(7, 9), 3);
  EXPECT_FALSE(kv.has_sequence(7));
  ASSERT_TRUE(kv.allocate_slots(7, 5));
  EXPECT_TRUE(kv.has_sequence(7));
  EXPECT_EQ(kv.block_table(7).size(), 2u);
  EXPECT_EQ(kv.num_used_blocks(), 2);
  EXPECT_EQ(kv.num_used_slots(), 5);
  EXPECT_EQ(kv.num_allocated_slots(), 8);
  EXPECT_EQ(kv.num_blocks_needed(7, 8), 0);
  EXPECT_EQ(kv.num_blocks_needed(7, 9), 1);
  ASSERT_TRUE(kv.allocate_slots(7, 8));
  EXPECT_EQ(kv.block_table(7).size(), 2u);
  EXPECT_EQ(kv.num_used_slots(), 8);
  ASSERT_TRUE(kv.allocate_slots(7, 3));
  EXPECT_EQ(kv.block_table(7).size(), 2u);
  EXPECT_EQ(kv.num_used_slots(), 8);
  ASSERT_TRUE(kv.allocate_slots(7, 9));
  EXPECT_EQ(kv.block_table(7).size(), 3u);
  EXPECT_EQ(kv.num_sequences(), 1);
  kv.check_invariants();
}

TEST(KVCacheManager, FailedAllocationChangesNothing) {
  KVCacheManager kv(3, 2);
  ASSERT_TRUE(kv.allocate_slots(1, 4));
  EXPECT_TRUE(kv.can_allocate(2, 2));
  EXPECT_FALSE(kv.can_allocate(2, 3));
  EXPECT_FALSE(kv.has_sequence(2));
  EXPECT_FALSE(kv.allocate_slots(2, 3));
  EXPECT_FALSE(kv.has_sequence(2));
  EXPECT_FALSE(kv.allocate_slots(1, 7));
  EXPECT_EQ(kv.block_table(1).size(), 2u);
  EXPECT_EQ(kv.num_used_slots(), 4);
  EXPECT_EQ(kv.num_free_blocks(), 1);
  kv.check_invariants();
}

TEST(KVCacheManager, FreeReleasesBlocks) {
  KVCacheManager kv(4, 2);
  ASSERT_TRUE(kv.allocate_slots(1, 3));
  ASSERT_TRUE(kv.allocate_slots(2, 4));
  std::vector<int32_t> table1 = kv.block_table(1);
  std::vector<int32_t> table2 = kv.block_table(2);
  std::set<int32_t> all(table1.begin(), table1.end());
  all.insert(table2.begin(), table2.end());
  EXPECT_EQ(all.size(), 4u);
  kv.free(1);
  EXPECT_FALSE(kv.has_sequence(1));
  EXPECT_EQ(kv.num_free_blocks(), 2);
  EXPECT_EQ(kv.num_used_slots(), 4);
  kv.free(1);
  kv.free(99);
  EXPECT_EQ(kv.num_free_blocks(), 2);
  kv.free(2);
  EXPECT_EQ(kv.num_used_blocks(), 0);
  EXPECT_EQ(kv.num_used_slots(), 0);
  EXPECT_EQ(kv.num_sequences(), 0);
  EXPECT_CHECK_FAILS(kv.block_table(2));
  kv.check_invariants();
}

TEST(KVCacheManager, RandomWorkloadMatchesModel) {
  std::mt19937 rng(7);
  for (int64_t block_size : {1, 3, 16}) {
    const int64_t num_blocks = 40;
    KVCacheManager kv(num_blocks, block_size);
    std::map<uint64_t, int64_t> model;  // seq_id -> tokens the table was sized for
    uint64_t next_seq = 1;
    for (int step = 0; step < 5000; ++step) {
      int op = static_cast<int>(rng() % 10);
      int64_t model_used = 0;
      int64_t model_slots = 0;
      for (const auto& e : model) {
        model_used += blocks_for(e.second, block_size);
        model_slots += e.second;
      }
      if (op < 6) {
        uint64_t seq;
        if (model.empty() || rng() % 4 == 0) {
          seq = next_seq++;
        } else {
          auto it = model.begin();
          std::advance(it, rng() % model.size());
          seq = it->first;
        }
        int64_t have = model.count(seq) ? model[seq] : 0;
        int64_t want = have + static_cast<int64_t>(rng() % (3 * block_size + 2)) - 1;
        if (want < 1) want = 1;
        int64_t have_blocks = model.count(seq) ? blocks_for(have, block_size) : 0;
        int64_t need = std::max<int64_t>(0, blocks_for(want, block_size) - have_blocks);
        bool fits = need <= num_blocks - model_used;
        ASSERT_EQ(kv.num_blocks_needed(seq, want), need);
        ASSERT_EQ(kv.can_allocate(seq, want), fits);
        ASSERT_EQ(kv.allocate_slots(seq, want), fits);
        if (fits) model[seq] = std::max(have, want);
      } else if (!model.empty()) {
        auto it = model.begin();
        std::advance(it, rng() % model.size());
        kv.free(it->first);
        model.erase(it);
      }
      kv.check_invariants();
      model_used = 0;
      model_slots = 0;
      for (const auto& e : model) {
        model_used += blocks_for(e.second, block_size);
        model_slots += e.second;
        ASSERT_TRUE(kv.has_sequence(e.first));
        ASSERT_EQ(static_cast<int64_t>(kv.block_table(e.first).size()), blocks_for(e.second, block_size));
      }
      ASSERT_EQ(kv.num_used_blocks(), model_used);
      ASSERT_EQ(kv.num_free_blocks(), num_blocks - model_used);
      ASSERT_EQ(kv.num_used_slots(), model_slots);
      ASSERT_EQ(kv.num_sequences(), static_cast<int64_t>(model.size()));
    }
    for (const auto& e : model) kv.free(e.first);
    kv.check_invariants();
    EXPECT_EQ(kv.num_used_blocks(), 0);
    EXPECT_EQ(kv.num_used_slots(), 0);
  }
}

TEST(KVCacheManager, UsageCountsSharedBlocksOnce) {
  KVCacheManager kv(16, 4, /*enable_caching=*/true);
  EXPECT_EQ(kv.usage().num_blocks_held, 0);
  EXPECT_EQ(kv.usage().internal_waste(), 0.0);
  std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  ASSERT_TRUE(kv.allocate_slots(1, 10));
  kv.cache_full_blocks(1, tokens, 10);
  pagedllm::KVUsage u = kv.usage();
  EXPECT_EQ(u.num_blocks_held, 3);
  EXPECT_EQ(u.num_block_refs, 3);
  EXPECT_EQ(u.num_slots_allocated, 12);
  EXPECT_EQ(u.num_slots_filled, 10);
  EXPECT_EQ(u.num_blocks_saved(), 0);
  pagedllm::ComputedBlocks hit = kv.get_computed_blocks(tokens, 9);
  ASSERT_EQ(hit.block_ids.size(), 2u);
  ASSERT_TRUE(kv.allocate_slots(2, 10, hit));
  ASSERT_TRUE(kv.allocate_slots(3, 5));
  u = kv.usage();
  EXPECT_EQ(u.num_blocks_held, 6);  // 2 shared + 1 + 1 private tails + 2 of sequence 3
  EXPECT_EQ(u.num_block_refs, 8);
  EXPECT_EQ(u.num_blocks_saved(), 2);
  EXPECT_EQ(u.num_slots_allocated, 24);
  EXPECT_EQ(u.num_slots_filled, 8 + 2 + 2 + 5);
  EXPECT_TRUE(std::abs(u.internal_waste() - 7.0 / 24.0) < 1e-12);
  EXPECT_EQ(u.num_blocks_held, kv.num_used_blocks());
  kv.free(1);
  kv.free(2);
  kv.free(3);
  EXPECT_EQ(kv.usage().num_slots_allocated, 0);
  kv.check_invariants();
}
