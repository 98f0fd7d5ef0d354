#include "gpu_graphs.cuh"

namespace pagedllm {

GpuGraphs::~GpuGraphs() {
  for (gpuGraphExec_t e : execs_) (void)gpuGraphExecDestroy(e);
}

void GpuGraphs::begin_capture(gpuStream_t stream) {
  PAGEDLLM_CHECK(!capturing_, "begin_capture while a capture is open");
  PAGEDLLM_GPU_CHECK(gpuStreamBeginCapture(stream, gpuStreamCaptureModeThreadLocal));
  capturing_ = true;
}

int64_t GpuGraphs::end_capture(gpuStream_t stream) {
  PAGEDLLM_CHECK(capturing_, "end_capture without begin_capture");
  capturing_ = false;
  gpuGraph_t graph = nullptr;
  const gpuError_t err = gpuStreamEndCapture(stream, &graph);
  if (err != gpuSuccess || graph == nullptr) {
    (void)gpuGetLastError();
    if (graph != nullptr) (void)gpuGraphDestroy(graph);
    PAGEDLLM_CHECK(false, "graph capture failed (" << gpuGetErrorString(err)
                              << "): an op allocated, synchronized or copied to the host during capture; "
                                 "run with enforce_eager to skip graphs");
  }
  gpuGraphExec_t exec = nullptr;
  const gpuError_t inst = gpuGraphInstantiate(&exec, graph);
  (void)gpuGraphDestroy(graph);
  PAGEDLLM_CHECK(inst == gpuSuccess, "graph instantiation failed: " << gpuGetErrorString(inst));
  execs_.push_back(exec);
  return static_cast<int64_t>(execs_.size()) - 1;
}

void GpuGraphs::replay(int64_t id, gpuStream_t stream) {
  PAGEDLLM_CHECK(id >= 0 && id < num_graphs(), "replay of unknown graph " << id);
  PAGEDLLM_GPU_CHECK(gpuGraphLaunch(execs_[static_cast<size_t>(id)], stream));
}

}  // namespace pagedllm
