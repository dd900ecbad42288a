// libFuzzer target for what people hand the planner: a skeleton JSON, a device map and a hardware
// profile, split from one input at the first two NUL bytes. Whatever they hold, reading them, planning,
// validating the map and predicting its speed either work or throw devicemap::Error; a prediction that
// claims to be known is a positive, finite speed.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "model/skeleton.hpp"
#include "plan/device_map.hpp"
#include "plan/machine.hpp"
#include "plan/planner.hpp"
#include "plan/speed_model.hpp"

namespace {

nlohmann::json parse(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json() : j;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const auto a = all.find('\0');
  const auto b = a == std::string_view::npos ? a : all.find('\0', a + 1);
  if (b == std::string_view::npos) return 0;
  const auto skeleton_json = parse(all.substr(0, a));
  const auto map_json = parse(all.substr(a + 1, b - a - 1));
  const auto profile_json = parse(all.substr(b + 1));
  using namespace devicemap;
  try {
    const Skeleton s = Skeleton::from_json(skeleton_json, "skeleton");
    const Machine m = machine_from_profile(profile_json, "profile");
    const Plan plan = plan_device_map(s, default_max_memory(m), {});
    const DeviceMap map = map_json.is_object() ? DeviceMap::from_json(map_json, "map") : plan.device_map;
    (void)validate(map, s);
    const SpeedPrediction p = predict_decode_speed(s, map, m, {});
    if (p.known && !(p.tokens_per_second > 0 && std::isfinite(p.tokens_per_second))) __builtin_trap();
    (void)p.summary();
  } catch (const Error&) {
  }
  return 0;
}
