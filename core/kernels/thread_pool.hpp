#pragma once
// One pool of worker threads for every decode kernel, started once and sized to the cores, so that a
// matrix-vector product costs its weight bytes, not a thread start. The calling thread takes part.
// Workers spin briefly between calls (a decode step issues hundreds of products microseconds apart),
// then sleep on an atomic wait, so an idle program uses no CPU.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace devicemap::kernels {

class ThreadPool {
 public:
  // `threads` counts the caller: a pool of 1 runs everything on the calling thread.
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // The program's pool: DEVICEMAP_THREADS if set, else the cores this process may run on.
  static ThreadPool& shared();

  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }

  // Runs task(i) for every i in [0, tasks), spread over the pool; returns when all have run. A call made
  // while the pool is busy (from a task, or from another thread) runs its tasks on the calling thread.
  void run(std::size_t tasks, const std::function<void(std::size_t)>& task);

 private:
  void work();
  void drain();

  std::vector<std::thread> workers_;
  std::mutex busy_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> remaining_{0};
  std::atomic<std::size_t> acks_{0};  // workers done with the current call
  std::atomic<bool> stop_{false};
  const std::function<void(std::size_t)>* task_ = nullptr;
  std::size_t tasks_ = 0;
};

// Cores this process may run on (sched_getaffinity), at least 1.
unsigned available_cores();

}  // namespace devicemap::kernels
