#include "plan/device.hpp"

#include <charconv>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace devicemap {

std::string Device::name() const {
  switch (kind) {
    case Kind::Gpu: return std::to_string(index);
    case Kind::Cpu: return "cpu";
    case Kind::Disk: return "disk";
  }
  return "?";
}

std::optional<Device> Device::parse(std::string_view text) {
  if (text == "cpu") return cpu();
  if (text == "disk") return disk();
  if (text == "mps" || text == "cuda") return gpu(0);
  if (text.starts_with("cuda:")) text.remove_prefix(5);
  int i = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
  if (ec == std::errc() && ptr == text.data() + text.size() && i >= 0 && !text.empty()) return gpu(i);
  return std::nullopt;
}

nlohmann::json to_json_value(const Device& d) {
  if (d.is_gpu()) return d.index;
  return d.name();
}

Device device_from_json(const nlohmann::json& v, std::string_view context) {
  if (v.is_number_integer() && v.get<long long>() >= 0 && v.get<long long>() < 1 << 20)
    return Device::gpu(static_cast<int>(v.get<long long>()));
  if (v.is_string())
    if (auto d = Device::parse(v.get<std::string>())) return *d;
  throw Error(std::string(context) + ": " + v.dump() +
              " is not a device (use a GPU index such as 0, \"cuda:1\", \"cpu\" or \"disk\")");
}

}  // namespace devicemap
