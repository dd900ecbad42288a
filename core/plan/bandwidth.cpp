#include "plan/bandwidth.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
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

namespace {

// Reads the whole of `fd` in 4 MiB chunks after dropping its pages from the page cache, GB/s. For a
// filesystem without O_DIRECT: the pages are clean after fdatasync, so the kernel drops them (tmpfs keeps
// them, and there the page cache is the storage).
std::optional<double> buffered_read_gbs(int fd, std::size_t bytes) {
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  std::vector<char> buffer(std::size_t{4} << 20);
  std::size_t done = 0;
  const auto t = Clock::now();
  while (done < bytes) {
    const ssize_t n = ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  const double s = seconds_since(t);
  if (done < bytes || s <= 0) return std::nullopt;
  return double(done) / s / 1e9;
}

}  // namespace

std::optional<double> measure_folder_read_gbs(const std::filesystem::path& folder, std::string* why, std::size_t bytes) {
  const auto fail = [&](std::string reason) -> std::optional<double> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  struct statvfs st {};
  if (::statvfs(folder.c_str(), &st) != 0) return fail("cannot read " + folder.string() + ": " + std::strerror(errno));
  if (double(st.f_bavail) * double(st.f_frsize) < 4.0 * double(bytes))
    return fail("less than " + std::to_string(4 * (bytes >> 20)) + " MiB free on the disk of " + folder.string());
  int fd = ::open(folder.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    // No O_TMPFILE here (overlayfs before Linux 6.6, some network filesystems): a named file, unlinked at once.
    std::string name = (folder / ".devicemap-disk-probe-XXXXXX").string();
    fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) return fail("cannot write a temporary file in " + folder.string() + ": " + std::strerror(errno));
    ::unlink(name.c_str());
  }
  const struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  // Bytes that no filesystem compresses or deduplicates.
  std::vector<std::uint64_t> chunk((std::size_t{4} << 20) / sizeof(std::uint64_t));
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (std::size_t done = 0; done < bytes; done += chunk.size() * sizeof(std::uint64_t)) {
    for (auto& v : chunk) v = (x = x * 6364136223846793005ull + 1442695040888963407ull);
    const auto* p = reinterpret_cast<const char*>(chunk.data());
    std::size_t left = chunk.size() * sizeof(std::uint64_t);
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n <= 0) return fail("cannot write a temporary file in " + folder.string() + ": " + std::strerror(errno));
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  if (::fdatasync(fd) != 0) return fail("cannot flush a temporary file in " + folder.string() + ": " + std::strerror(errno));
  // A second descriptor with O_DIRECT through /proc: the page cache must not answer.
  if (auto gbs = measure_disk_read_gbs("/proc/self/fd/" + std::to_string(fd), bytes)) return gbs;
  if (auto gbs = buffered_read_gbs(fd, bytes)) return gbs;
  return fail("cannot read back a temporary file in " + folder.string());
}

std::filesystem::path detected_disk_folder(const Machine& m) {
  const DeviceInfo* disk = m.find(Device::disk());
  if (!disk || disk->simulated) return {};
  const std::string& n = disk->name;  // as detect_machine names it
  constexpr std::string_view head = "disk (";
  if (n.size() <= head.size() + 1 || n.compare(0, head.size(), head) != 0 || n.back() != ')') return {};
  return n.substr(head.size(), n.size() - head.size() - 1);
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
