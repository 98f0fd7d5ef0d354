// ThreadPool: a persistent pool of worker threads for data-parallel kernels.
// Invariant: workers are created once in the constructor and joined in the destructor; a
// parallel_for never allocates or creates threads. The calling thread takes part as worker 0.
#pragma once

#include <cstdint>
#include <functional>

namespace pagedllm {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // num_threads >= 1 (1 = run inline)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(begin, end, thread_idx) on disjoint ranges covering [0, n), split into at most
  // num_threads() contiguous chunks no smaller than min_chunk (except the last). Blocks until
  // all chunks are done. Not reentrant: fn must not call parallel_for.
  void parallel_for(int64_t n, int64_t min_chunk,
                    const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  struct State;
  int num_threads_;
  State* state_;
};

}  // namespace pagedllm
