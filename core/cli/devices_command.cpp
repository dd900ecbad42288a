// devicemap devices [--profile FILE|NAME] [--offload-folder DIR] [--format table|json]
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/args.hpp"
#include "plan/error.hpp"
#include "plan/machine.hpp"
#include "plan/units.hpp"

namespace devicemap::cli {

int devices_command(Invocation& inv) {
  const Args args(inv.args, {"profile", "offload-folder", "format"}, {"help"});
  if (args.flag("help")) {
    inv.out << "usage: devicemap devices [--profile FILE|NAME] [--offload-folder DIR] [--format table|json]\n"
               "Lists the GPUs (through NVML), CPU RAM and disk free at the offload folder, or a hardware profile.\n"
               "Bundled profiles:";
    for (const auto& p : bundled_profiles()) inv.out << " " << p.stem().string();
    inv.out << "\n";
    return 0;
  }
  Machine m;
  if (auto p = args.get("profile")) {
    std::filesystem::path path = *p;
    if (!std::filesystem::exists(path) && path.extension().empty()) path = resources_dir() / "profiles" / (*p + ".json");
    m = load_profile(path);
  } else {
    m = detect_machine(args.get("offload-folder").value_or("."));
  }
  const std::string format = args.get("format").value_or("table");
  if (format == "json") {
    nlohmann::ordered_json j;
    j["machine"] = m.name;
    j["simulated"] = m.simulated;
    j["devices"] = nlohmann::ordered_json::array();
    for (const auto& d : m.devices)
      j["devices"].push_back({{"device", d.device.name()}, {"name", d.name}, {"total", d.total}, {"free", d.free},
                              {"bandwidth_gbs", d.bandwidth_gbs}});
    j["default_max_memory"] = default_max_memory(m).to_json();
    inv.out << j.dump(2) << "\n";
    return 0;
  }
  if (format != "table") throw Error("--format: '" + format + "' is not table or json");
  inv.out << m.name << (m.simulated ? " (simulated)" : "") << "\n";
  inv.out << std::left << std::setw(7) << "device" << std::setw(40) << "name" << std::right << std::setw(12) << "total"
          << std::setw(12) << "free" << "\n";
  for (const auto& d : m.devices)
    inv.out << std::left << std::setw(7) << d.device.name() << std::setw(40) << d.name << std::right << std::setw(12)
            << format_size(d.total) << std::setw(12) << format_size(d.free) << "\n";
  if (m.gpus().empty()) inv.out << "no NVIDIA GPU found (NVML not available); plan for one with --profile\n";
  inv.out << "default --max-memory " << default_max_memory(m).to_string() << "\n";
  return 0;
}

}  // namespace devicemap::cli
