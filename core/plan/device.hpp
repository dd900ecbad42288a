#pragma once
// A placement target as device_map.json names it: a GPU index (0, 1, …), "cpu" or "disk".
#include <compare>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace devicemap {

struct Device {
  enum class Kind : unsigned char { Gpu, Cpu, Disk };
  Kind kind = Kind::Cpu;
  int index = 0;  // GPU index; 0 otherwise

  static Device gpu(int i) { return {Kind::Gpu, i}; }
  static Device cpu() { return {Kind::Cpu, 0}; }
  static Device disk() { return {Kind::Disk, 0}; }

  bool is_gpu() const { return kind == Kind::Gpu; }
  bool is_cpu() const { return kind == Kind::Cpu; }
  bool is_disk() const { return kind == Kind::Disk; }

  // Accelerate's order: GPUs ascending, then "cpu", then "disk".
  auto operator<=>(const Device&) const = default;

  std::string name() const;  // "0", "cpu", "disk"
  // "0", "cuda:1", "cpu", "disk", "mps" (mps is taken as GPU 0); nullopt for anything else.
  static std::optional<Device> parse(std::string_view text);
};

// JSON value as device_map.json writes it: an integer for a GPU, a string otherwise.
nlohmann::json to_json_value(const Device& d);
// Accepts 0, "0", "cuda:0", "cpu", "disk", "mps"; throws devicemap::Error quoting anything else.
Device device_from_json(const nlohmann::json& v, std::string_view context);

}  // namespace devicemap
