// Graph capture host logic: which batch sizes are captured, which size a step pads to, which
// steps qualify, and how StepInputs pads a decode step and lays out its device copy.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "runner/graph_sizes.h"
#include "runner/step_inputs.h"
#include "test_harness.h"

using namespace pagedllm;

namespace {

SchedulerOutput step_of(const std::vector<int64_t>& num_tokens) {
  SchedulerOutput out;
  for (int64_t n : num_tokens) {
    ScheduledRequest s;
    s.num_tokens = n;
    s.samples = true;
    out.scheduled.push_back(s);
    out.num_scheduled_tokens += n;
  }
  return out;
}

std::unique_ptr<Backend> cpu() {
  std::string error;
  std::unique_ptr<Backend> b = create_backend("cpu", 1, &error);
  PAGEDLLM_CHECK(b != nullptr, "" << error);
  return b;
}

}  // namespace

TEST(GraphSizes, Default) {
  std::vector<int64_t> s = graph_capture_sizes({}, 256);
  ASSERT_EQ(s.size(), 35u);  // 1, 2, 4, then 8..256 step 8
  EXPECT_EQ(s[0], 1);
  EXPECT_EQ(s[1], 2);
  EXPECT_EQ(s[2], 4);
  EXPECT_EQ(s[3], 8);
  EXPECT_EQ(s[4], 16);
  EXPECT_EQ(s.back(), 256);
  EXPECT_TRUE(graph_capture_sizes({}, 1) == (std::vector<int64_t>{1}));
  EXPECT_TRUE(graph_capture_sizes({}, 3) == (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(graph_capture_sizes({}, 20) == (std::vector<int64_t>{1, 2, 4, 8, 16, 20}));
}

TEST(GraphSizes, Requested) {
  EXPECT_TRUE(graph_capture_sizes({32, 4, 4, 1, 0, -3, 999}, 64) == (std::vector<int64_t>{1, 4, 32}));
  EXPECT_TRUE(graph_capture_sizes({128}, 64).empty());
}

TEST(GraphSizes, Padding) {
  const std::vector<int64_t> s = {1, 2, 4, 8, 16};
  EXPECT_EQ(graph_padded_size(s, 1), 1);
  EXPECT_EQ(graph_padded_size(s, 3), 4);
  EXPECT_EQ(graph_padded_size(s, 8), 8);
  EXPECT_EQ(graph_padded_size(s, 9), 16);
  EXPECT_EQ(graph_padded_size(s, 17), -1);
  EXPECT_EQ(graph_padded_size({}, 1), -1);
  for (int64_t b = 1; b <= 256; ++b) {
    const std::vector<int64_t> d = graph_capture_sizes({}, 256);
    const int64_t p = graph_padded_size(d, b);
    EXPECT_TRUE(p >= b && p - b < 8);
  }
}

TEST(GraphSizes, DecodeOnly) {
  EXPECT_TRUE(is_decode_only_step(step_of({1, 1, 1}), {0, 1, 2}));
  EXPECT_FALSE(is_decode_only_step(step_of({1, 2, 1}), {0, 2, 3}));   // a prefill chunk
  EXPECT_FALSE(is_decode_only_step(step_of({1, 1}), {0}));            // a request that does not sample
  EXPECT_FALSE(is_decode_only_step(step_of({1, 1}), {1, 0}));         // rows out of order
  EXPECT_FALSE(is_decode_only_step(step_of({1, 1}), {0, 0, 1}));      // extra rows
}

TEST(StepInputs, PadDecodeAndUpload) {
  std::unique_ptr<Backend> b = cpu();
  const int64_t T = 32, B = 8, M = 5;
  StepInputs in(b.get(), T, B, M);
  // A decode step of 3 sequences.
  in.query_start_loc()[0] = 0;
  for (int64_t s = 0; s < 3; ++s) {
    in.input_ids()[s] = static_cast<int32_t>(100 + s);
    in.positions()[s] = static_cast<int32_t>(40 + s);
    in.slot_mapping()[s] = 7 * s + 1;
    in.logits_indices()[s] = static_cast<int32_t>(s);
    in.query_start_loc()[s + 1] = static_cast<int32_t>(s + 1);
    in.seq_lens()[s] = static_cast<int32_t>(41 + s);
    for (int64_t k = 0; k < M; ++k) in.block_table(s)[k] = static_cast<int32_t>(10 * s + k + 3);
  }
  in.pad_decode(3, 8);
  in.upload(8);
  ForwardBatch batch = in.device_batch(8, 8, 8);
  ASSERT_EQ(batch.input_ids.shape[0], 8);
  ASSERT_EQ(batch.block_tables.shape[0], 8);
  ASSERT_EQ(batch.block_tables.shape[1], M);
  ASSERT_EQ(batch.query_start_loc.shape[0], 9);
  const int32_t* ids = batch.input_ids.ptr<int32_t>();
  const int32_t* pos = batch.positions.ptr<int32_t>();
  const int64_t* slots = batch.slot_mapping.ptr<int64_t>();
  const int32_t* rows = batch.logits_indices.ptr<int32_t>();
  const int32_t* qsl = batch.query_start_loc.ptr<int32_t>();
  const int32_t* lens = batch.seq_lens.ptr<int32_t>();
  const int32_t* tables = batch.block_tables.ptr<int32_t>();
  for (int64_t s = 0; s < 8; ++s) {
    const bool real = s < 3;
    EXPECT_EQ(ids[s], real ? 100 + s : 0);
    EXPECT_EQ(pos[s], real ? 40 + s : 0);
    EXPECT_EQ(slots[s], real ? 7 * s + 1 : -1);
    EXPECT_EQ(rows[s], s);
    EXPECT_EQ(qsl[s + 1], s + 1);
    EXPECT_EQ(lens[s], real ? 41 + s : 1);
    for (int64_t k = 0; k < M; ++k) EXPECT_EQ(tables[s * M + k], real ? 10 * s + k + 3 : 0);
  }
  EXPECT_EQ(qsl[0], 0);
  // Device arrays are distinct, non-overlapping and 64-byte aligned.
  const Tensor all[] = {batch.slot_mapping, batch.input_ids, batch.positions, batch.logits_indices,
                        batch.query_start_loc, batch.seq_lens, batch.block_tables};
  for (const Tensor& t : all) EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 64, 0u);
  EXPECT_TRUE(static_cast<char*>(batch.input_ids.data) >= static_cast<char*>(batch.slot_mapping.data) + T * 8);
  EXPECT_TRUE(static_cast<char*>(batch.block_tables.data) >= static_cast<char*>(batch.seq_lens.data) + B * 4);
  // The device addresses do not depend on the step.
  ForwardBatch small = in.device_batch(2, 1, 1);
  EXPECT_EQ(small.block_tables.data, batch.block_tables.data);
  EXPECT_EQ(small.seq_lens.data, batch.seq_lens.data);
  EXPECT_CHECK_FAILS(in.pad_decode(3, 9));
  EXPECT_CHECK_FAILS(in.upload(0));
  EXPECT_CHECK_FAILS(in.device_batch(T + 1, 1, 1));
}
