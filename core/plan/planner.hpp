#pragma once
// Which module goes where: Accelerate's infer_auto_device_map and its strategies (auto, balanced,
// balanced_low_0, sequential), giving the same map Accelerate gives for the same skeleton and budgets
// (PLANNER.md), plus what Accelerate lacks, off unless asked: user pins and a KV-cache reserve.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/module_sizes.hpp"
#include "model/quantization.hpp"
#include "plan/budget.hpp"
#include "plan/device_map.hpp"

namespace devicemap {

class Skeleton;

enum class Strategy { Auto, Balanced, BalancedLow0, Sequential };
std::optional<Strategy> strategy_from_name(std::string_view name);  // "auto", "balanced", …
std::string_view strategy_name(Strategy);
std::optional<Flavor> flavor_from_name(std::string_view name);      // "accelerate", "transformers"
std::string_view flavor_name(Flavor);

// A user constraint: this module (or tensor) must live on this device. Its tied partners follow it.
struct Pin {
  std::string name;
  Device device;
  bool operator==(const Pin&) const = default;
};

// KV cache for `context` tokens × `batch` sequences: 2 × kv_heads × head_dim × context × batch × dtype
// bytes per decoder layer, charged to the device that runs the layer.
struct KvReserve {
  std::uint64_t context = 0;
  std::uint64_t batch = 1;
  bool enabled() const { return context > 0 && batch > 0; }
};

struct PlanOptions {
  Strategy strategy = Strategy::Auto;
  std::optional<DType> dtype;                                   // target dtype; none = as stored
  Flavor flavor = Flavor::Transformers;                         // how `dtype` counts (module_sizes.hpp)
  std::optional<std::vector<std::string>> no_split_classes;     // none = the skeleton's
  bool offload_buffers = false;
  bool fallback_allocation = false;
  std::vector<Pin> pins;
  KvReserve kv;
  // bitsandbytes on load (or a bitsandbytes checkpoint): the walk sizes the model as transformers does
  // for Accelerate, on 90% of each budget, so the map is transformers' own; the fit uses the real bytes.
  // `dtype` is then torch_dtype (float16 when none is given, as bitsandbytes defaults).
  std::optional<Quantization> quantization;
};

struct DeviceUsage {
  Device device;
  std::optional<std::int64_t> budget;   // max_memory as given; none = unlimited (disk)
  std::optional<std::int64_t> planned;  // after balancing
  std::int64_t weights = 0;             // bytes of the modules placed here (as the walk counted them)
  std::optional<std::int64_t> real_weights;  // quantized plans: the bytes those modules really take
  std::int64_t offload_reserve = 0;     // room kept on a main device for the largest offloaded layer
  std::int64_t kv_cache = 0;            // KV reserve charged here
  std::vector<std::string> modules;     // keys of the (uncleaned) map placed here, in order
  std::int64_t needed() const { return real_weights.value_or(weights) + offload_reserve + kv_cache; }
  // Bytes over budget (0 when it fits). Measured against the budget as given, not the balanced one.
  std::int64_t shortfall() const { return budget && needed() > *budget ? needed() - *budget : 0; }
};

struct Plan {
  DeviceMap device_map;              // cleaned, as exported
  DeviceMap raw_map;                 // one key per placed module or tensor, in placement order
  MaxMemory planned_max_memory;      // the budgets the walk used (after balancing)
  std::vector<DeviceUsage> devices;  // every device of max_memory, plus disk
  std::int64_t total_bytes = 0;       // as the walk counted (quantized: transformers' accounting)
  std::int64_t real_total_bytes = 0;  // quantized plans: the real bytes
  std::int64_t kv_per_layer = 0;
  std::vector<std::string> warnings;  // as Accelerate warns
  std::vector<std::string> info;      // as Accelerate logs at INFO level
  std::vector<std::string> notes;     // our own: pins that pulled a tied partner along, KV choices
  bool fits() const;                  // no device over budget
};

// Plans `skeleton` on `max_memory`. Throws devicemap::Error where Accelerate raises (a balanced
// strategy with a "disk" budget, balanced_low_0 on non-contiguous GPU ids, unknown pins).
Plan plan_device_map(const Skeleton& skeleton, const MaxMemory& max_memory, const PlanOptions& options);

// Accelerate's get_balanced_memory: the GPU budgets a balanced strategy plans with.
MaxMemory balanced_memory(const Skeleton& skeleton, const MaxMemory& max_memory, const ModuleSizes& sizes,
                          const std::vector<std::string>& no_split_classes, bool low_zero);

}  // namespace devicemap
