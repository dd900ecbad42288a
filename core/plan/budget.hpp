#pragma once
// max_memory: how many bytes each device may hold, in Accelerate's order (GPUs ascending, "cpu", "disk").
// Parsed from "0=20GiB,1=20GiB,cpu=64GiB" or from a JSON object {"0": "20GiB", "cpu": 68719476736}.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "plan/device.hpp"

namespace devicemap {

class MaxMemory {
 public:
  MaxMemory() = default;

  // Sets one device's budget, keeping the entries in Accelerate's order.
  void set(Device d, std::uint64_t bytes);
  std::optional<std::uint64_t> get(Device d) const;
  bool has(Device d) const { return get(d).has_value(); }
  void erase(Device d);

  const std::vector<std::pair<Device, std::uint64_t>>& entries() const { return entries_; }
  std::vector<Device> gpus() const;

  // "0=20GiB,1=20GiB,cpu=64GiB" (plain digits are bytes). Throws devicemap::Error quoting the bad part.
  static MaxMemory parse(std::string_view text);
  // {"0": "20GiB", "cpu": 1234}: keys GPU indices, "cpu", "disk"; values bytes or size strings.
  static MaxMemory from_json(const nlohmann::json& j, std::string_view source);
  nlohmann::ordered_json to_json() const;  // sizes as byte counts
  std::string to_string() const;           // "0=20GiB,cpu=64GiB"

 private:
  std::vector<std::pair<Device, std::uint64_t>> entries_;
};

}  // namespace devicemap
