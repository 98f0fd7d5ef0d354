// ThreadPool: workers 1..num_threads-1 wait for a new job generation, run their chunk of the
// job and count down `remaining`; the caller runs chunk 0 and waits for the count to reach
// zero. Invariant: a job's fields (fn, n, chunk, num_chunks) only change while no worker is
// inside that job, and a worker reads them together with the generation under the mutex.
#include "util/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "util/check.h"

namespace pagedllm {

namespace {

// How long an idle thread polls for work before blocking on the condition variable.
constexpr std::chrono::microseconds kSpinTime{50};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Polls cond() for up to kSpinTime, yielding the core now and then so that an oversubscribed
// machine still runs the thread we wait for.
template <typename Cond>
void spin_while(const Cond& cond) {
  auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
  for (int iter = 1; cond(); ++iter) {
    cpu_relax();
    if (iter % 8 == 0) {
      if (std::chrono::steady_clock::now() >= spin_until) return;
      std::this_thread::yield();
    }
  }
}

}  // namespace

struct ThreadPool::State {
  std::mutex mu;
  std::condition_variable start_cv;
  std::condition_variable done_cv;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> remaining{0};
  bool stop = false;
  const std::function<void(int64_t, int64_t, int)>* fn = nullptr;
  int64_t n = 0;
  int64_t chunk = 0;
  int num_chunks = 0;
  std::exception_ptr error;  // first exception thrown by a worker in the current job
  std::vector<std::thread> workers;
};

namespace {

void run_chunk(const std::function<void(int64_t, int64_t, int)>& fn, int64_t n, int64_t chunk,
               int idx) {
  int64_t begin = static_cast<int64_t>(idx) * chunk;
  int64_t end = std::min(n, begin + chunk);
  if (begin < end) fn(begin, end, idx);
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads), state_(new State) {
  PAGEDLLM_CHECK(num_threads >= 1, "ThreadPool needs at least one thread, got " << num_threads);
  State* s = state_;
  s->workers.reserve(static_cast<size_t>(num_threads - 1));
  for (int idx = 1; idx < num_threads; ++idx) {
    s->workers.emplace_back([s, idx] {
      uint64_t seen = 0;
      for (;;) {
        spin_while([&] { return s->generation.load(std::memory_order_acquire) == seen; });
        const std::function<void(int64_t, int64_t, int)>* fn;
        int64_t n, chunk;
        int num_chunks;
        {
          std::unique_lock<std::mutex> lock(s->mu);
          s->start_cv.wait(lock, [&] {
            return s->stop || s->generation.load(std::memory_order_relaxed) != seen;
          });
          if (s->stop) return;
          seen = s->generation.load(std::memory_order_relaxed);
          fn = s->fn;
          n = s->n;
          chunk = s->chunk;
          num_chunks = s->num_chunks;
        }
        if (idx >= num_chunks) continue;
        try {
          run_chunk(*fn, n, chunk, idx);
        } catch (...) {
          std::lock_guard<std::mutex> lock(s->mu);
          if (!s->error) s->error = std::current_exception();
        }
        if (s->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          std::lock_guard<std::mutex> lock(s->mu);
          s->done_cv.notify_one();
        }
      }
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->start_cv.notify_all();
  for (std::thread& t : state_->workers) t.join();
  delete state_;
}

void ThreadPool::parallel_for(int64_t n, int64_t min_chunk,
                              const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  min_chunk = std::max<int64_t>(1, min_chunk);
  int64_t max_chunks = std::max<int64_t>(1, n / min_chunk);
  int num_chunks = static_cast<int>(std::min<int64_t>(num_threads_, max_chunks));
  if (num_chunks <= 1) {
    fn(0, n, 0);
    return;
  }
  int64_t chunk = (n + num_chunks - 1) / num_chunks;
  num_chunks = static_cast<int>((n + chunk - 1) / chunk);
  State* s = state_;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->fn = &fn;
    s->n = n;
    s->chunk = chunk;
    s->num_chunks = num_chunks;
    s->error = nullptr;
    s->remaining.store(num_chunks - 1, std::memory_order_relaxed);
    s->generation.fetch_add(1, std::memory_order_release);
  }
  s->start_cv.notify_all();

  std::exception_ptr caller_error;
  try {
    run_chunk(fn, n, chunk, 0);
  } catch (...) {
    caller_error = std::current_exception();
  }

  spin_while([&] { return s->remaining.load(std::memory_order_acquire) != 0; });
  std::exception_ptr worker_error;
  {
    std::unique_lock<std::mutex> lock(s->mu);
    s->done_cv.wait(lock, [&] { return s->remaining.load(std::memory_order_acquire) == 0; });
    worker_error = s->error;
    s->error = nullptr;
  }
  if (caller_error) std::rethrow_exception(caller_error);
  if (worker_error) std::rethrow_exception(worker_error);
}

}  // namespace pagedllm
