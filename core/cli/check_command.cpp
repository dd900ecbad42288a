// devicemap check MODEL device_map.json [planning flags] [--format table|json]: will a map made elsewhere
// (by transformers, a colleague, by hand) load and fit here, how fast would it decode, and how does it
// differ from the map `auto` makes on the same budgets. Exit 0: it fits; 1: an error (bad input, or a
// map transformers would not load); 3: it does not fit.
#include <algorithm>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/plan_flags.hpp"
#include "error.hpp"
#include "model/name_ranges.hpp"
#include "model/skeleton.hpp"
#include "plan/bandwidth.hpp"
#include "plan/map_pins.hpp"
#include "plan/speed_model.hpp"
#include "plan/units.hpp"

namespace devicemap::cli {
namespace {

const char* const kUsage =
    "usage: devicemap check MODEL_DIR|SKELETON.json|catalog:NAME device_map.json [options]\n"
    "Checks a device map against a model and a machine: coverage as Accelerate's check_device_map and\n"
    "transformers see it, bytes per device against the budgets, the predicted decode speed, and what the\n"
    "plan `auto` makes on the same budgets would move. Exit status 0 when the map fits, 1 on an error (a\n"
    "map transformers would not load included), 3 when it does not fit.\n\n";

struct Coverage {
  MapProblems problems;
  std::vector<Device> unknown_devices;  // used by the map, absent from the machine
  bool loads() const { return problems.uncovered.empty() && problems.split_ties.empty(); }
};

Coverage check_coverage(const DeviceMap& map, const Skeleton& s, const MaxMemory& budgets) {
  Coverage c;
  c.problems = validate(map, s);
  // As check_device_map (over state_dict()): non-persistent buffers are recreated and follow their module.
  std::erase_if(c.problems.uncovered, [&](const std::string& name) {
    const int t = s.find_tensor(name);
    return t >= 0 && s.tensors[static_cast<std::size_t>(t)].buffer && !s.tensors[static_cast<std::size_t>(t)].persistent;
  });
  for (const auto& d : map.devices())
    if (!d.is_disk() && !budgets.has(d)) c.unknown_devices.push_back(d);
  return c;
}

struct Move {
  std::string key;   // a module (or tensor) as the auto plan places it
  std::string here;  // the device(s) the checked map gives it: "cpu", or "0+cpu" when split
  std::string autos;
};

// Where the checked map and the auto plan disagree, per unit: the finer of the two plans' placed keys
// that covers a tensor (units that agree are left out), in the model's order.
std::vector<Move> moves(const Skeleton& s, const Plan& mine, const Plan& autos) {
  std::unordered_map<std::string, int> keys;  // placed key → 1 (mine), 2 (auto), 3 (both)
  for (const auto& [k, _] : mine.raw_map.entries()) keys[k] |= 1;
  for (const auto& [k, _] : autos.raw_map.entries()) keys[k] |= 2;
  const DeviceMapIndex here(mine.raw_map), there(autos.raw_map);
  std::vector<std::string> order;
  std::unordered_map<std::string, std::pair<std::set<std::string>, std::set<std::string>>> seen;
  for (const auto& t : s.tensors) {
    // The longest placed key that equals the name or is a dotted prefix of it.
    std::string_view probe = t.name;
    while (!keys.contains(std::string(probe)) && !probe.empty()) {
      const auto dot = probe.rfind('.');
      probe = dot == std::string_view::npos ? std::string_view{} : probe.substr(0, dot);
    }
    const auto d = here.device_of(t.name), a = there.device_of(t.name);
    if (!d || !a) continue;
    auto [it, fresh] = seen.try_emplace(std::string(probe));
    if (fresh) order.push_back(it->first);
    it->second.first.insert(d->name());
    it->second.second.insert(a->name());
  }
  auto joined = [](const std::set<std::string>& ds) {
    std::string out;
    for (const auto& d : ds) out += (out.empty() ? "" : "+") + d;
    return out;
  };
  std::vector<Move> out;
  for (const auto& unit : order) {
    const auto& [h, a] = seen[unit];
    if (h != a) out.push_back({unit.empty() ? std::string("(the whole model)") : unit, joined(h), joined(a)});
  }
  return out;
}

// Runs of moves that go the same way, as "model.layers.20-39".
std::vector<Move> grouped(const std::vector<Move>& ms) {
  std::vector<Move> out;
  for (std::size_t i = 0; i < ms.size();) {
    std::size_t j = i;
    std::vector<std::string> names;
    while (j < ms.size() && ms[j].here == ms[i].here && ms[j].autos == ms[i].autos) names.push_back(ms[j++].key);
    for (const auto& r : compress_name_ranges(names)) out.push_back({r, ms[i].here, ms[i].autos});
    i = j;
  }
  return out;
}

nlohmann::ordered_json speed_json(const SpeedPrediction& p) {
  nlohmann::ordered_json j;
  j["known"] = p.known;
  j["tokens_per_second"] = p.known ? nlohmann::ordered_json(p.tokens_per_second) : nlohmann::ordered_json();
  j["tokens_per_second_without_prefetch"] =
      p.known ? nlohmann::ordered_json(p.tokens_per_second_without_prefetch) : nlohmann::ordered_json();
  j["bottleneck"] = p.bottleneck;
  j["missing"] = p.missing;
  j["summary"] = p.summary();
  return j;
}

std::string size_text(std::int64_t b) { return format_size(static_cast<std::uint64_t>(std::max<std::int64_t>(b, 0))); }

void print_list(std::ostream& os, const std::string& title, const std::vector<std::string>& names, const std::string& why) {
  if (names.empty()) return;
  os << "          " << title << " (" << names.size() << "): ";
  const auto ranges = compress_name_ranges(names);
  for (std::size_t i = 0; i < ranges.size() && i < 8; ++i) os << (i ? ", " : "") << ranges[i];
  if (ranges.size() > 8) os << ", … (" << ranges.size() - 8 << " more)";
  os << "\n          " << why << "\n";
}

}  // namespace

int check_command(Invocation& inv) {
  auto options = planning_options();
  options.insert("format");
  auto flags = planning_flags();
  flags.insert("help");
  const Args args(inv.args, options, flags);
  if (args.flag("help")) {
    inv.out << kUsage << kPlanningHelp << "  --format table|json                      json: every figure, for scripts\n";
    return 0;
  }
  if (args.positionals().size() != 2) throw Error("check takes a model and a device_map.json; see --help");
  const std::string format = args.get("format").value_or("table");
  if (format != "table" && format != "json") throw Error("--format: '" + format + "' is not table or json");
  const ModelSource model = open_model(args.positionals()[0]);
  const std::string map_path = args.positionals()[1];
  const DeviceMap map = DeviceMap::load(map_path);
  const Skeleton& s = model.skeleton;
  PlanningRequest req = read_planning_flags(args, s);
  if (!req.options.pins.empty()) throw Error("check: --pin does not apply (the map places every module)");
  if (!req.machine.simulated) measure_bandwidths(req.machine, largest_weight_file(model.checkpoint));

  const Coverage coverage = check_coverage(map, s, req.max_memory);
  // A GPU the machine lacks has no room: the modules the map sends there are its shortfall.
  MaxMemory budgets = req.max_memory;
  for (const auto& d : coverage.unknown_devices) budgets.set(d, 0);
  const SpeedInputs speed_in{req.options.dtype, req.options.flavor, 0, args.get("offload-folder").has_value(),
                             req.options.quantization};
  const Plan autos = plan_device_map(s, req.max_memory, req.options);
  SpeedInputs auto_in = speed_in;
  auto_in.kv_bytes_per_layer = autos.kv_per_layer;
  const SpeedPrediction auto_speed = predict_decode_speed(s, autos.device_map, req.machine, auto_in);

  std::optional<Plan> mine;
  std::optional<SpeedPrediction> speed;
  std::vector<Move> moved;
  if (coverage.loads()) {
    PlanOptions o = req.options;
    o.pins = pins_for_map(map, s);
    mine = plan_device_map(s, budgets, o);
    SpeedInputs in = speed_in;
    in.kv_bytes_per_layer = mine->kv_per_layer;
    speed = predict_decode_speed(s, map, req.machine, in);
    moved = grouped(moves(s, *mine, autos));
  }
  const bool fits = mine && mine->fits();
  const int status = !coverage.loads() ? 1 : fits ? 0 : 3;

  if (format == "json") {
    nlohmann::ordered_json j;
    j["model"] = model.description;
    j["map"] = map_path;
    j["machine"] = req.machine.name;
    const auto& p = coverage.problems;
    std::vector<std::string> unknown_devices;
    for (const auto& d : coverage.unknown_devices) unknown_devices.push_back(d.name());
    j["coverage"] = {{"loads", coverage.loads()},         {"uncovered", p.uncovered},
                     {"unknown_keys", p.unknown_keys},
                     {"split_ties", p.split_ties},         {"unknown_devices", unknown_devices}};
    nlohmann::ordered_json devices = nlohmann::ordered_json::array();
    if (mine)
      for (const auto& u : mine->devices) {
        if (u.modules.empty() && u.device.is_disk()) continue;
        devices.push_back({{"device", u.device.name()},
                           {"budget", u.budget ? nlohmann::ordered_json(*u.budget) : nlohmann::ordered_json()},
                           {"weights", u.real_weights.value_or(u.weights)},
                           {"kv_cache", u.kv_cache},
                           {"reserve", u.offload_reserve},
                           {"needed", u.needed()},
                           {"shortfall", u.shortfall()},
                           {"modules", compress_name_ranges(u.modules)}});
      }
    j["devices"] = std::move(devices);
    j["fits"] = fits;
    j["speed"] = speed ? speed_json(*speed) : nlohmann::ordered_json();
    nlohmann::ordered_json m = nlohmann::ordered_json::array();
    for (const auto& mv : moved) m.push_back({{"modules", mv.key}, {"map", mv.here}, {"auto", mv.autos}});
    j["auto"] = {{"fits", autos.fits()}, {"speed", speed_json(auto_speed)}, {"moved", std::move(m)}};
    inv.out << j.dump(2) << "\n";
    return status;
  }

  std::ostream& os = inv.out;
  os << "model     " << model.description << "\n";
  os << "machine   " << req.machine.name << (req.machine.simulated ? " (simulated)" : "") << bandwidth_text(req.machine) << "\n";
  os << "map       " << map_path << ": " << map.entries().size() << " keys\n\n";
  const auto& p = coverage.problems;
  if (p.uncovered.empty() && p.split_ties.empty() && p.unknown_keys.empty())
    os << "coverage  every tensor has a device\n";
  else
    os << "coverage\n";
  print_list(os, "tensors with no device", p.uncovered,
             "transformers refuses such a map (\"The device_map provided does not give any device for the following parameters\")");
  print_list(os, "tied weights split across devices", p.split_ties,
             "tied weights share one tensor: put every name of a tie on one device");
  print_list(os, "keys that name nothing in this model", p.unknown_keys,
             "transformers ignores them (a map made for another model?); keys for modules without weights, such as\n"
             "          act_fn or rotary_emb, are modules of the model and need no entry here");
  for (const auto& d : coverage.unknown_devices)
    os << "          device " << d.name() << " is not on " << req.machine.name << ": it has no room\n";
  if (!mine) {
    os << "\nThe map does not load as it is; fix the coverage above.\n";
    return status;
  }
  os << "\n" << std::left << std::setw(7) << "device" << std::right << std::setw(12) << "budget" << std::setw(12) << "weights"
     << std::setw(12) << "kv cache" << std::setw(12) << "reserve" << std::setw(12) << "shortfall" << "  modules\n";
  for (const auto& u : mine->devices) {
    if (u.modules.empty() && u.device.is_disk()) continue;
    os << std::left << std::setw(7) << u.device.name() << std::right << std::setw(12)
       << (u.budget ? size_text(*u.budget) : std::string("unlimited")) << std::setw(12) << size_text(u.real_weights.value_or(u.weights))
       << std::setw(12) << size_text(u.kv_cache) << std::setw(12) << size_text(u.offload_reserve) << std::setw(12)
       << (u.shortfall() ? size_text(u.shortfall()) : std::string("-")) << "  ";
    const auto ranges = compress_name_ranges(u.modules);
    for (std::size_t i = 0; i < ranges.size(); ++i) os << (i ? ", " : "") << ranges[i];
    if (ranges.empty()) os << "-";
    os << "\n";
  }
  os << "\n" << (fits ? "fits" : "does NOT fit: a device needs more than its budget (shortfall above)") << "\n";
  os << "decode    " << speed->summary() << "  (predicted, batch 1)\n";
  for (const auto& a : speed->assumptions) os << "          assuming " << a << "\n";
  os << "\nauto      the plan `devicemap plan` makes on the same budgets " << (autos.fits() ? "fits" : "does NOT fit") << ": "
     << auto_speed.summary() << "\n";
  if (moved.empty()) os << "          it places every module as this map does\n";
  for (const auto& mv : moved) os << "          " << mv.key << ": " << mv.here << " here, " << mv.autos << " in auto\n";
  return status;
}

}  // namespace devicemap::cli
