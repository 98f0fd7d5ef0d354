// GpuGraphs: the graphs a GPU backend captures on its stream (Backend::begin_capture,
// end_capture, replay_graph). A graph is recorded from the ops enqueued between begin and end,
// instantiated once and replayed with the same kernel arguments and device pointers; it
// allocates nothing of its own (every op reads and writes buffers allocated before capture),
// so all graphs share the runner's and the model's buffers as their one memory pool.
//
// Capture mode is thread-local: an unsafe call (allocation, synchronization) made by this
// thread during capture invalidates it and end_capture fails with a message saying so;
// other threads are unaffected. Invariants: ids are indices into execs_, valid until
// destruction; at most one capture is open. Call with the backend's device current.
#pragma once

#include <cstdint>
#include <vector>

#include "gpu_compat.cuh"

namespace pagedllm {

class GpuGraphs {
 public:
  GpuGraphs() = default;
  ~GpuGraphs();
  GpuGraphs(const GpuGraphs&) = delete;
  GpuGraphs& operator=(const GpuGraphs&) = delete;

  // Starts recording the ops enqueued on `stream`. Precondition: no capture is open.
  void begin_capture(gpuStream_t stream);
  // Ends the capture on `stream` and instantiates it; returns its id (>= 0).
  int64_t end_capture(gpuStream_t stream);
  // Enqueues graph `id` on `stream`.
  void replay(int64_t id, gpuStream_t stream);
  bool capturing() const { return capturing_; }
  int64_t num_graphs() const { return static_cast<int64_t>(execs_.size()); }

 private:
  std::vector<gpuGraphExec_t> execs_;
  bool capturing_ = false;
};

}  // namespace pagedllm
