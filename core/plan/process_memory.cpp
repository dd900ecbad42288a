#include "plan/process_memory.hpp"

#include <fstream>
#include <string>

namespace devicemap {
namespace {

std::uint64_t status_kib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(key.size())) * 1024;
  return 0;
}

}  // namespace

std::uint64_t peak_resident_bytes() { return status_kib("VmHWM:"); }
std::uint64_t current_resident_bytes() { return status_kib("VmRSS:"); }

}  // namespace devicemap
