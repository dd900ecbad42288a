#pragma once
// The read loop of the memory-bandwidth test, in the widest vectors the machine has (Highway, run-time
// dispatch). A plain loop of 64-bit loads measures the load ports rather than memory: on a two-thread
// core it read ~38 GB/s where these kernels streamed weights at ~76 GB/s, so every bound built on it was
// half the truth.
#include <cstddef>
#include <cstdint>

namespace devicemap::kernels {

// Σ words[0, n) (wrapping), read with vector loads; the sum lets a caller check the reads happened.
std::uint64_t sum_words(const std::uint64_t* words, std::size_t n);

}  // namespace devicemap::kernels
