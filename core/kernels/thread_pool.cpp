#include "kernels/thread_pool.hpp"

#include <sched.h>

#include <cstdlib>
#include <string>

namespace devicemap::kernels {
namespace {

// Spins of a worker waiting for the next call before it sleeps: ~20 µs, longer than the gaps between
// the products of one decode step, far shorter than the gap between steps of a human-paced program.
constexpr int kSpins = 20000;

thread_local bool in_pool_task = false;

}  // namespace

unsigned available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<unsigned>(n);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? hw : 1;
}

ThreadPool& ThreadPool::shared() {
  static ThreadPool pool([] {
    if (const char* env = std::getenv("DEVICEMAP_THREADS"); env && *env) {
      const long n = std::strtol(env, nullptr, 10);
      if (n >= 1 && n <= 1024) return static_cast<unsigned>(n);
    }
    return available_cores();
  }());
  return pool;
}

ThreadPool::ThreadPool(unsigned threads) {
  for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain() {
  for (std::size_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < tasks_;) {
    (*task_)(i);
    remaining_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::work() {
  in_pool_task = true;
  std::uint64_t seen = 0;
  while (true) {
    std::uint64_t now = generation_.load(std::memory_order_acquire);
    for (int spin = 0; now == seen && spin < kSpins; ++spin) now = generation_.load(std::memory_order_acquire);
    if (now == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = now;
    if (stop_.load()) return;
    drain();
    acks_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(std::size_t tasks, const std::function<void(std::size_t)>& task) {
  if (tasks == 0) return;
  std::unique_lock lock(busy_, std::try_to_lock);
  if (workers_.empty() || tasks == 1 || in_pool_task || !lock.owns_lock()) {
    for (std::size_t i = 0; i < tasks; ++i) task(i);
    return;
  }
  task_ = &task;
  tasks_ = tasks;
  remaining_.store(tasks, std::memory_order_relaxed);
  next_.store(0, std::memory_order_relaxed);
  acks_.store(0, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  in_pool_task = true;
  drain();
  in_pool_task = false;
  // Every worker acknowledges the call before the next one may change what drain() reads.
  while (remaining_.load(std::memory_order_acquire) != 0 || acks_.load(std::memory_order_acquire) != workers_.size()) {
  }
}

}  // namespace devicemap::kernels
