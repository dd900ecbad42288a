#pragma once
// Internal to the planner: the queue walk of Accelerate's infer_auto_device_map over a Skeleton,
// with indices instead of names in the hot path. planner.cpp drives it.
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "model/skeleton.hpp"
#include "plan/planner.hpp"

namespace devicemap::detail {

// A queue entry: a module or a tensor (a parameter, or a buffer of the root).
struct Item {
  int id = 0;
  bool tensor = false;
  bool operator==(const Item&) const = default;
};

struct WalkInput {
  const Skeleton* skeleton = nullptr;
  const ModuleSizes* sizes = nullptr;
  std::vector<std::string> no_split;
  std::vector<std::pair<Device, std::optional<std::int64_t>>> devices;  // in order; disk last, unlimited
  bool offload_buffers = false;
  bool fallback_allocation = false;
  std::vector<Pin> pins;                // already expanded to tied partners
  std::int64_t kv_per_layer = 0;        // 0 = no KV reserve
};

struct WalkResult {
  std::vector<std::pair<std::string, Device>> assignments;  // placement order
  std::vector<std::int64_t> weights, kv, reserve;           // per device of WalkInput::devices
  std::vector<std::int64_t> used;                           // Accelerate's device_memory_used
  std::vector<std::int64_t> buffers;                        // buffers of modules placed per device
  // KV cache charged to a device after the walk had left it: offloaded layers run on the main GPU.
  std::vector<std::int64_t> kv_late;
  std::vector<std::pair<Device, std::int64_t>> minimum_assignment;
};

WalkResult walk(const WalkInput& in);

}  // namespace devicemap::detail
