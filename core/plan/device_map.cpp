#include "plan/device_map.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "format/atomic_file.hpp"
#include "model/skeleton.hpp"

namespace devicemap {
namespace {

bool under(std::string_view key, std::string_view prefix_dot) { return key.starts_with(prefix_dot); }

// Accelerate's clean_device_map, recursively from `module`.
void clean(std::vector<DeviceMap::Entry>& entries, const std::string& module) {
  const std::string prefix = module.empty() ? "" : module + ".";
  std::optional<Device> first;
  bool same = true;
  std::size_t count = 0, first_pos = entries.size();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (!under(entries[i].first, prefix)) continue;
    if (!first) {
      first = entries[i].second;
      first_pos = i;
    } else if (entries[i].second != *first) {
      same = false;
    }
    ++count;
  }
  if (same && count > 1) {
    std::vector<DeviceMap::Entry> kept;
    kept.reserve(entries.size() - count + 1);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (i == first_pos) kept.emplace_back(module, *first);
      if (!under(entries[i].first, prefix)) kept.push_back(std::move(entries[i]));
    }
    entries = std::move(kept);
  }
  // Children one level down that still have keys under them.
  std::vector<std::string> children;
  std::set<std::string> seen;
  const std::size_t depth = module.empty() ? 1 : static_cast<std::size_t>(std::count(module.begin(), module.end(), '.')) + 2;
  for (const auto& [key, _] : entries) {
    if (!under(key, prefix) || key.size() <= module.size()) continue;
    std::size_t pos = std::string::npos, from = 0;
    for (std::size_t k = 0; k < depth; ++k) {
      pos = key.find('.', from);
      if (pos == std::string::npos) break;
      from = pos + 1;
    }
    std::string child = pos == std::string::npos ? key : key.substr(0, pos);
    if (seen.insert(child).second) children.push_back(std::move(child));
  }
  for (const auto& c : children) clean(entries, c);
}

}  // namespace

void DeviceMap::set(std::string_view name, Device d) {
  for (auto& [k, v] : entries_)
    if (k == name) {
      v = d;
      return;
    }
  entries_.emplace_back(std::string(name), d);
}

std::optional<Device> DeviceMap::device_of(std::string_view name) const { return DeviceMapIndex(*this).device_of(name); }

DeviceMapIndex::DeviceMapIndex(const DeviceMap& map) {
  for (const auto& [k, v] : map.entries()) keys_.emplace(k, v);
}

std::optional<Device> DeviceMapIndex::device_of(std::string_view name) const {
  // Most specific key wins: the name itself, then each dotted prefix, then "".
  std::string_view probe = name;
  for (;;) {
    if (auto it = keys_.find(probe); it != keys_.end()) return it->second;
    if (probe.empty()) return std::nullopt;
    const auto dot = probe.rfind('.');
    probe = dot == std::string_view::npos ? std::string_view{} : probe.substr(0, dot);
  }
}

DeviceMap DeviceMap::cleaned() const {
  auto entries = entries_;
  clean(entries, "");
  return DeviceMap(std::move(entries));
}

std::vector<Device> DeviceMap::devices() const {
  std::set<Device> s;
  for (const auto& [_, d] : entries_) s.insert(d);
  return {s.begin(), s.end()};
}

nlohmann::ordered_json DeviceMap::to_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, d] : entries_) j[k] = to_json_value(d);
  return j;
}

DeviceMap DeviceMap::from_json(const nlohmann::json& j, std::string_view source) {
  if (!j.is_object())
    throw Error(std::string(source) + ": a device map must be a JSON object {\"module\": device, …}");
  DeviceMap map;
  for (const auto& [k, v] : j.items()) map.entries_.emplace_back(k, device_from_json(v, std::string(source) + ": \"" + k + "\""));
  return map;
}

DeviceMap DeviceMap::load(const std::filesystem::path& path) {
  return from_json(read_json_file(path), path.string());
}

void DeviceMap::save(const std::filesystem::path& path) const { write_file_atomically(path, to_json().dump(2) + "\n"); }

bool DeviceMap::operator==(const DeviceMap& other) const {
  if (entries_.size() != other.entries_.size()) return false;
  std::unordered_map<std::string_view, Device> a;
  for (const auto& [k, v] : entries_) a.emplace(k, v);
  for (const auto& [k, v] : other.entries_) {
    auto it = a.find(k);
    if (it == a.end() || it->second != v) return false;
  }
  return true;
}

std::string MapProblems::message() const {
  std::string s;
  auto list = [&](const char* what, const std::vector<std::string>& items) {
    if (items.empty()) return;
    if (!s.empty()) s += "; ";
    s += what;
    for (std::size_t i = 0; i < items.size() && i < 8; ++i) s += (i ? ", " : " ") + items[i];
    if (items.size() > 8) s += ", … (" + std::to_string(items.size()) + " in all)";
  };
  list("no device for", uncovered);
  list("not in the model:", unknown_keys);
  list("tied weights on different devices:", split_ties);
  return s;
}

MapProblems validate(const DeviceMap& given, const Skeleton& s) {
  MapProblems p;
  const DeviceMapIndex map(given);
  // As Accelerate's check_device_map: what state_dict() holds must be covered; non-persistent buffers
  // are recreated by the model and follow their module.
  for (const auto& t : s.tensors)
    if ((!t.buffer || t.persistent) && !map.device_of(t.name)) p.uncovered.push_back(t.name);
  for (const auto& [k, _] : given.entries())
    if (!k.empty() && s.find_module(k) < 0 && s.find_tensor(k) < 0) p.unknown_keys.push_back(k);
  for (const auto& group : s.tie_groups()) {
    std::optional<Device> first;
    for (const auto& t : group) {
      auto d = map.device_of(t);
      if (!d) continue;
      if (!first) first = d;
      else if (*d != *first) {
        p.split_ties.push_back(group.front() + " (" + first->name() + ") / " + t + " (" + d->name() + ")");
        break;
      }
    }
  }
  return p;
}

}  // namespace devicemap
