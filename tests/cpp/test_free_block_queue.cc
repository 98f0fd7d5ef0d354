#include <algorithm>
#include <list>
#include <random>

#include "kv/free_block_queue.h"
#include "test_harness.h"
#include "util/check.h"

using pagedllm::FreeBlockQueue;

TEST(FreeBlockQueue, StartsWithAllBlocksInOrder) {
  FreeBlockQueue q(5);
  EXPECT_EQ(q.size(), 5);
  std::vector<int32_t> expected = {0, 1, 2, 3, 4};
  EXPECT_TRUE(q.to_vector() == expected);
  for (int32_t b = 0; b < 5; ++b) EXPECT_TRUE(q.contains(b));
}

TEST(FreeBlockQueue, PopPushRemove) {
  FreeBlockQueue q(4);
  EXPECT_EQ(q.pop_front(), 0);
  EXPECT_EQ(q.pop_front(), 1);
  EXPECT_FALSE(q.contains(0));
  EXPECT_EQ(q.size(), 2);
  q.push_back(0);
  EXPECT_TRUE((q.to_vector() == std::vector<int32_t>{2, 3, 0}));
  q.remove(3);
  EXPECT_TRUE((q.to_vector() == std::vector<int32_t>{2, 0}));
  q.remove(2);
  q.remove(0);
  EXPECT_EQ(q.size(), 0);
  EXPECT_TRUE(q.to_vector().empty());
  q.push_back(3);
  q.push_back(1);
  EXPECT_EQ(q.pop_front(), 3);
  EXPECT_EQ(q.pop_front(), 1);
  EXPECT_EQ(q.size(), 0);
}

TEST(FreeBlockQueue, CheckFailures) {
  FreeBlockQueue q(2);
  EXPECT_CHECK_FAILS(q.push_back(1));
  EXPECT_CHECK_FAILS(q.contains(2));
  EXPECT_CHECK_FAILS(q.contains(-1));
  q.pop_front();
  q.pop_front();
  EXPECT_CHECK_FAILS(q.pop_front());
  EXPECT_CHECK_FAILS(q.remove(0));
  FreeBlockQueue empty(0);
  EXPECT_EQ(empty.size(), 0);
  EXPECT_CHECK_FAILS(empty.pop_front());
}

TEST(FreeBlockQueue, RandomOpsMatchListModel) {
  const int32_t num_blocks = 64;
  std::mt19937 rng(1234);
  FreeBlockQueue q(num_blocks);
  std::list<int32_t> model;
  for (int32_t b = 0; b < num_blocks; ++b) model.push_back(b);
  for (int step = 0; step < 20000; ++step) {
    int op = static_cast<int>(rng() % 3);
    int32_t b = static_cast<int32_t>(rng() % num_blocks);
    bool in_model = std::find(model.begin(), model.end(), b) != model.end();
    if (op == 0) {
      if (model.empty()) {
        EXPECT_CHECK_FAILS(q.pop_front());
      } else {
        EXPECT_EQ(q.pop_front(), model.front());
        model.pop_front();
      }
    } else if (op == 1) {
      if (in_model) {
        EXPECT_CHECK_FAILS(q.push_back(b));
      } else {
        q.push_back(b);
        model.push_back(b);
      }
    } else {
      if (!in_model) {
        EXPECT_CHECK_FAILS(q.remove(b));
      } else {
        q.remove(b);
        model.remove(b);
      }
    }
    ASSERT_EQ(q.size(), static_cast<int64_t>(model.size()));
    std::vector<int32_t> want(model.begin(), model.end());
    ASSERT_TRUE(q.to_vector() == want);
    for (int32_t x = 0; x < num_blocks; ++x) {
      ASSERT_EQ(q.contains(x), std::find(model.begin(), model.end(), x) != model.end());
    }
  }
}
