#include "plan/budget.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "plan/units.hpp"

namespace devicemap {
namespace {

Device parse_key(std::string_view key, std::string_view context) {
  if (auto d = Device::parse(key); d && key != "cuda" && !key.starts_with("cuda:") && key != "mps") return *d;
  throw Error(std::string(context) + ": device '" + std::string(key) +
              "' is not recognized; max_memory keys are GPU indices (0, 1, …), 'cpu' and 'disk'");
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

void MaxMemory::set(Device d, std::uint64_t bytes) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), d,
                             [](const auto& e, const Device& x) { return e.first < x; });
  if (it != entries_.end() && it->first == d)
    it->second = bytes;
  else
    entries_.insert(it, {d, bytes});
}

std::optional<std::uint64_t> MaxMemory::get(Device d) const {
  for (const auto& [dev, bytes] : entries_)
    if (dev == d) return bytes;
  return std::nullopt;
}

void MaxMemory::erase(Device d) {
  std::erase_if(entries_, [&](const auto& e) { return e.first == d; });
}

std::vector<Device> MaxMemory::gpus() const {
  std::vector<Device> out;
  for (const auto& [d, _] : entries_)
    if (d.is_gpu()) out.push_back(d);
  return out;
}

MaxMemory MaxMemory::parse(std::string_view text) {
  MaxMemory mm;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const auto part = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    start = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    if (trim(part).empty()) continue;
    const auto eq = part.find('=');
    if (eq == std::string_view::npos)
      throw Error("--max-memory: '" + std::string(part) + "' must be DEVICE=SIZE, e.g. 0=20GiB or cpu=64GiB");
    const Device d = parse_key(trim(part.substr(0, eq)), "--max-memory");
    if (mm.has(d)) throw Error("--max-memory: device " + d.name() + " is given twice");
    mm.set(d, parse_size(trim(part.substr(eq + 1))));
  }
  if (mm.entries_.empty()) throw Error("--max-memory: no device given (e.g. 0=20GiB,cpu=64GiB)");
  return mm;
}

MaxMemory MaxMemory::from_json(const nlohmann::json& j, std::string_view source) {
  if (!j.is_object()) throw Error(std::string(source) + ": max_memory must be an object {device: size}");
  MaxMemory mm;
  for (const auto& [key, value] : j.items()) {
    const Device d = parse_key(key, source);
    std::uint64_t bytes = 0;
    if (value.is_number_unsigned() || (value.is_number_integer() && value.get<long long>() >= 0))
      bytes = value.get<std::uint64_t>();
    else if (value.is_number_float() && value.get<double>() >= 0)
      bytes = static_cast<std::uint64_t>(value.get<double>());
    else if (value.is_string())
      bytes = parse_size(value.get<std::string>());
    else
      throw Error(std::string(source) + ": max_memory[\"" + key + "\"] = " + value.dump() + " is not a size");
    mm.set(d, bytes);
  }
  return mm;
}

nlohmann::ordered_json MaxMemory::to_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [d, bytes] : entries_) j[d.name()] = bytes;
  return j;
}

std::string MaxMemory::to_string() const {
  std::string s;
  for (const auto& [d, bytes] : entries_) {
    if (!s.empty()) s += ',';
    s += d.name() + "=" + format_size_exact(bytes);
  }
  return s;
}

}  // namespace devicemap
