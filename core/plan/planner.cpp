#include "plan/planner.hpp"

#include <algorithm>
#include <set>
#include <array>

#include "error.hpp"
#include "model/skeleton.hpp"
#include "plan/placement_walk.hpp"

namespace devicemap {
namespace {

constexpr std::array<std::pair<std::string_view, Strategy>, 4> kStrategies{{
    {"auto", Strategy::Auto},
    {"balanced", Strategy::Balanced},
    {"balanced_low_0", Strategy::BalancedLow0},
    {"sequential", Strategy::Sequential},
}};

std::int64_t config_int(const nlohmann::json& c, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (c.contains(k) && c[k].is_number_integer()) return c[k].get<std::int64_t>();
  return 0;
}

// Bytes of K and V for one decoder layer: 2 × kv_heads × head_dim × context × batch × dtype size.
std::int64_t kv_bytes_per_layer(const Skeleton& s, const KvReserve& kv, std::optional<DType> dtype) {
  const auto& c = s.config;
  const std::int64_t heads = config_int(c, {"num_attention_heads", "n_head"});
  std::int64_t kv_heads = config_int(c, {"num_key_value_heads"});
  if (kv_heads == 0) kv_heads = heads;
  std::int64_t head_dim = config_int(c, {"head_dim"});
  const std::int64_t hidden = config_int(c, {"hidden_size", "n_embd"});
  if (head_dim == 0 && heads > 0) head_dim = hidden / heads;
  if (kv_heads <= 0 || head_dim <= 0)
    throw Error("a KV-cache reserve needs the model's config (num_attention_heads, num_key_value_heads, "
                "hidden_size or head_dim); this skeleton has none");
  DType t = DType::F16;
  if (dtype)
    t = *dtype;
  else if (c.contains("torch_dtype") && c["torch_dtype"].is_string())
    t = dtype_from_torch_name(c["torch_dtype"].get<std::string>()).value_or(DType::F16);
  return 2 * kv_heads * head_dim * static_cast<std::int64_t>(kv.context) * static_cast<std::int64_t>(kv.batch) *
         static_cast<std::int64_t>(dtype_bytes(t, 1));
}

// Tied tensors live on one device: pinning one side pins the modules that hold the other side too.
std::vector<Pin> expand_pins(const Skeleton& s, const std::vector<Pin>& pins, std::vector<std::string>& notes) {
  std::vector<Pin> out = pins;
  auto covered_by = [&](const std::string& tensor) -> const Pin* {
    for (const auto& p : out)
      if (tensor == p.name || (tensor.size() > p.name.size() && tensor.starts_with(p.name) && tensor[p.name.size()] == '.'))
        return &p;
    return nullptr;
  };
  for (const auto& group : s.tie_groups()) {
    const Pin* pin = nullptr;
    for (const auto& t : group)
      if ((pin = covered_by(t))) break;
    if (!pin) continue;
    const Pin anchor = *pin;
    for (const auto& t : group) {
      if (const Pin* other = covered_by(t)) {
        if (other->device != anchor.device)
          throw Error("pins put tied weights " + group.front() + " and " + t + " on different devices (" +
                      anchor.device.name() + " and " + other->device.name() + "); tied weights share one tensor");
        continue;
      }
      const int tensor = s.find_tensor(t);
      const std::string holder = s.modules[static_cast<std::size_t>(s.tensors[static_cast<std::size_t>(tensor)].module)].name;
      const std::string target = holder.empty() ? t : holder;
      notes.push_back(target + " follows " + anchor.name + " to " + anchor.device.name() + " (tied weight " + t + ")");
      out.push_back({target, anchor.device});
    }
  }
  return out;
}

// The largest layer of what `name` (a module or tensor) holds: itself when it is a no-split module or a
// leaf, else the largest among its own tensors and its children's layers.
std::int64_t largest_layer(const Skeleton& s, const ModuleSizes& sizes, const std::set<std::string>& no_split, const std::string& name) {
  if (const int t = s.find_tensor(name); t >= 0) return sizes.tensor[static_cast<std::size_t>(t)];
  const int root = s.find_module(name);
  if (root < 0) return 0;
  std::int64_t largest = 0;
  std::vector<int> stack{root};
  while (!stack.empty()) {
    const auto& m = s.modules[static_cast<std::size_t>(stack.back())];
    const auto id = static_cast<std::size_t>(stack.back());
    stack.pop_back();
    if (m.children.empty() || no_split.contains(m.cls)) {
      largest = std::max(largest, sizes.module[id]);
      continue;
    }
    for (const int t : m.params) largest = std::max(largest, sizes.tensor[static_cast<std::size_t>(t)]);
    for (const int t : m.buffers) largest = std::max(largest, sizes.tensor[static_cast<std::size_t>(t)]);
    stack.insert(stack.end(), m.children.begin(), m.children.end());
  }
  return largest;
}

std::string minimum_assignment_info(const std::vector<std::pair<Device, std::int64_t>>& rows) {
  std::string s = "Based on the current allocation process, no modules could be assigned to the following devices "
                  "due to insufficient memory:\n";
  for (const auto& [d, bytes] : rows) s += "  - " + d.name() + ": " + std::to_string(bytes) + " bytes required\n";
  s += "These minimum requirements are specific to this allocation attempt and may vary. Consider increasing the "
       "available memory for these devices to at least the specified minimum, or adjusting the model config.";
  return s;
}

}  // namespace

std::optional<Strategy> strategy_from_name(std::string_view name) {
  for (auto [n, s] : kStrategies)
    if (n == name) return s;
  return std::nullopt;
}

std::string_view strategy_name(Strategy s) {
  for (auto [n, v] : kStrategies)
    if (v == s) return n;
  return "?";
}

std::optional<Flavor> flavor_from_name(std::string_view name) {
  if (name == "accelerate") return Flavor::Accelerate;
  if (name == "transformers") return Flavor::Transformers;
  return std::nullopt;
}

std::string_view flavor_name(Flavor f) { return f == Flavor::Accelerate ? "accelerate" : "transformers"; }

bool Plan::fits() const {
  return std::all_of(devices.begin(), devices.end(), [](const DeviceUsage& u) { return u.shortfall() == 0; });
}

Plan plan_device_map(const Skeleton& s, const MaxMemory& max_memory, const PlanOptions& opt) {
  Plan plan;
  const ModuleSizes sizes = opt.quantization ? transformers_quantized_sizes(s, *opt.quantization, opt.dtype)
                                             : compute_module_sizes(s, opt.dtype, opt.flavor);
  const auto& no_split = opt.no_split_classes ? *opt.no_split_classes : s.no_split_module_classes;
  plan.total_bytes = sizes.total();

  MaxMemory planned = max_memory;
  if (opt.strategy != Strategy::Sequential)
    planned = balanced_memory(s, max_memory, sizes, no_split, opt.strategy == Strategy::BalancedLow0);
  if (opt.quantization) {  // the quantizer's adjust_max_memory, after balancing
    MaxMemory adjusted;
    for (const auto& [d, bytes] : planned.entries())
      adjusted.set(d, d.is_disk() ? bytes : static_cast<std::uint64_t>(double(bytes) * kBnbMaxMemoryFactor));
    planned = adjusted;
  }
  plan.planned_max_memory = planned;

  detail::WalkInput in;
  in.skeleton = &s;
  in.sizes = &sizes;
  in.no_split = no_split;
  in.offload_buffers = opt.offload_buffers;
  in.fallback_allocation = opt.fallback_allocation;
  for (const auto& [d, bytes] : planned.entries())
    if (!d.is_disk()) in.devices.emplace_back(d, static_cast<std::int64_t>(bytes));
  in.devices.emplace_back(Device::disk(), std::nullopt);  // always last, never full
  in.pins = expand_pins(s, opt.pins, plan.notes);
  if (opt.kv.enabled()) {
    in.kv_per_layer = kv_bytes_per_layer(s, opt.kv, opt.dtype);
    plan.kv_per_layer = in.kv_per_layer;
  }

  auto result = detail::walk(in);
  // The GPU that runs the offloaded layers (the first holding weights) needs room to bring in the largest
  // of them. The walk reserves that on Accelerate's main GPU only, and measures it by what is left to
  // place: a map of pins alone (a checked or imported one), or a first GPU left empty, got none.
  const std::set<std::string> classes(no_split.begin(), no_split.end());
  const auto missing_reserve = [&](const detail::WalkResult& r) -> std::pair<std::size_t, std::int64_t> {
    std::size_t exec = 0;
    while (exec < in.devices.size() && !(in.devices[exec].first.is_gpu() && r.weights[exec] > 0)) ++exec;
    if (exec == in.devices.size() || r.reserve[exec] > 0) return {exec, 0};
    std::int64_t largest = 0;
    for (const auto& [name, d] : r.assignments)
      if (!d.is_gpu()) largest = std::max(largest, largest_layer(s, sizes, classes, name));
    return {exec, largest};
  };
  // The walk also charges the KV cache of the layers it offloads to that GPU after it has left it. Either
  // can overfill it: walk again with both left out of its budget until the plan holds. Each pass only
  // moves layers off, so a few passes settle it. Only with our additions (a KV reserve, pins): a plain
  // plan stays Accelerate's map, and its fit says when that map lacks the room.
  const auto walked_budgets = in.devices;
  const bool ours = in.kv_per_layer > 0 || !opt.pins.empty();
  for (int pass = 0; pass < 8 && ours; ++pass) {
    bool again = false;
    const auto [exec, reserve] = missing_reserve(result);
    for (std::size_t i = 0; i < in.devices.size(); ++i) {
      const auto& budget = walked_budgets[i].second;
      const std::int64_t extra = result.kv_late[i] + (i == exec ? reserve : 0);
      if (!budget || extra == 0 || result.used[i] + (i == exec ? reserve : 0) <= *budget) continue;
      const std::int64_t shrunk = std::max<std::int64_t>(*budget - extra, 0);
      if (shrunk < *in.devices[i].second) {  // not yet tried: an overflow of pins stays as it is
        in.devices[i].second = shrunk;
        again = true;
      }
    }
    if (!again) break;
    result = detail::walk(in);
  }
  if (const auto [exec, reserve] = missing_reserve(result); reserve > 0) result.reserve[exec] = reserve;
  // No weight may be lost or counted twice: the walk places the model's total, each tied group once.
  std::int64_t placed = 0;
  for (const auto w : result.weights) placed += w;
  if (placed != plan.total_bytes)
    throw Error("internal error: the plan places " + std::to_string(placed) + " bytes of a model of " + std::to_string(plan.total_bytes) +
                " (a tie or a split lost or doubled some); please report this skeleton");

  std::vector<DeviceMap::Entry> raw(result.assignments.begin(), result.assignments.end());
  plan.raw_map = DeviceMap(std::move(raw));
  plan.device_map = plan.raw_map.cleaned();

  bool offloaded_to_cpu_or_disk = false, offloaded_to_disk = false;
  for (const auto& [_, d] : result.assignments) {
    offloaded_to_cpu_or_disk = offloaded_to_cpu_or_disk || !d.is_gpu();
    offloaded_to_disk = offloaded_to_disk || d.is_disk();
  }
  const bool has_gpu = !planned.gpus().empty();
  // A map without a GPU entry runs on the CPU (transformers loads it there, with no hooks), however many
  // GPUs have a budget: its KV cache lives in CPU RAM and no GPU needs room to bring layers in. The walk
  // charged the KV of offloaded layers to the main GPU before it knew that.
  const bool runs_on_gpu =
      std::any_of(result.assignments.begin(), result.assignments.end(), [](const auto& a) { return a.second.is_gpu(); });
  if (has_gpu && !runs_on_gpu) {
    const auto cpu = std::find_if(in.devices.begin(), in.devices.end(), [](const auto& d) { return d.first.is_cpu(); });
    if (cpu != in.devices.end())
      for (std::size_t i = 0; i < in.devices.size(); ++i)
        if (in.devices[i].first.is_gpu()) {
          result.kv[static_cast<std::size_t>(cpu - in.devices.begin())] += result.kv[i];
          result.kv[i] = 0;
        }
  }
  std::optional<ModuleSizes> real;
  if (opt.quantization) {
    real = real_quantized_sizes(s, *opt.quantization, opt.dtype);
    plan.real_total_bytes = real->total();
  }
  for (std::size_t i = 0; i < in.devices.size(); ++i) {
    DeviceUsage u;
    u.device = in.devices[i].first;
    if (auto b = max_memory.get(u.device); b && !u.device.is_disk()) u.budget = static_cast<std::int64_t>(*b);
    u.planned = walked_budgets[i].second;
    u.weights = result.weights[i];
    u.kv_cache = result.kv[i];
    // The reserve for bringing an offloaded layer in only matters when something is offloaded.
    const bool needs_reserve = (u.device.is_gpu() && runs_on_gpu && offloaded_to_cpu_or_disk) ||
                               (u.device.is_cpu() && (runs_on_gpu ? offloaded_to_cpu_or_disk : offloaded_to_disk));
    if (needs_reserve) u.offload_reserve = result.reserve[i];
    for (const auto& [name, d] : result.assignments)
      if (d == u.device) u.modules.push_back(name);
    if (real) {
      std::int64_t bytes = 0;
      for (const auto& name : u.modules) {
        if (const int m = s.find_module(name); m >= 0) bytes += real->module[static_cast<std::size_t>(m)];
        else if (const int t = s.find_tensor(name); t >= 0) bytes += real->tensor[static_cast<std::size_t>(t)];
      }
      u.real_weights = bytes;
    }
    plan.devices.push_back(std::move(u));
  }

  // Accelerate's warning about buffers of offloaded modules that fit no GPU.
  std::int64_t off_gpu_buffers = 0;
  for (std::size_t i = 0; i < in.devices.size(); ++i)
    if (!in.devices[i].first.is_gpu()) off_gpu_buffers += result.buffers[i];
  if (off_gpu_buffers > 0 && !opt.offload_buffers && has_gpu) {
    bool fits_a_gpu = false;
    for (std::size_t i = 0; i < in.devices.size(); ++i)
      if (in.devices[i].first.is_gpu() && *in.devices[i].second >= off_gpu_buffers + result.used[i]) fits_a_gpu = true;
    if (!fits_a_gpu)
      plan.warnings.push_back("Current model requires " + std::to_string(off_gpu_buffers) +
                              " bytes of buffer for offloaded layers, which seems does not fit any GPU's remaining "
                              "memory. If you are experiencing a OOM later, please consider using offload_buffers=True.");
  }
  if (!result.minimum_assignment.empty()) plan.info.push_back(minimum_assignment_info(result.minimum_assignment));
  return plan;
}

}  // namespace devicemap
