// DESIGN.md rule 7: the launchers of this folder's ops enqueue work only (no allocation, no
// synchronization, no read of device memory), so a stream capture of them succeeds and the
// replayed graph computes what the host references compute.
#include "gpu_test.h"
#include "host_reference.h"
#include "kernels/copy_blocks.cuh"
#include "kernels/embedding.cuh"
#include "kernels/gather_rows.cuh"
#include "kernels/head_rms_norm.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/rotary_embedding.cuh"
#include "kernels/write_kv_cache.cuh"

namespace {

using pagedllm::DType;
using namespace pagedllm_test;

TEST(Gpu_capture, launchers_replay_from_a_graph) {
  const DType bf16 = DType::kBFloat16;
  Rng rng(900);
  TestTensor table(bf16, {64, 256}), ids(DType::kInt32, {5}), hidden(bf16, {5, 256});
  table.fill_random(rng, -1, 1);
  ids.fill({3, 63, 0, 9, 9});
  TestTensor x(bf16, {5, 256}), res(bf16, {5, 256}), w(bf16, {256}), normed(bf16, {5, 256});
  x.fill_random(rng, -2, 2);
  res.fill_random(rng, -2, 2);
  w.fill_random(rng, 0.5, 1.5);
  TestTensor q(bf16, {5, 4, 64}), k(bf16, {5, 2, 64}), v(bf16, {5, 2, 64}), qn(bf16, {64});
  q.fill_random(rng, -2, 2);
  k.fill_random(rng, -2, 2);
  v.fill_random(rng, -2, 2);
  qn.fill_random(rng, 0.5, 1.5);
  TestTensor pos(DType::kInt32, {5}), cache(DType::kFloat32, {16, 64});
  pos.fill({0, 1, 2, 15, 7});
  cache.fill_random(rng, -1, 1);
  TestTensor slots(DType::kInt64, {5}), kc(bf16, {4, 2, 4, 64}), vc(bf16, {4, 2, 4, 64});
  slots.fill({0, 5, -1, 6, 11});
  TestTensor rows(DType::kInt32, {2}), gathered(bf16, {2, 256});
  rows.fill({4, 1});
  TestTensor keys(DType::kInt64, {1}), values(DType::kInt64, {1}), mapping(DType::kInt64, {1, 2});
  keys.fill({static_cast<double>(reinterpret_cast<uintptr_t>(kc.dev().data))});
  values.fill({static_cast<double>(reinterpret_cast<uintptr_t>(vc.dev().data))});
  mapping.fill({1, 3});
  const int64_t block_bytes = 2 * 4 * 64 * 2;

  pagedllm::gpuGraph_t graph = nullptr;
  pagedllm::gpuGraphExec_t exec = nullptr;
  PAGEDLLM_GPU_CHECK(pagedllm::gpuStreamBeginCapture(gpu_stream(), pagedllm::gpuStreamCaptureModeThreadLocal));
  pagedllm::launch_embedding({ids.dev(), table.dev(), hidden.dev()}, gpu_stream());
  pagedllm::launch_rms_norm({x.dev(), res.dev(), w.dev(), normed.dev(), 1e-6f}, gpu_stream());
  pagedllm::launch_head_rms_norm({q.dev(), qn.dev(), 1e-6f}, gpu_stream());
  pagedllm::launch_rotary_embedding({pos.dev(), q.dev(), k.dev(), cache.dev()}, gpu_stream());
  pagedllm::launch_write_kv_cache({k.dev(), v.dev(), slots.dev(), kc.dev(), vc.dev()}, gpu_stream());
  pagedllm::launch_gather_rows({normed.dev(), rows.dev(), gathered.dev()}, gpu_stream());
  pagedllm::launch_copy_blocks({keys.dev(), values.dev(), mapping.dev(), 4, block_bytes}, gpu_stream());
  PAGEDLLM_GPU_CHECK(pagedllm::gpuStreamEndCapture(gpu_stream(), &graph));
  PAGEDLLM_GPU_CHECK(pagedllm::gpuGraphInstantiate(&exec, graph));
  PAGEDLLM_GPU_CHECK(pagedllm::gpuGraphLaunch(exec, gpu_stream()));
  sync_device();
  PAGEDLLM_GPU_CHECK(pagedllm::gpuGraphExecDestroy(exec));
  PAGEDLLM_GPU_CHECK(pagedllm::gpuGraphDestroy(graph));

  ref::embedding({ids.host(), table.host(), hidden.host()});
  ref::rms_norm({x.host(), res.host(), w.host(), normed.host(), 1e-6f});
  ref::head_rms_norm({q.host(), qn.host(), 1e-6f});
  ref::rotary_embedding({pos.host(), q.host(), k.host(), cache.host()});
  ref::write_kv_cache({k.host(), v.host(), slots.host(), kc.host(), vc.host()});
  ref::gather_rows({normed.host(), rows.host(), gathered.host()});
  TestTensor host_keys(DType::kInt64, {1}), host_values(DType::kInt64, {1});
  host_keys.fill({static_cast<double>(reinterpret_cast<uintptr_t>(kc.host().data))});
  host_values.fill({static_cast<double>(reinterpret_cast<uintptr_t>(vc.host().data))});
  ref::copy_blocks({host_keys.host(), host_values.host(), mapping.host(), 4, block_bytes});

  const Tolerance tol = tolerance(bf16);
  expect_equal(hidden.fetch(), hidden, "embedding");
  expect_close(res.fetch(), res, tol, "rms_norm residual");
  expect_close(normed.fetch(), normed, tol, "rms_norm out");
  expect_close(q.fetch(), q, tol, "head_rms_norm + rotary q");
  expect_close(k.fetch(), k, tol, "rotary k");
  expect_close(kc.fetch(), kc, tol, "k_cache (written, block 1 copied to 3)");
  expect_equal(vc.fetch(), vc, "v_cache (written, block 1 copied to 3)");
  expect_close(gathered.fetch(), gathered, tol, "gather_rows");
}

}  // namespace
