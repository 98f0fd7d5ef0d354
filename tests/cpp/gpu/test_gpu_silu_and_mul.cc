// silu_and_mul on the GPU against the host reference: dtypes, odd sizes, strided rows.
#include "gpu_test.h"
#include "host_reference.h"
#include "kernels/silu_and_mul.cuh"

namespace {

using pagedllm::DType;
using namespace pagedllm_test;

void run_case(DType dtype, int64_t tokens, int64_t inter, int64_t x_pad, int64_t out_pad, uint64_t seed) {
  Rng rng(seed);
  TestTensor x(dtype, {tokens, 2 * inter}, {2 * inter + x_pad, 1});
  x.fill_random(rng, -4, 4);
  TestTensor out(dtype, {tokens, inter}, {inter + out_pad, 1});
  pagedllm::launch_silu_and_mul({x.dev(), out.dev()}, gpu_stream());
  sync_device();
  ref::silu_and_mul({x.host(), out.host()});
  expect_close(out.fetch(), out, tolerance(dtype), "silu_and_mul out");
  expect_equal(x.fetch(), x, "silu_and_mul x (unchanged)");
}

GPU_OP_TEST(silu_and_mul, shapes_and_dtypes) {
  for (DType dtype : float_dtypes()) {
    run_case(dtype, 1, 1, 0, 0, 1);
    run_case(dtype, 3, 17, 5, 3, 2);
    run_case(dtype, 5, 128, 0, 0, 3);
    run_case(dtype, 7, 1000, 8, 0, 4);
    run_case(dtype, 2, 4099, 1, 7, 5);
    run_case(dtype, 64, 14336, 0, 0, 6);
  }
}

HOST_TEST(GpuChecks, silu_and_mul_rejects_bad_shapes) {
  float buf[16] = {};
  pagedllm::Tensor x = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 4});
  pagedllm::Tensor out = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 3});
  EXPECT_CHECK_FAILS(pagedllm::launch_silu_and_mul({x, out}, nullptr));
  pagedllm::Tensor out_bf16 = pagedllm::Tensor::contiguous(buf, DType::kBFloat16, {2, 2});
  EXPECT_CHECK_FAILS(pagedllm::launch_silu_and_mul({x, out_bf16}, nullptr));
}

}  // namespace
