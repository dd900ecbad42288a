#pragma once
// This process's memory as the kernel counts it (/proc/self/status), for run statistics and benchmarks.
#include <cstdint>

namespace devicemap {

std::uint64_t peak_resident_bytes();     // VmHWM: the most RAM this process has held, bytes; 0 if unknown
std::uint64_t current_resident_bytes();  // VmRSS, bytes; 0 if unknown

}  // namespace devicemap
