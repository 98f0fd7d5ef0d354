#include <deque>
#include <random>

#include "kv/block_pool.h"
#include "test_harness.h"
#include "util/check.h"

using pagedllm::BlockPool;

TEST(BlockPool, AllocateTakesLeastRecentlyFreed) {
  BlockPool pool(4);
  EXPECT_EQ(pool.num_free_blocks(), 4);
  EXPECT_EQ(pool.allocate(), 0);
  EXPECT_EQ(pool.allocate(), 1);
  EXPECT_EQ(pool.allocate(), 2);
  EXPECT_EQ(pool.num_used_blocks(), 3);
  pool.decref(1);
  pool.decref(0);
  EXPECT_EQ(pool.allocate(), 3);
  EXPECT_EQ(pool.allocate(), 1);
  EXPECT_EQ(pool.allocate(), 0);
  EXPECT_EQ(pool.num_free_blocks(), 0);
  pool.check_invariants();
}

TEST(BlockPool, RefCountsShareBlocks) {
  BlockPool pool(2);
  int32_t b = pool.allocate();
  EXPECT_EQ(pool.ref_count(b), 1);
  pool.incref(b);
  pool.incref(b);
  EXPECT_EQ(pool.ref_count(b), 3);
  pool.decref(b);
  pool.decref(b);
  EXPECT_EQ(pool.num_free_blocks(), 1);
  pool.check_invariants();
  pool.decref(b);
  EXPECT_EQ(pool.ref_count(b), 0);
  EXPECT_EQ(pool.num_free_blocks(), 2);
  pool.check_invariants();
}

TEST(BlockPool, CheckFailures) {
  BlockPool pool(1);
  EXPECT_CHECK_FAILS(pool.incref(0));
  EXPECT_CHECK_FAILS(pool.decref(0));
  int32_t b = pool.allocate();
  EXPECT_CHECK_FAILS(pool.allocate());
  pool.decref(b);
  EXPECT_CHECK_FAILS(pool.decref(b));
  EXPECT_CHECK_FAILS(pool.ref_count(1));
  EXPECT_CHECK_FAILS(pool.ref_count(-1));
  pool.check_invariants();
}

TEST(BlockPool, RandomOpsMatchModel) {
  const int32_t num_blocks = 32;
  std::mt19937 rng(42);
  BlockPool pool(num_blocks);
  std::vector<int32_t> counts(num_blocks, 0);
  std::deque<int32_t> free_order;
  for (int32_t b = 0; b < num_blocks; ++b) free_order.push_back(b);
  for (int step = 0; step < 20000; ++step) {
    int op = static_cast<int>(rng() % 3);
    int32_t b = static_cast<int32_t>(rng() % num_blocks);
    if (op == 0) {
      if (free_order.empty()) {
        EXPECT_CHECK_FAILS(pool.allocate());
      } else {
        ASSERT_EQ(pool.allocate(), free_order.front());
        counts[free_order.front()] = 1;
        free_order.pop_front();
      }
    } else if (op == 1) {
      if (counts[b] == 0) {
        EXPECT_CHECK_FAILS(pool.incref(b));
      } else {
        pool.incref(b);
        ++counts[b];
      }
    } else {
      if (counts[b] == 0) {
        EXPECT_CHECK_FAILS(pool.decref(b));
      } else {
        pool.decref(b);
        if (--counts[b] == 0) free_order.push_back(b);
      }
    }
    pool.check_invariants();
    ASSERT_EQ(pool.num_free_blocks(), static_cast<int64_t>(free_order.size()));
    ASSERT_EQ(pool.num_used_blocks(), num_blocks - static_cast<int64_t>(free_order.size()));
    for (int32_t x = 0; x < num_blocks; ++x) ASSERT_EQ(pool.ref_count(x), counts[x]);
  }
}
