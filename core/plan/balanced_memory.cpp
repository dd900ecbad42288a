// Accelerate's get_balanced_memory: before a balanced walk, every GPU but the last is capped at an even
// share of the model plus a buffer, so layers spread over the GPUs instead of filling GPU 0 first.
#include <algorithm>
#include <unordered_set>

#include "error.hpp"
#include "model/skeleton.hpp"
#include "plan/planner.hpp"

namespace devicemap {
namespace {

// Modules in the order Accelerate's module_sizes dict first sees them: parameters in module order,
// then buffers in module order, each adding its ancestors top-down.
std::vector<int> modules_in_size_key_order(const Skeleton& s) {
  std::vector<int> order;
  std::vector<char> seen(s.modules.size(), 0);
  auto visit_tensor = [&](int t) {
    std::vector<int> chain;
    for (int m = s.tensors[static_cast<std::size_t>(t)].module; m > 0; m = s.modules[static_cast<std::size_t>(m)].parent)
      chain.push_back(m);
    for (auto it = chain.rbegin(); it != chain.rend(); ++it)
      if (!seen[static_cast<std::size_t>(*it)]) {
        seen[static_cast<std::size_t>(*it)] = 1;
        order.push_back(*it);
      }
  };
  for (bool buffers : {false, true}) {
    std::vector<int> stack{0};
    while (!stack.empty()) {
      const auto& m = s.modules[static_cast<std::size_t>(stack.back())];
      stack.pop_back();
      for (int t : buffers ? m.buffers : m.params)
        if (s.tensors[static_cast<std::size_t>(t)].tied_to < 0) visit_tensor(t);
      for (auto it = m.children.rbegin(); it != m.children.rend(); ++it) stack.push_back(*it);
    }
  }
  return order;
}

}  // namespace

MaxMemory balanced_memory(const Skeleton& s, const MaxMemory& max_memory, const ModuleSizes& sizes,
                          const std::vector<std::string>& no_split, bool low_zero) {
  if (max_memory.has(Device::disk()))
    throw Error(
        "a balanced strategy cannot plan with a \"disk\" entry in max_memory (Accelerate fails the same way: "
        "\"Expected one of cpu, cuda, … device type at start of device string: disk\"); drop the disk entry "
        "or use --strategy sequential");
  MaxMemory mm = max_memory;
  std::vector<int> gpus;
  for (const auto& [d, bytes] : mm.entries())
    if (d.is_gpu() && bytes > 0) gpus.push_back(d.index);
  const auto n = static_cast<std::int64_t>(gpus.size());
  if (n == 0) return mm;
  if (n == 1) low_zero = false;

  const std::int64_t total = sizes.total();
  std::int64_t per_gpu = total / (low_zero ? n - 1 : n);

  // The size of the first module of each no-split class, the largest of those.
  std::int64_t block = 0;
  const auto order = modules_in_size_key_order(s);
  if (!no_split.empty()) {
    std::unordered_set<std::string> found;
    for (int m : order) {
      const auto& cls = s.modules[static_cast<std::size_t>(m)].cls;
      if (std::find(no_split.begin(), no_split.end(), cls) == no_split.end() || found.contains(cls)) continue;
      found.insert(cls);
      block = std::max(block, sizes.module[static_cast<std::size_t>(m)]);
      if (found.size() == std::unordered_set<std::string>(no_split.begin(), no_split.end()).size()) break;
    }
  }
  // Mean size of the modules whose tensors are all direct (no child module holds tensors).
  std::vector<char> has_key(s.modules.size(), 0);
  for (int m : order) has_key[static_cast<std::size_t>(m)] = 1;
  double leaf_sum = 0;
  std::int64_t leaf_count = 0;
  for (int m : order) {
    const auto& mod = s.modules[static_cast<std::size_t>(m)];
    const bool leaf = std::none_of(mod.children.begin(), mod.children.end(),
                                   [&](int c) { return has_key[static_cast<std::size_t>(c)] != 0; });
    if (!leaf) continue;
    leaf_sum += static_cast<double>(sizes.module[static_cast<std::size_t>(m)]);
    ++leaf_count;
  }
  const auto mean = static_cast<std::int64_t>(leaf_sum / static_cast<double>(std::max<std::int64_t>(leaf_count, 1)));
  per_gpu += static_cast<std::int64_t>(1.25 * static_cast<double>(std::max(block, mean)));

  // Every GPU but the last is capped; the last keeps its budget in case the buffer is not enough.
  for (std::size_t i = 0; i + 1 < gpus.size(); ++i) {
    const Device d = Device::gpu(gpus[i]);
    const auto budget = static_cast<std::int64_t>(*mm.get(d));
    const std::int64_t cap = (low_zero && gpus[i] == 0) ? budget : per_gpu;
    mm.set(d, static_cast<std::uint64_t>(std::min(cap, budget)));
  }
  if (low_zero) {
    std::int64_t others = 0;
    for (std::int64_t i = 1; i < n; ++i) {
      const auto b = mm.get(Device::gpu(static_cast<int>(i)));
      if (!b)
        throw Error("balanced_low_0 needs GPU ids 0.." + std::to_string(n - 1) + " without gaps (GPU " +
                    std::to_string(i) + " has no budget); Accelerate fails here too. Renumber the GPUs or use "
                    "another strategy");
      others += static_cast<std::int64_t>(*b);
    }
    const auto b0 = mm.get(Device::gpu(0));
    if (!b0)
      throw Error("balanced_low_0 keeps GPU 0 light, but max_memory has no GPU 0; Accelerate fails here too. "
                  "Renumber the GPUs or use another strategy");
    const std::int64_t min_zero = std::max<std::int64_t>(0, total - others);
    mm.set(Device::gpu(0), static_cast<std::uint64_t>(std::min(min_zero, static_cast<std::int64_t>(*b0))));
  }
  return mm;
}

}  // namespace devicemap
