#include "model/module_sizes.hpp"

#include "model/skeleton.hpp"

namespace devicemap {

std::int64_t tensor_bytes(DType stored, std::uint64_t numel, std::optional<DType> target, Flavor flavor) {
  DType counted = stored;
  // float8 tensors are quantized weights (FP8Linear makes them float8 whatever torch_dtype says, and
  // Accelerate counts each tensor at no more than its own size): they keep their byte.
  if (target && is_floating(stored) && dtype_bits(stored) > 8) {
    if (flavor == Flavor::Transformers || dtype_bits(*target) < dtype_bits(stored)) counted = *target;
  }
  return static_cast<std::int64_t>(dtype_bytes(counted, numel));
}

ModuleSizes sizes_from_tensor_bytes(const Skeleton& s, const std::function<std::int64_t(const SkeletonTensor&)>& bytes_of) {
  ModuleSizes sizes;
  sizes.tensor.assign(s.tensors.size(), 0);
  sizes.module.assign(s.modules.size(), 0);
  sizes.module_buffers.assign(s.modules.size(), 0);
  for (std::size_t i = 0; i < s.tensors.size(); ++i) {
    const auto& t = s.tensors[i];
    if (t.tied_to >= 0) continue;
    const std::int64_t bytes = bytes_of(t);
    sizes.tensor[i] = bytes;
    for (int m = t.module; m >= 0; m = s.modules[static_cast<std::size_t>(m)].parent) {
      sizes.module[static_cast<std::size_t>(m)] += bytes;
      if (t.buffer) sizes.module_buffers[static_cast<std::size_t>(m)] += bytes;
    }
  }
  return sizes;
}

ModuleSizes compute_module_sizes(const Skeleton& s, std::optional<DType> dtype, Flavor flavor) {
  return sizes_from_tensor_bytes(s, [&](const SkeletonTensor& t) { return tensor_bytes(t.dtype, t.numel(), dtype, flavor); });
}

}  // namespace devicemap
