// devicemap devices [--profile FILE|NAME] [--offload-folder DIR] [--measure [--disk-sample FILE]]
//                   [--save-profile FILE [--force]] [--format table|json]
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "error.hpp"
#include "format/atomic_file.hpp"
#include "format/resources.hpp"
#include "plan/bandwidth.hpp"
#include "plan/machine.hpp"
#include "plan/units.hpp"
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS
#include "run/cpu_rate.hpp"
#endif

namespace devicemap::cli {

int devices_command(Invocation& inv) {
  const Args args(inv.args, {"profile", "offload-folder", "format", "disk-sample", "save-profile"}, {"help", "measure", "force"});
  if (args.flag("help")) {
    inv.out << "usage: devicemap devices [--profile FILE|NAME] [--offload-folder DIR] [--measure [--disk-sample FILE]]\n"
               "                         [--save-profile FILE [--force]] [--format table|json]\n"
               "Lists the GPUs (through NVML), CPU RAM and disk free at the offload folder, or a hardware profile.\n"
               "--measure also measures this machine's figures for speed prediction: RAM read bandwidth, the\n"
               "CPU's rate on one-row dense layers (float32, bfloat16; with the running layer), and the disk's\n"
               "read bandwidth on --disk-sample (a large file on that disk, e.g. a checkpoint shard).\n"
               "--save-profile writes the machine as a hardware profile for `plan --profile FILE`.\n"
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
    if (args.flag("measure")) {
      measure_bandwidths(m, args.get("disk-sample").value_or(""));
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS
      m.cpu_gflops = measure_matvec_gflops(DType::F32);
      m.cpu_gflops_bf16 = measure_matvec_gflops(DType::BF16);
      m.cpu_gflops_int8 = measure_packed_gflops(false);
      m.cpu_gflops_4bit = measure_packed_gflops(true);
#endif
    }
  }
  if (args.get("disk-sample") && !args.flag("measure")) throw Error("--disk-sample goes with --measure");
  if (auto out = args.get("save-profile")) {
    const std::filesystem::path path = *out;
    if (std::filesystem::exists(path) && !args.flag("force"))
      throw Error(path.string() + " exists; pass --force to replace it");
    write_file_atomically(path, profile_to_json(m).dump(2) + "\n");
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
    j["pcie_gbs"] = m.pcie_gbs;
    j["cpu_gflops"] = m.cpu_gflops;
    j["cpu_gflops_bf16"] = m.cpu_gflops_bf16;
    j["cpu_gflops_int8"] = m.cpu_gflops_int8;
    j["cpu_gflops_4bit"] = m.cpu_gflops_4bit;
    j["default_max_memory"] = default_max_memory(m).to_json();
    inv.out << j.dump(2) << "\n";
    return 0;
  }
  if (format != "table") throw Error("--format: '" + format + "' is not table or json");
  inv.out << m.name << (m.simulated ? " (simulated)" : "") << "\n";
  inv.out << std::left << std::setw(7) << "device" << std::setw(40) << "name" << std::right << std::setw(12) << "total"
          << std::setw(12) << "free" << std::setw(14) << "bandwidth" << "\n";
  for (const auto& d : m.devices) {
    inv.out << std::left << std::setw(7) << d.device.name() << std::setw(40) << d.name << std::right << std::setw(12)
            << format_size(d.total) << std::setw(12) << format_size(d.free);
    char bw[32] = "-";
    if (d.bandwidth_gbs > 0) std::snprintf(bw, sizeof bw, "%.3g GB/s", d.bandwidth_gbs);
    inv.out << std::setw(14) << bw << "\n";
  }
  if (m.pcie_gbs > 0 || m.cpu_gflops > 0) {
    char line[240];
    std::snprintf(line, sizeof line,
                  "PCIe %.3g GB/s, CPU %.3g GFLOP/s float32, %.3g GFLOP/s bfloat16, %.3g GFLOP/s int8 rows, %.3g GFLOP/s 4-bit "
                  "codes (0 = unknown)\n",
                  m.pcie_gbs, m.cpu_gflops, m.cpu_gflops_bf16, m.cpu_gflops_int8, m.cpu_gflops_4bit);
    inv.out << line;
  }
  if (m.gpus().empty()) inv.out << "no NVIDIA GPU found (NVML not available); plan for one with --profile\n";
  inv.out << "default --max-memory " << default_max_memory(m).to_string() << "\n";
  return 0;
}

}  // namespace devicemap::cli
