#include "run/prefetcher.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

namespace devicemap {
namespace {

// Asks the kernel to start reading a mapped range now (asynchronously); failures only lose the hint.
std::uint64_t advise_will_need(const at::Tensor& t) {
  static const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(t.data_ptr());
  const auto end = begin + static_cast<std::uintptr_t>(t.nbytes());
  const std::uintptr_t first = begin & ~(page - 1);
  if (end <= first) return 0;
  ::madvise(reinterpret_cast<void*>(first), end - first, MADV_WILLNEED);
  return end - begin;
}

}  // namespace

Prefetcher::Prefetcher(const Weights& weights, std::size_t blocks, bool enabled)
    : weights_(weights), enabled_(enabled), needs_(blocks), learnt_(blocks, false) {}

Prefetcher::~Prefetcher() {
  reset();
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Prefetcher::work() {
  c10::InferenceMode inference;
  for (;;) {
    std::packaged_task<Fetched()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();  // an exception is stored in the job's future
  }
}

void Prefetcher::reset() {
  if (pending_.valid()) {
    try {
      pending_.get();
    } catch (...) {  // a failed prefetch only costs the fetch it would have saved
    }
  }
  pending_index_ = kNone;
  ready_.clear();
  current_ = kNone;
}

void Prefetcher::enter_block(std::size_t index) {
  if (current_ != kNone && current_ < learnt_.size()) learnt_[current_] = true;
  ready_.clear();
  if (pending_.valid()) {
    Fetched fetched = pending_.get();  // a failure surfaces here, as the fetch itself would have
    if (pending_index_ == index) ready_ = std::move(fetched);
  }
  pending_index_ = kNone;
  current_ = index;
  if (enabled_ && index + 1 < needs_.size()) start(index + 1);
}

void Prefetcher::leave_blocks() {
  if (current_ != kNone && current_ < learnt_.size()) learnt_[current_] = true;
  current_ = kNone;
  ready_.clear();
  if (enabled_ && !needs_.empty() && !pending_.valid()) start(0);
}

void Prefetcher::start(std::size_t index) {
  if (!learnt_[index] || needs_[index].empty()) return;
  std::vector<Need> needs = needs_[index];
  pending_index_ = index;
  std::packaged_task<Fetched()> job([this, needs = std::move(needs)] {
    Fetched out;
    for (const auto& n : needs) {
      if (n.transfer)
        out.emplace_back(n.name, weights_.fetch(n.name, n.device));
      else
        advise_will_need(weights_.stored(n.name).tensor);
    }
    return out;
  });
  pending_ = job.get_future();
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  if (!worker_.joinable()) worker_ = std::thread([this] { work(); });
  wake_.notify_one();
  for (const auto& n : needs_[index])
    if (!n.transfer) stats_.advised_bytes += static_cast<std::uint64_t>(weights_.stored(n.name).tensor.nbytes());
}

void Prefetcher::record(std::string_view name, const c10::Device& device, bool transfer) {
  if (current_ == kNone || current_ >= needs_.size() || learnt_[current_]) return;
  auto& needs = needs_[current_];
  const bool known = std::any_of(needs.begin(), needs.end(), [&](const Need& n) { return n.name == name && n.device == device; });
  if (!known) needs.push_back({std::string(name), device, transfer});
}

at::Tensor Prefetcher::fetch(std::string_view name, const c10::Device& device) {
  for (auto& [n, t] : ready_) {
    if (n == name && t.device() == device) {
      ++stats_.prefetched_tensors;
      stats_.transferred_bytes += static_cast<std::uint64_t>(t.nbytes());
      return t;
    }
  }
  const bool transfer = weights_.needs_transfer(name, device);
  if (transfer || (weights_.stored(name).aliases_file && weights_.stored(name).placement.is_disk()))
    record(name, device, transfer);
  at::Tensor t = weights_.fetch(name, device);
  if (transfer) {
    ++stats_.fetched_tensors;
    stats_.transferred_bytes += static_cast<std::uint64_t>(t.nbytes());
  }
  return t;
}

at::Tensor Prefetcher::fetch_if_present(std::string_view name, const c10::Device& device) {
  return weights_.contains(name) ? fetch(name, device) : at::Tensor();
}

}  // namespace devicemap
