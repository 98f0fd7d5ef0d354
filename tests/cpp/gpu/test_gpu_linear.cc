// linear (GpuGemm on cuBLAS) and broadcast_bias on the GPU against a double-precision host
// reference: every input dtype with out in the same dtype or float32 (logits), odd shapes,
// strided x / weight / out rows (padding must stay poisoned), float32 and 16-bit biases, M = 0.
// The float32 tolerance (1e-5 of the row's sum of |products|) is about 5x below TF32's typical
// error at these K, so a GEMM that silently used TF32 would fail.
#include <cmath>
#include <memory>
#include <string>

#include "gemm.cuh"
#include "gpu_test.h"
#include "kernels/broadcast_bias.cuh"

namespace {

using pagedllm::DType;
using namespace pagedllm_test;

// Relative size of the out dtype's rounding step (round to nearest: half of it).
double out_rounding(DType d) {
  return d == DType::kBFloat16 ? std::ldexp(1.0, -8) : d == DType::kFloat16 ? std::ldexp(1.0, -11) : 0.0;
}

std::unique_ptr<pagedllm::GpuGemm> make_gemm() {
  std::string error;
  std::unique_ptr<pagedllm::GpuGemm> gemm = pagedllm::GpuGemm::create(gpu_stream(), &error);
  if (gemm == nullptr) PAGEDLLM_TEST_FAIL_(true, "GpuGemm::create: " + error);
  return gemm;
}

struct Case {
  DType in, out;
  int64_t m, n, k;
  int64_t x_pad = 0, w_pad = 0, out_pad = 0;  // extra elements per row (strided rows)
  bool bias = false;
  DType bias_dtype = DType::kFloat32;
};

void run_case(pagedllm::GpuGemm& gemm, const Case& c, uint64_t seed) {
  Rng rng(seed);
  TestTensor x(c.in, {c.m, c.k}, {c.k + c.x_pad, 1});
  TestTensor w(c.in, {c.n, c.k}, {c.k + c.w_pad, 1});
  TestTensor out(c.out, {c.m, c.n}, {c.n + c.out_pad, 1});
  TestTensor bias(c.bias_dtype, {c.n});
  x.fill_random(rng, -1, 1);
  w.fill_random(rng, -1, 1);
  if (c.bias) bias.fill_random(rng, -2, 2);
  pagedllm::LinearParams p{x.dev(), w.dev(), c.bias ? bias.dev() : pagedllm::Tensor(), out.dev()};
  gemm.linear(p);
  sync_device();
  TestTensor expected(out);
  double worst_abs = 0;  // the largest sum of |products| of a row: bounds float32 accumulation error
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) {
      double sum = c.bias ? bias.at(j) : 0.0, abs_sum = std::fabs(sum);
      for (int64_t l = 0; l < c.k; ++l) {
        sum += x.at(i, l) * w.at(j, l);
        abs_sum += std::fabs(x.at(i, l) * w.at(j, l));
      }
      worst_abs = std::max(worst_abs, abs_sum);
      expected.set(expected.offset(i, j), sum);
    }
  const Tolerance tol{out_rounding(c.out), 1e-5 * worst_abs + 1e-6};
  expect_close(out.fetch(), expected, tol,
               std::string("linear ") + pagedllm::dtype_name(c.in) + " -> " + pagedllm::dtype_name(c.out) + " [" +
                   std::to_string(c.m) + ", " + std::to_string(c.n) + ", " + std::to_string(c.k) + "]");
}

GPU_OP_TEST(linear, every_dtype_and_logits_in_float32) {
  auto gemm = make_gemm();
  uint64_t seed = 1;
  for (DType in : float_dtypes())
    for (DType out : {in, DType::kFloat32}) {
      run_case(*gemm, {in, out, 1, 1, 1}, seed++);
      run_case(*gemm, {in, out, 5, 67, 129}, seed++);
      run_case(*gemm, {in, out, 33, 256, 300}, seed++);
      run_case(*gemm, {in, out, 1, 1000, 64}, seed++);
    }
}

GPU_OP_TEST(linear, strided_rows) {
  auto gemm = make_gemm();
  uint64_t seed = 100;
  for (DType in : float_dtypes()) {
    Case c{in, in, 7, 48, 96};
    c.x_pad = 32;  // x is a column slice of a wider buffer
    c.out_pad = 48;  // out is the first half of a [7, 96] buffer (gate of gate_up)
    run_case(*gemm, c, seed++);
    c.w_pad = 8;
    run_case(*gemm, c, seed++);
  }
}

GPU_OP_TEST(linear, bias_added_inside_the_gemm) {
  auto gemm = make_gemm();
  uint64_t seed = 200;
  for (DType in : float_dtypes())
    for (DType bias_dtype : {DType::kFloat32, in}) {
      Case c{in, in, 9, 40, 24};
      c.bias = true;
      c.bias_dtype = bias_dtype;
      c.out_pad = 3;
      run_case(*gemm, c, seed++);
    }
}

GPU_OP_TEST(linear, empty_batch_writes_nothing) {
  auto gemm = make_gemm();
  TestTensor x(DType::kBFloat16, {0, 16});
  TestTensor w(DType::kBFloat16, {8, 16});
  TestTensor out(DType::kBFloat16, {0, 8});
  Rng rng(3);
  w.fill_random(rng, -1, 1);
  gemm->linear({x.dev(), w.dev(), pagedllm::Tensor(), out.dev()});
  sync_device();
}

GPU_OP_TEST(broadcast_bias, strided_rows_every_dtype_pair) {
  uint64_t seed = 300;
  for (DType bias_dtype : float_dtypes())
    for (DType out_dtype : float_dtypes()) {
      Rng rng(seed++);
      TestTensor bias(bias_dtype, {37});
      bias.fill_random(rng, -3, 3);
      TestTensor out(out_dtype, {70000, 37}, {41, 1});  // more rows than one grid pass
      pagedllm::launch_broadcast_bias({bias.dev(), out.dev()}, gpu_stream());
      sync_device();
      TestTensor expected(out);
      for (int64_t r = 0; r < 70000; ++r)
        for (int64_t c = 0; c < 37; ++c) expected.set(expected.offset(r, c), bias.at(c));
      expect_equal(out.fetch(), expected, "broadcast_bias");
    }
}

HOST_TEST(GpuChecks, linear_rejects_bad_shapes) {
  float buf[64] = {};
  using pagedllm::Tensor;
  Tensor x = Tensor::contiguous(buf, DType::kFloat32, {2, 4});
  Tensor w = Tensor::contiguous(buf, DType::kFloat32, {3, 4});
  Tensor out = Tensor::contiguous(buf, DType::kFloat32, {2, 3});
  EXPECT_EQ(pagedllm::check_linear({x, w, Tensor(), out}).n, 3);
  Tensor w_bad = Tensor::contiguous(buf, DType::kFloat32, {3, 5});
  EXPECT_CHECK_FAILS(pagedllm::check_linear({x, w_bad, Tensor(), out}));
  Tensor w_bf16 = Tensor::contiguous(buf, DType::kBFloat16, {3, 4});
  EXPECT_CHECK_FAILS(pagedllm::check_linear({x, w_bf16, Tensor(), out}));
  Tensor x_bf16 = Tensor::contiguous(buf, DType::kBFloat16, {2, 4});
  Tensor out_f16 = Tensor::contiguous(buf, DType::kFloat16, {2, 3});
  EXPECT_CHECK_FAILS(pagedllm::check_linear({x_bf16, w_bf16, Tensor(), out_f16}));
  Tensor bias = Tensor::contiguous(buf, DType::kFloat32, {4});
  EXPECT_CHECK_FAILS(pagedllm::check_linear({x, w, bias, out}));
  Tensor out_overlap = out;
  out_overlap.stride[0] = 2;
  EXPECT_CHECK_FAILS(pagedllm::check_linear({x, w, Tensor(), out_overlap}));
  const pagedllm::GemmShape s = pagedllm::check_linear({x.slice_cols(0, 3), w.slice_cols(0, 3), Tensor(), out});
  EXPECT_EQ(s.ldx, 4);
  EXPECT_EQ(s.k, 3);
}

}  // namespace
