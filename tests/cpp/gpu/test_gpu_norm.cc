// rms_norm (fused residual add, in place, strided rows) and head_rms_norm (per-head, strided
// tokens and heads) on the GPU against the host reference, every activation x weight dtype.
#include "gpu_test.h"
#include "host_reference.h"
#include "kernels/head_rms_norm.cuh"
#include "kernels/rms_norm.cuh"

namespace {

using pagedllm::DType;
using namespace pagedllm_test;

struct RmsCase {
  int64_t rows, hidden, x_pad, res_pad, out_pad;
  bool residual, in_place;
};

void run_rms(DType act, DType wt, const RmsCase& c, uint64_t seed) {
  Rng rng(seed);
  TestTensor x(act, {c.rows, c.hidden}, {c.hidden + c.x_pad, 1});
  x.fill_random(rng, -2, 2);
  TestTensor res(act, {c.rows, c.hidden}, {c.hidden + c.res_pad, 1});
  res.fill_random(rng, -2, 2);
  TestTensor w(wt, {c.hidden});
  w.fill_random(rng, 0.5, 2);
  TestTensor out(act, {c.rows, c.hidden}, {c.hidden + c.out_pad, 1});
  const pagedllm::Tensor no_residual;
  pagedllm::RmsNormParams dp{x.dev(), c.residual ? res.dev() : no_residual, w.dev(), c.in_place ? x.dev() : out.dev(),
                             1e-5f};
  pagedllm::launch_rms_norm(dp, gpu_stream());
  sync_device();
  pagedllm::RmsNormParams hp{x.host(), c.residual ? res.host() : no_residual, w.host(),
                             c.in_place ? x.host() : out.host(), 1e-5f};
  ref::rms_norm(hp);
  const Tolerance tol = tolerance(act);
  if (c.in_place) {
    expect_close(x.fetch(), x, tol, "rms_norm out (in place in x)");
  } else {
    expect_close(out.fetch(), out, tol, "rms_norm out");
    expect_equal(x.fetch(), x, "rms_norm x (unchanged)");
  }
  expect_close(res.fetch(), res, tol, c.residual ? "rms_norm residual" : "rms_norm residual (unused)");
}

GPU_OP_TEST(rms_norm, shapes_dtypes_residual_in_place) {
  const RmsCase cases[] = {
      {1, 1, 0, 0, 0, false, false},       {3, 7, 1, 2, 3, true, false},      {4, 64, 0, 0, 0, true, true},
      {5, 4096, 0, 0, 0, true, false},     {2, 4096, 8, 16, 24, true, true},  {7, 1000, 3, 0, 5, false, true},
      {33, 2048, 0, 0, 0, false, false},   {2, 8192, 0, 0, 0, true, false},   {3, 5120, 1, 0, 0, true, false},
      {1, 1537, 0, 0, 0, true, true},
  };
  uint64_t seed = 10;
  for (DType act : float_dtypes())
    for (DType wt : float_dtypes())
      for (const RmsCase& c : cases) run_rms(act, wt, c, seed++);
}

GPU_OP_TEST(rms_norm, zero_rows_is_a_no_op) {
  TestTensor x(DType::kBFloat16, {0, 16}), w(DType::kBFloat16, {16});
  pagedllm::launch_rms_norm({x.dev(), pagedllm::Tensor(), w.dev(), x.dev(), 1e-6f}, gpu_stream());
  sync_device();
}

void run_head(DType act, DType wt, int64_t tokens, int64_t heads, int64_t d, int64_t token_stride, uint64_t seed) {
  Rng rng(seed);
  // A [T, heads, D] view of a wider [T, token_stride] buffer (q inside a fused qkv row).
  TestTensor x(act, {tokens, heads, d}, {token_stride, d, 1});
  x.fill_random(rng, -3, 3);
  TestTensor w(wt, {d});
  w.fill_random(rng, 0.5, 2);
  pagedllm::launch_head_rms_norm({x.dev(), w.dev(), 1e-6f}, gpu_stream());
  sync_device();
  ref::head_rms_norm({x.host(), w.host(), 1e-6f});
  expect_close(x.fetch(), x, tolerance(act), "head_rms_norm x");
}

GPU_OP_TEST(head_rms_norm, shapes_dtypes_strided_tokens) {
  uint64_t seed = 100;
  for (DType act : float_dtypes())
    for (DType wt : float_dtypes()) {
      run_head(act, wt, 1, 1, 8, 8, seed++);
      run_head(act, wt, 3, 5, 64, 5 * 64 + 2 * 64, seed++);
      run_head(act, wt, 7, 32, 128, 48 * 128, seed++);
      run_head(act, wt, 2, 3, 256, 3 * 256 + 1, seed++);  // odd token stride: scalar path
      run_head(act, wt, 5, 2, 5, 11, seed++);              // odd D
      run_head(act, wt, 9, 1, 96, 96, seed++);             // rows not a multiple of the warps per block
    }
}

HOST_TEST(GpuChecks, norm_launchers_reject_bad_shapes) {
  float buf[64] = {};
  const pagedllm::Tensor x = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 8});
  const pagedllm::Tensor w7 = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {7});
  const pagedllm::Tensor w8 = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {8});
  EXPECT_CHECK_FAILS(pagedllm::launch_rms_norm({x, pagedllm::Tensor(), w7, x, 1e-6f}, nullptr));
  const pagedllm::Tensor out_bf16 = pagedllm::Tensor::contiguous(buf, DType::kBFloat16, {2, 8});
  EXPECT_CHECK_FAILS(pagedllm::launch_rms_norm({x, pagedllm::Tensor(), w8, out_bf16, 1e-6f}, nullptr));
  const pagedllm::Tensor res3 = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {3, 8});
  EXPECT_CHECK_FAILS(pagedllm::launch_rms_norm({x, res3, w8, x, 1e-6f}, nullptr));
  pagedllm::Tensor col_strided = x;
  col_strided.stride[1] = 2;
  EXPECT_CHECK_FAILS(pagedllm::launch_rms_norm({col_strided, pagedllm::Tensor(), w8, x, 1e-6f}, nullptr));
  const pagedllm::Tensor h = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 2, 4});
  EXPECT_CHECK_FAILS(pagedllm::launch_head_rms_norm({h, w8, 1e-6f}, nullptr));
  EXPECT_CHECK_FAILS(pagedllm::launch_head_rms_norm({x, w8, 1e-6f}, nullptr));
}

}  // namespace
