// convert on the GPU: every pair of float dtypes, special values (overflow to inf, subnormals,
// signed zero), odd sizes and a size past the launcher's grid cap (grid-stride loop).
#include <cmath>
#include <limits>

#include "gpu_test.h"
#include "host_reference.h"
#include "kernels/convert.cuh"

namespace {

using pagedllm::DType;
using namespace pagedllm_test;

void run_case(DType from, DType to, int64_t n, uint64_t seed) {
  Rng rng(seed);
  TestTensor src(from, {n});
  src.fill_random(rng, -3, 3);
  const double inf = std::numeric_limits<double>::infinity();
  const double specials[] = {0.0, -0.0, inf, -inf, 65504, 65519, 65520, -1e10, 3e38, 1e-6, -6e-8, 1e-40};
  for (int64_t i = 0; i < n && i < 12; ++i) src.set(i * (n / 12 > 0 ? n / 12 : 1) % n, specials[i]);
  src.upload();
  TestTensor dst(to, {n});
  pagedllm::launch_convert({src.dev(), dst.dev()}, gpu_stream());
  sync_device();
  ref::convert({src.host(), dst.host()});
  expect_equal(dst.fetch(), dst, std::string("convert ") + pagedllm::dtype_name(from) + " -> " +
                                     pagedllm::dtype_name(to));
}

GPU_OP_TEST(convert, every_dtype_pair) {
  for (DType from : float_dtypes())
    for (DType to : float_dtypes()) {
      run_case(from, to, 1, 1);
      run_case(from, to, 13, 2);
      run_case(from, to, 4099, 3);
    }
}

GPU_OP_TEST(convert, larger_than_one_grid_pass) {
  run_case(DType::kFloat32, DType::kBFloat16, (int64_t{65536} * 256) + 1001, 4);
}

HOST_TEST(GpuChecks, convert_rejects_bad_shapes) {
  float buf[16] = {};
  pagedllm::Tensor a = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 4});
  pagedllm::Tensor b = pagedllm::Tensor::contiguous(buf, DType::kBFloat16, {4, 2});
  EXPECT_CHECK_FAILS(pagedllm::launch_convert({a, b}, nullptr));
  pagedllm::Tensor strided = a;
  strided.shape[1] = 3;
  pagedllm::Tensor c = pagedllm::Tensor::contiguous(buf, DType::kBFloat16, {2, 3});
  EXPECT_CHECK_FAILS(pagedllm::launch_convert({strided, c}, nullptr));
  pagedllm::Tensor ints = pagedllm::Tensor::contiguous(buf, DType::kInt32, {2, 4});
  EXPECT_CHECK_FAILS(pagedllm::launch_convert({ints, a}, nullptr));
}

}  // namespace
