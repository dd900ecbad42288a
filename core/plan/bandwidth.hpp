#pragma once
// Measured bandwidths of this machine, for speed prediction and benchmarks' bounds.
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

namespace devicemap {

struct Machine;

// RAM read bandwidth with every core summing its slice of a `bytes` buffer (much larger than the
// caches), best of `rounds`, GB/s.
double measure_memory_bandwidth_gbs(std::size_t bytes = std::size_t{128} << 20, int rounds = 5);

// Sequential read bandwidth of the disk holding `file`, reading up to `bytes` of it with O_DIRECT so
// the page cache does not answer, GB/s. nullopt where direct reads are not possible (tmpfs, a file
// too small to tell).
std::optional<double> measure_disk_read_gbs(const std::filesystem::path& file, std::size_t bytes = std::size_t{64} << 20);

// Read bandwidth of the disk holding `folder`, where no checkpoint file is there to read: writes `bytes`
// to a temporary file in `folder`, flushes it to the disk, and reads it back as measure_disk_read_gbs
// does. The file has no name where the filesystem allows (O_TMPFILE), so nothing is left behind even if
// the process is killed; elsewhere its name is removed right after it is created. Nothing is written
// when the disk has less than four times `bytes` free. nullopt where the folder takes no file (read-only,
// missing, full); `why` then says what stopped it.
std::optional<double> measure_folder_read_gbs(const std::filesystem::path& folder, std::string* why = nullptr,
                                              std::size_t bytes = std::size_t{64} << 20);

// The folder a detected disk device stands for ("disk (/data)" → /data); empty for a described one.
std::filesystem::path detected_disk_folder(const Machine& machine);

// Fills what a detected machine does not know: RAM bandwidth, and the disk's from `sample_file` (a
// checkpoint shard: offloaded weights are read from the checkpoint's own files). Profiles keep theirs.
// The RAM is measured once per process.
void measure_bandwidths(Machine& machine, const std::filesystem::path& sample_file = {});

}  // namespace devicemap
