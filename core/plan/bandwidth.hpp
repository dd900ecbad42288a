#pragma once
// Measured bandwidths of this machine, for speed prediction and benchmarks' bounds.
#include <cstddef>
#include <filesystem>
#include <optional>

namespace devicemap {

struct Machine;

// RAM read bandwidth with every core summing its slice of a `bytes` buffer (much larger than the
// caches), best of `rounds`, GB/s.
double measure_memory_bandwidth_gbs(std::size_t bytes = std::size_t{128} << 20, int rounds = 5);

// Sequential read bandwidth of the disk holding `file`, reading up to `bytes` of it with O_DIRECT so
// the page cache does not answer, GB/s. nullopt where direct reads are not possible (tmpfs, a file
// too small to tell).
std::optional<double> measure_disk_read_gbs(const std::filesystem::path& file, std::size_t bytes = std::size_t{64} << 20);

// Fills what a detected machine does not know: RAM bandwidth, and the disk's from `sample_file` (a
// checkpoint shard: offloaded weights are read from the checkpoint's own files). Profiles keep theirs.
// The RAM is measured once per process.
void measure_bandwidths(Machine& machine, const std::filesystem::path& sample_file = {});

}  // namespace devicemap
