#include "run/decode_path.hpp"

#include <atomic>

namespace devicemap {
namespace {
std::atomic<bool> kernels_on{true};
}

void use_decode_kernels(bool on) { kernels_on.store(on, std::memory_order_relaxed); }
bool decode_kernels_in_use() { return kernels_on.load(std::memory_order_relaxed); }

}  // namespace devicemap
