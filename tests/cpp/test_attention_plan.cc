// Host pieces of GPU attention (backend/attention_plan.h): the native decode workspace size and
// FlashInfer's page table built from block tables and seq_lens.
#include <vector>

#include "backend/attention_plan.h"
#include "test_harness.h"

using namespace pagedllm;

TEST(AttentionPlan, partitions_cover_the_context) {
  EXPECT_EQ(paged_attention_num_partitions(0), 1);
  EXPECT_EQ(paged_attention_num_partitions(1), 1);
  EXPECT_EQ(paged_attention_num_partitions(kPagedAttentionPartitionTokens), 1);
  EXPECT_EQ(paged_attention_num_partitions(kPagedAttentionPartitionTokens + 1), 2);
  EXPECT_EQ(paged_attention_num_partitions(8192), 8192 / kPagedAttentionPartitionTokens);
}

TEST(AttentionPlan, workspace_bytes) {
  // 256 sequences x 32 heads x 16 partitions of 512 tokens x (128 + max + sum) floats.
  EXPECT_EQ(paged_attention_workspace_bytes(256, 32, 8192, 128), size_t{256} * 32 * 16 * 130 * 4);
  EXPECT_EQ(paged_attention_workspace_bytes(1, 1, 1, 64), size_t{66} * 4);
  EXPECT_EQ(paged_attention_workspace_bytes(0, 32, 8192, 128), size_t{0});
  // One more token past a partition boundary needs one more partition.
  EXPECT_EQ(paged_attention_workspace_bytes(2, 4, 1025, 64) - paged_attention_workspace_bytes(2, 4, 1024, 64),
            size_t{2} * 4 * 66 * 4);
}

TEST(AttentionPlan, flashinfer_page_table) {
  // Three sequences, table rows of 4 blocks, block_size 16: 1 token, 16 tokens, 33 tokens.
  const std::vector<int32_t> tables = {7, -1, -1, -1,  //
                                       3, -1, -1, -1,  //
                                       9, 2, 5, -1};
  const std::vector<int32_t> qsl = {0, 1, 2, 35};
  const std::vector<int32_t> lens = {1, 16, 33};
  AttentionPlanInputs in;
  in.query_start_loc = qsl.data();
  in.seq_lens = lens.data();
  in.block_tables = tables.data();
  in.num_seqs = 3;
  in.block_table_stride = 4;
  in.block_size = 16;
  FlashInferPageTable t;
  build_flashinfer_page_table(in, &t);
  EXPECT_TRUE((t.indptr == std::vector<int32_t>{0, 1, 2, 5}));
  EXPECT_TRUE((t.indices == std::vector<int32_t>{7, 3, 9, 2, 5}));
  EXPECT_TRUE((t.last_page_len == std::vector<int32_t>{1, 16, 1}));

  // Reused for a smaller step: nothing of the previous one is left.
  in.num_seqs = 1;
  in.seq_lens = lens.data() + 2;
  in.block_tables = tables.data() + 8;
  build_flashinfer_page_table(in, &t);
  EXPECT_TRUE((t.indptr == std::vector<int32_t>{0, 3}));
  EXPECT_TRUE((t.indices == std::vector<int32_t>{9, 2, 5}));
  EXPECT_TRUE((t.last_page_len == std::vector<int32_t>{1}));
}

TEST(AttentionPlan, flashinfer_page_table_rejects_a_short_table_row) {
  const std::vector<int32_t> tables = {4, 6, 8, 1, 0, 0};
  const std::vector<int32_t> lens = {4, 0};
  AttentionPlanInputs in;
  in.seq_lens = lens.data();
  in.block_tables = tables.data();
  in.num_seqs = 2;
  in.block_table_stride = 3;
  in.block_size = 1;
  FlashInferPageTable t;
  EXPECT_CHECK_FAILS(build_flashinfer_page_table(in, &t));
  in.block_size = 2;  // 4 tokens in 2 blocks of 2; the empty sequence has no pages
  build_flashinfer_page_table(in, &t);
  EXPECT_TRUE((t.indptr == std::vector<int32_t>{0, 2, 2}));
  EXPECT_TRUE((t.indices == std::vector<int32_t>{4, 6}));
  EXPECT_TRUE((t.last_page_len == std::vector<int32_t>{2, 0}));
}
