#include "plan/bandwidth.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "error.hpp"
#include "kernels/memory_read.hpp"
#include "plan/machine.hpp"

namespace devicemap {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

namespace {

// Best of `rounds` reads of one freshly allocated `bytes` buffer by every core, GB/s.
double read_rate_gbs(std::size_t bytes, int rounds) {
  // Huge pages, as the runtime's weights get: 4 KiB pages would measure TLB misses as much as memory.
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  const std::size_t words = std::max<std::size_t>(1, bytes / sizeof(std::uint64_t));
  const std::size_t rounded = (words * sizeof(std::uint64_t) + kHuge - 1) / kHuge * kHuge;
  std::unique_ptr<std::uint64_t, decltype(&std::free)> buffer(static_cast<std::uint64_t*>(std::aligned_alloc(kHuge, rounded)), &std::free);
  if (!buffer) throw Error("memory bandwidth test: cannot allocate " + std::to_string(rounded) + " bytes");
  ::madvise(buffer.get(), rounded, MADV_HUGEPAGE);  // a hint only
  std::uint64_t* const data = buffer.get();
  std::fill(data, data + words, std::uint64_t{1});
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  double best = 0;
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::uint64_t> sums(threads);
    const auto t = Clock::now();
    std::vector<std::thread> pool;
    for (unsigned i = 0; i < threads; ++i)
      pool.emplace_back([&, i] {
        const std::size_t begin = words * i / threads, end = words * (i + 1) / threads;
        sums[i] = kernels::sum_words(data + begin, end - begin);
      });
    for (auto& p : pool) p.join();
    const double s = seconds_since(t);
    // The sums are checked so that the reads cannot be optimised away.
    if (std::accumulate(sums.begin(), sums.end(), std::uint64_t{0}) != words) throw Error("memory bandwidth test failed");
    best = std::max(best, double(words * sizeof(std::uint64_t)) / s / 1e9);
  }
  return best;
}

}  // namespace

double measure_memory_bandwidth_gbs(std::size_t bytes, int rounds) {
  // Two buffers: the first one a process allocates reads up to a third slower on the virtual machines
  // measured (40 against 57-64 GB/s on the next, whatever the rounds), so it alone understates memory.
  return std::max(read_rate_gbs(bytes, rounds), read_rate_gbs(bytes, rounds));
}

std::optional<double> measure_disk_read_gbs(const std::filesystem::path& file, std::size_t bytes) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  constexpr std::size_t kChunk = std::size_t{4} << 20, kAlign = 4096;
  void* raw = nullptr;
  if (::posix_memalign(&raw, kAlign, kChunk) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  const std::unique_ptr<void, decltype(&std::free)> buffer(raw, &std::free);
  std::size_t done = 0;
  const auto t = Clock::now();
  while (done < bytes) {
    const ssize_t n = ::pread(fd, buffer.get(), kChunk, static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
    if (static_cast<std::size_t>(n) < kChunk) break;
  }
  const double s = seconds_since(t);
  ::close(fd);
  if (done < (std::size_t{16} << 20) || s <= 0) return std::nullopt;
  return double(done) / s / 1e9;
}

void measure_bandwidths(Machine& m, const std::filesystem::path& sample_file) {
  for (auto& d : m.devices) {
    if (d.simulated || d.bandwidth_gbs > 0) continue;
    if (d.device.is_cpu()) {
      // Once per process: a figure that moved with every re-detection would move every prediction.
      static const double ram = measure_memory_bandwidth_gbs();
      d.bandwidth_gbs = ram;
    }
    if (d.device.is_disk() && !sample_file.empty())
      if (auto v = measure_disk_read_gbs(sample_file)) d.bandwidth_gbs = *v;
  }
}

}  // namespace devicemap
