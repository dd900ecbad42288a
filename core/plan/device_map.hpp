#pragma once
// device_map.json: module or tensor name → device. A tensor takes the device of the longest key that
// equals its name or is a prefix of it followed by "."; "" covers everything.
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "plan/device.hpp"

namespace devicemap {

class Skeleton;

class DeviceMap {
 public:
  using Entry = std::pair<std::string, Device>;

  DeviceMap() = default;
  explicit DeviceMap(std::vector<Entry> entries) : entries_(std::move(entries)) {}

  const std::vector<Entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  // Sets (or replaces) one key, keeping first-insertion order.
  void set(std::string_view name, Device d);

  // The device of a tensor or module name by the longest-prefix rule; nullopt when nothing covers it.
  // Builds an index per call: for many names, use DeviceMapIndex.
  std::optional<Device> device_of(std::string_view tensor_name) const;

  // Accelerate's clean_device_map: any prefix whose entries all share one device collapses to it.
  DeviceMap cleaned() const;

  // The devices used, in Accelerate's order.
  std::vector<Device> devices() const;

  // JSON exactly as transformers/accelerate take it: {"name": 0, "other": "cpu", …}.
  nlohmann::ordered_json to_json() const;
  static DeviceMap from_json(const nlohmann::json& j, std::string_view source);
  static DeviceMap load(const std::filesystem::path& path);
  void save(const std::filesystem::path& path) const;  // atomic write, 2-space indent, final newline

  bool operator==(const DeviceMap& other) const;  // as unordered dicts

 private:
  std::vector<Entry> entries_;
};

// Longest-prefix lookups over one map, its keys indexed once. The map must outlive the index.
class DeviceMapIndex {
 public:
  explicit DeviceMapIndex(const DeviceMap& map);
  std::optional<Device> device_of(std::string_view name) const;

 private:
  std::unordered_map<std::string_view, Device> keys_;
};

// What is wrong with a map for a skeleton: tensors no key covers, keys naming nothing in the model,
// tied tensors split across devices. Empty when the map is valid.
struct MapProblems {
  std::vector<std::string> uncovered;     // tensor names
  std::vector<std::string> unknown_keys;  // keys that are neither a module nor a tensor
  std::vector<std::string> split_ties;    // "a (0) / b (cpu)"
  bool ok() const { return uncovered.empty() && unknown_keys.empty() && split_ties.empty(); }
  std::string message() const;  // one paragraph for people
};
MapProblems validate(const DeviceMap& map, const Skeleton& skeleton);

}  // namespace devicemap
