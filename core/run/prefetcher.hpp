#pragma once
// Internal to the running layer (includes ATen). Brings offloaded weights to their execution device ahead
// of time: while block i runs, a background thread fetches what block i + 1 will need — copies to the GPU
// or casts of tensors left on "disk" — and asks the kernel to read ahead the file pages of tensors that
// run straight from the mapping. What a block needs is learnt from its first run, so every model family
// gets prefetching by routing its fetches through here. After the last block, block 0 is prefetched for
// the next token.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "run/model.hpp"
#include "run/weights.hpp"

namespace devicemap {

class Prefetcher {
 public:
  Prefetcher(const Weights& weights, std::size_t blocks, bool enabled);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Block `index` starts: its prefetched tensors become available, the next block's prefetch starts.
  void enter_block(std::size_t index);
  // The blocks are done for this pass (final norm and head follow); block 0 is prefetched next.
  void leave_blocks();
  // Waits for a running prefetch and drops everything prefetched.
  void reset();

  // The tensor on `device` in its compute dtype: prefetched when it was, else fetched now.
  at::Tensor fetch(std::string_view name, const c10::Device& device);
  at::Tensor fetch_if_present(std::string_view name, const c10::Device& device);

  const TransferStats& stats() const { return stats_; }

 private:
  struct Need {
    std::string name;
    c10::Device device;
    bool transfer;  // else: runs from the mapping on "disk", read ahead only
  };
  using Fetched = std::vector<std::pair<std::string, at::Tensor>>;

  void start(std::size_t index);
  void record(std::string_view name, const c10::Device& device, bool transfer);
  void work();  // the worker thread: runs queued fetches in order

  const Weights& weights_;
  bool enabled_;
  std::vector<std::vector<Need>> needs_;  // per block, learnt on its first run
  std::vector<bool> learnt_;
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t current_ = kNone;
  Fetched ready_;  // the current block's prefetched tensors
  std::size_t pending_index_ = kNone;
  std::future<Fetched> pending_;
  TransferStats stats_;
  // One long-lived worker: starting a thread per block costs more than a small block takes to run.
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::packaged_task<Fetched()>> jobs_;
  bool stopping_ = false;
  std::thread worker_;  // started on the first prefetch
};

}  // namespace devicemap
