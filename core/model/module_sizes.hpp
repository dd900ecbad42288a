#pragma once
// Bytes per tensor and per module as Accelerate's compute_module_sizes counts them: numel × dtype size;
// with a target dtype a floating tensor counts min(target, stored) ("accelerate" flavour) or the target
// ("transformers" flavour: the model is cast first); integer and bool tensors keep their size; a tied
// alias counts nothing (its canonical tensor holds the bytes).
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "format/dtype.hpp"

namespace devicemap {

class Skeleton;

enum class Flavor { Accelerate, Transformers };

struct ModuleSizes {
  std::vector<std::int64_t> tensor;          // per tensor
  std::vector<std::int64_t> module;          // per module, whole subtree
  std::vector<std::int64_t> module_buffers;  // per module, buffers of the whole subtree
  std::int64_t total() const { return module.empty() ? 0 : module[0]; }
};

ModuleSizes compute_module_sizes(const Skeleton& s, std::optional<DType> dtype = std::nullopt,
                                 Flavor flavor = Flavor::Accelerate);

struct SkeletonTensor;
// Module sizes from a size per tensor (tied aliases count nothing), summed up the module tree.
ModuleSizes sizes_from_tensor_bytes(const Skeleton& s, const std::function<std::int64_t(const SkeletonTensor&)>& bytes_of);

// The size one tensor of `stored` dtype takes under the target dtype and flavour.
std::int64_t tensor_bytes(DType stored, std::uint64_t numel, std::optional<DType> target, Flavor flavor);

}  // namespace devicemap
