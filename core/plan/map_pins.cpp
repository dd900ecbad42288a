#include "plan/map_pins.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "model/skeleton.hpp"

namespace devicemap {
namespace {

bool has_tensors(const Skeleton& s, int m) {
  const auto& mod = s.modules[static_cast<std::size_t>(m)];
  if (!mod.params.empty() || !mod.buffers.empty()) return true;
  return std::any_of(mod.children.begin(), mod.children.end(), [&](int c) { return has_tensors(s, c); });
}

}  // namespace

std::vector<Pin> pins_for_map(const DeviceMap& map, const Skeleton& s) {
  std::unordered_map<std::string, Device> keys(map.entries().begin(), map.entries().end());
  std::unordered_set<std::string> above{""};  // proper prefixes of keys; the root is never pinned whole
  for (const auto& [k, _] : map.entries())
    for (auto dot = k.find('.'); dot != std::string::npos; dot = k.find('.', dot + 1)) above.insert(k.substr(0, dot));
  std::vector<Pin> pins;
  if (s.modules.empty()) return pins;
  auto device_here = [&](const std::string& name, std::optional<Device> inherited) {
    const auto it = keys.find(name);
    return it != keys.end() ? std::optional<Device>(it->second) : inherited;
  };
  auto visit = [&](auto&& self, int m, std::optional<Device> inherited) -> void {
    const auto& mod = s.modules[static_cast<std::size_t>(m)];
    const auto here = device_here(mod.name, inherited);
    if (!above.contains(mod.name)) {
      if (here && has_tensors(s, m)) pins.push_back({mod.name, *here});
      return;
    }
    auto tensor = [&](int t) {
      const auto& name = s.tensors[static_cast<std::size_t>(t)].name;
      if (const auto d = device_here(name, here)) pins.push_back({name, *d});
    };
    std::for_each(mod.params.begin(), mod.params.end(), tensor);
    for (int c : mod.children) self(self, c, here);
    std::for_each(mod.buffers.begin(), mod.buffers.end(), tensor);
  };
  visit(visit, 0, std::nullopt);
  return pins;
}

}  // namespace devicemap
