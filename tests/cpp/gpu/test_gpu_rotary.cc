// rotary_embedding on the GPU against the host reference: q and k with different head counts,
// token strides wider than heads * D (views into a fused qkv row), head sizes 2..256, the real
// cos/sin table shape, out-of-range positions (NaN heads).
#include <cmath>

#include "gpu_test.h"
#include "host_reference.h"
#include "kernels/rotary_embedding.cuh"

namespace {

using pagedllm::DType;
using namespace pagedllm_test;

TestTensor make_cache(int64_t max_position, int64_t d) {
  TestTensor cache(DType::kFloat32, {max_position, d});
  std::vector<double> v;
  for (int64_t p = 0; p < max_position; ++p) {
    for (int64_t i = 0; i < d / 2; ++i) v.push_back(std::cos(p * std::pow(10000.0, -2.0 * i / d)));
    for (int64_t i = 0; i < d / 2; ++i) v.push_back(std::sin(p * std::pow(10000.0, -2.0 * i / d)));
  }
  cache.fill(v);
  return cache;
}

void run_case(DType dtype, int64_t q_heads, int64_t kv_heads, int64_t d, int64_t max_position,
              const std::vector<double>& positions, uint64_t seed) {
  Rng rng(seed);
  const auto tokens = static_cast<int64_t>(positions.size());
  TestTensor pos(DType::kInt32, {tokens});
  pos.fill(positions);
  const int64_t row = (q_heads + 2 * kv_heads) * d;  // q | k | v of one token
  TestTensor q(dtype, {tokens, q_heads, d}, {row, d, 1});
  q.fill_random(rng, -2, 2);
  TestTensor k(dtype, {tokens, kv_heads, d}, {row + 3, d, 1});
  k.fill_random(rng, -2, 2);
  const TestTensor cache = make_cache(max_position, d);
  pagedllm::launch_rotary_embedding({pos.dev(), q.dev(), k.dev(), cache.dev()}, gpu_stream());
  sync_device();
  ref::rotary_embedding({pos.host(), q.host(), k.host(), cache.host()});
  expect_close(q.fetch(), q, tolerance(dtype), "rotary q");
  expect_close(k.fetch(), k, tolerance(dtype), "rotary k");
}

GPU_OP_TEST(rotary_embedding, dtypes_heads_strides) {
  uint64_t seed = 400;
  for (DType dtype : float_dtypes()) {
    run_case(dtype, 1, 1, 2, 4, {3}, seed++);
    run_case(dtype, 4, 2, 64, 64, {0, 1, 63, 17, 17}, seed++);
    run_case(dtype, 32, 8, 128, 4096, {4095, 0, 1000, 2047, 5, 6, 7}, seed++);
    run_case(dtype, 3, 1, 256, 300, {299, 1, 150}, seed++);
    run_case(dtype, 5, 5, 10, 20, {19, 0, 7}, seed++);
    run_case(dtype, 2, 1, 8, 10, {-1, 10, 3, 100000}, seed++);  // out-of-range positions -> NaN
  }
}

HOST_TEST(GpuChecks, rotary_rejects_bad_shapes) {
  float buf[256] = {};
  int32_t ids[4] = {};
  const pagedllm::Tensor pos = pagedllm::Tensor::contiguous(ids, DType::kInt32, {2});
  const pagedllm::Tensor q = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 2, 8});
  const pagedllm::Tensor k = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 1, 8});
  const pagedllm::Tensor cache = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {4, 8});
  const pagedllm::Tensor k_odd = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 1, 6});
  EXPECT_CHECK_FAILS(pagedllm::launch_rotary_embedding({pos, q, k_odd, cache}, nullptr));
  const pagedllm::Tensor cache_bf16 = pagedllm::Tensor::contiguous(buf, DType::kBFloat16, {4, 8});
  EXPECT_CHECK_FAILS(pagedllm::launch_rotary_embedding({pos, q, k, cache_bf16}, nullptr));
  const pagedllm::Tensor pos3 = pagedllm::Tensor::contiguous(ids, DType::kInt32, {3});
  EXPECT_CHECK_FAILS(pagedllm::launch_rotary_embedding({pos3, q, k, cache}, nullptr));
  const pagedllm::Tensor k_bf16 = pagedllm::Tensor::contiguous(buf, DType::kBFloat16, {2, 1, 8});
  EXPECT_CHECK_FAILS(pagedllm::launch_rotary_embedding({pos, q, k_bf16, cache}, nullptr));
}

}  // namespace
