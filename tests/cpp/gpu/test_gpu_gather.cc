// embedding and gather_rows on the GPU against the host reference: every table/activation
// dtype pair, strided rows, odd widths (scalar and vector paths), out-of-range ids (NaN rows).
#include "gpu_test.h"
#include "host_reference.h"
#include "kernels/embedding.cuh"
#include "kernels/gather_rows.cuh"

namespace {

using pagedllm::DType;
using namespace pagedllm_test;

void run_embedding(DType table_dtype, DType out_dtype, int64_t vocab, int64_t hidden, int64_t table_pad,
                   int64_t out_pad, const std::vector<double>& ids, uint64_t seed) {
  Rng rng(seed);
  TestTensor table(table_dtype, {vocab, hidden}, {hidden + table_pad, 1});
  table.fill_random(rng, -1, 1);
  const auto tokens = static_cast<int64_t>(ids.size());
  TestTensor token_ids(DType::kInt32, {tokens});
  token_ids.fill(ids);
  TestTensor out(out_dtype, {tokens, hidden}, {hidden + out_pad, 1});
  pagedllm::launch_embedding({token_ids.dev(), table.dev(), out.dev()}, gpu_stream());
  sync_device();
  ref::embedding({token_ids.host(), table.host(), out.host()});
  expect_equal(out.fetch(), out, "embedding out");
}

GPU_OP_TEST(embedding, dtypes_shapes_bad_ids) {
  uint64_t seed = 200;
  for (DType table_dtype : float_dtypes())
    for (DType out_dtype : float_dtypes()) {
      run_embedding(table_dtype, out_dtype, 10, 1, 0, 0, {3}, seed++);
      run_embedding(table_dtype, out_dtype, 50, 64, 0, 0, {0, 49, 7, 7, 12}, seed++);
      run_embedding(table_dtype, out_dtype, 33, 4096, 0, 8, {32, 1, 0, 5}, seed++);
      run_embedding(table_dtype, out_dtype, 17, 100, 3, 1, {16, 2, 9}, seed++);  // scalar path
      run_embedding(table_dtype, out_dtype, 9, 13, 0, 0, {8, -1, 9, 1000000, 4}, seed++);  // bad ids
    }
  std::vector<double> many;
  for (int i = 0; i < 3000; ++i) many.push_back((i * 7919) % 1024);
  run_embedding(DType::kBFloat16, DType::kBFloat16, 1024, 2048, 0, 0, many, seed++);
}

void run_gather(DType dtype, int64_t rows, int64_t hidden, int64_t x_pad, int64_t out_pad,
                const std::vector<double>& idx, uint64_t seed) {
  Rng rng(seed);
  TestTensor x(dtype, {rows, hidden}, {hidden + x_pad, 1});
  x.fill_random(rng, -1000, 1000);
  const auto n = static_cast<int64_t>(idx.size());
  TestTensor indices(DType::kInt32, {n});
  indices.fill(idx);
  TestTensor out(dtype, {n, hidden}, {hidden + out_pad, 1});
  pagedllm::launch_gather_rows({x.dev(), indices.dev(), out.dev()}, gpu_stream());
  sync_device();
  ref::gather_rows({x.host(), indices.host(), out.host()});
  expect_equal(out.fetch(), out, "gather_rows out");
}

GPU_OP_TEST(gather_rows, dtypes_widths_strides_bad_indices) {
  uint64_t seed = 300;
  const DType dtypes[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16, DType::kInt32, DType::kInt64};
  for (DType dtype : dtypes) {
    run_gather(dtype, 6, 1, 0, 0, {5, 0, 3}, seed++);
    run_gather(dtype, 8, 4096, 0, 0, {7, 7, 0, 2}, seed++);  // 16-byte words
    run_gather(dtype, 8, 12, 0, 4, {1, 2}, seed++);
    run_gather(dtype, 5, 33, 1, 0, {4, 3, 2, 1, 0}, seed++);  // odd width and stride
    run_gather(dtype, 5, 16, 0, 0, {-1, 5, 2}, seed++);       // bad indices
  }
}

HOST_TEST(GpuChecks, gather_launchers_reject_bad_shapes) {
  float buf[64] = {};
  int32_t ids[4] = {};
  const pagedllm::Tensor table = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {4, 8});
  const pagedllm::Tensor ids3 = pagedllm::Tensor::contiguous(ids, DType::kInt32, {3});
  const pagedllm::Tensor ids64 = pagedllm::Tensor::contiguous(ids, DType::kInt64, {2});
  const pagedllm::Tensor out2 = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 8});
  EXPECT_CHECK_FAILS(pagedllm::launch_embedding({ids3, table, out2}, nullptr));
  EXPECT_CHECK_FAILS(pagedllm::launch_embedding({ids64, table, out2}, nullptr));
  EXPECT_CHECK_FAILS(pagedllm::launch_gather_rows({table, ids3, out2}, nullptr));
  const pagedllm::Tensor out_bf16 = pagedllm::Tensor::contiguous(buf, DType::kBFloat16, {3, 8});
  EXPECT_CHECK_FAILS(pagedllm::launch_gather_rows({table, ids3, out_bf16}, nullptr));
}

}  // namespace
