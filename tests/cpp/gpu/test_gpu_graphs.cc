// GpuGraphs (cuda/gpu_graphs.cuh), the graphs behind Backend::begin_capture / end_capture /
// replay_graph: nothing runs during capture, a replay reads the inputs' current device contents
// (kernel arguments are fixed, memory is read at replay), graphs are independent, and a capture
// broken by a synchronizing call fails with an error naming enforce_eager and leaves the stream
// usable.
#include <string>

#include "gpu_graphs.cuh"
#include "gpu_test.h"
#include "host_reference.h"
#include "kernels/silu_and_mul.cuh"

namespace {

using pagedllm::DType;
using namespace pagedllm_test;

TEST(Gpu_graphs, replay_reads_current_inputs) {
  Rng rng(31);
  TestTensor x(DType::kBFloat16, {3, 64}), out(DType::kBFloat16, {3, 32});
  TestTensor y(DType::kFloat32, {2, 16}), out_y(DType::kFloat32, {2, 8});
  x.fill_random(rng, -2, 2);
  y.fill_random(rng, -2, 2);
  pagedllm::GpuGraphs graphs;
  graphs.begin_capture(gpu_stream());
  pagedllm::launch_silu_and_mul({x.dev(), out.dev()}, gpu_stream());
  const int64_t a = graphs.end_capture(gpu_stream());
  graphs.begin_capture(gpu_stream());
  pagedllm::launch_silu_and_mul({y.dev(), out_y.dev()}, gpu_stream());
  const int64_t b = graphs.end_capture(gpu_stream());
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(graphs.num_graphs(), 2);
  sync_device();
  expect_equal(out.fetch(), out, "out is still poisoned after capture");
  for (int round = 0; round < 2; ++round) {
    x.fill_random(rng, -2, 2);  // new values at the captured address
    graphs.replay(a, gpu_stream());
    sync_device();
    pagedllm_test::ref::silu_and_mul({x.host(), out.host()});
    expect_close(out.fetch(), out, tolerance(DType::kBFloat16), "out after replay " + std::to_string(round));
  }
  expect_equal(out_y.fetch(), out_y, "graph b did not run");
  graphs.replay(b, gpu_stream());
  sync_device();
  pagedllm_test::ref::silu_and_mul({y.host(), out_y.host()});
  expect_close(out_y.fetch(), out_y, tolerance(DType::kFloat32), "out_y");
  EXPECT_CHECK_FAILS(graphs.replay(2, gpu_stream()));
}

TEST(Gpu_graphs, capture_broken_by_a_sync_fails_clearly) {
  pagedllm::GpuGraphs graphs;
  graphs.begin_capture(gpu_stream());
  (void)pagedllm::gpuStreamSynchronize(gpu_stream());  // not allowed while capturing
  std::string message;
  try {
    graphs.end_capture(gpu_stream());
  } catch (const pagedllm::InternalError& e) {
    message = e.what();
  }
  EXPECT_TRUE(message.find("enforce_eager") != std::string::npos);
  EXPECT_FALSE(graphs.capturing());
  (void)pagedllm::gpuGetLastError();
  Rng rng(5);
  TestTensor x(DType::kFloat32, {1, 8}), out(DType::kFloat32, {1, 4});
  x.fill_random(rng, -1, 1);
  graphs.begin_capture(gpu_stream());
  pagedllm::launch_silu_and_mul({x.dev(), out.dev()}, gpu_stream());
  EXPECT_EQ(graphs.end_capture(gpu_stream()), 0);
  graphs.replay(0, gpu_stream());
  sync_device();
  pagedllm_test::ref::silu_and_mul({x.host(), out.host()});
  expect_close(out.fetch(), out, tolerance(DType::kFloat32), "out after a fresh capture");
}

}  // namespace
