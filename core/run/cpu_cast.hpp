#pragma once
// Internal to the running layer (includes ATen). Casting weights on the CPU into fresh memory.
#include <sys/mman.h>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <cstdint>

namespace devicemap {

// A CPU cast into fresh memory (`source` itself when it has the type already, unless `copy`). Large
// buffers ask for transparent huge pages (Debian's default is "madvise"), which saves the page fault per
// 4 KiB that otherwise dominates casting gigabytes, and the TLB misses of reading them at every token.
inline at::Tensor empty_in_huge_pages(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<std::uintptr_t>(out.data_ptr());
  const auto first = (begin + kHuge - 1) & ~(kHuge - 1), end = (begin + out.nbytes()) & ~(kHuge - 1);
  if (end > first) ::madvise(reinterpret_cast<void*>(first), end - first, MADV_HUGEPAGE);  // a hint only
  return out;
}

inline at::Tensor cast_on_cpu(const at::Tensor& source, c10::ScalarType type, bool copy = false) {
  if (source.scalar_type() == type && !copy) return source;
  at::Tensor out = empty_in_huge_pages(source.sizes(), source.options().dtype(type));
  out.copy_(source);
  return out;
}

}  // namespace devicemap
