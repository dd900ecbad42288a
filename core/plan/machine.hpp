#pragma once
// The hardware a plan is for: detected (NVIDIA GPUs through NVML loaded at run time, CPU RAM from
// /proc/meminfo, disk free at the offload folder) or described by hand in a hardware profile JSON.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "plan/budget.hpp"
#include "plan/device.hpp"

namespace devicemap {

struct DeviceInfo {
  Device device;
  std::string name;              // "NVIDIA H100 80GB HBM3", "CPU RAM", "disk (/data/offload)"
  std::uint64_t total = 0;       // bytes
  std::uint64_t free = 0;        // bytes available now (= total for a simulated device)
  double bandwidth_gbs = 0;      // memory (GPU, CPU) or read (disk) bandwidth, GB/s; 0 = unknown
  bool simulated = false;
};

struct Machine {
  std::string name;  // "this machine" or the profile's name
  std::vector<DeviceInfo> devices;  // GPUs ascending, then cpu, then disk
  double pcie_gbs = 0;              // host-to-GPU bandwidth, GB/s; 0 = unknown
  double cpu_gflops = 0;            // one-row dense layers in float32, GFLOP/s; 0 = unknown
  double cpu_gflops_bf16 = 0;       // the same in bfloat16; 0 = as float32
  // The same for quantized Linears the decode kernels read packed, per weight (2 flops each): int8
  // rows and 4-bit codes (bitsandbytes NF4/FP4, GPTQ and AWQ 4-bit). 0 = unknown: bandwidth only.
  double cpu_gflops_int8 = 0;
  double cpu_gflops_4bit = 0;
  bool simulated = false;

  const DeviceInfo* find(Device d) const;
  std::vector<Device> gpus() const;
};

// Detects this machine. GPUs come from NVML when libnvidia-ml.so.1 loads; none otherwise.
Machine detect_machine(const std::filesystem::path& offload_folder = ".");

// Hardware profile JSON:
// {"name": "2× RTX 4090", "gpus": [{"name": "RTX 4090", "memory": "24GiB", "bandwidth_gbs": 1008}, …],
//  "cpu": {"memory": "64GiB", "bandwidth_gbs": 60, "gflops": 500, "gflops_bf16": 300}, "disk": {"free": "2TB", "bandwidth_gbs": 3},
//  "pcie_gbs": 25}
Machine machine_from_profile(const nlohmann::json& j, std::string_view source);
Machine load_profile(const std::filesystem::path& path);
nlohmann::json profile_to_json(const Machine& m);

// The profiles shipped in resources/profiles, by file stem ("1x24gb", …).
std::vector<std::filesystem::path> bundled_profiles();

// Budgets as Accelerate picks them when none are given: each GPU's free memory, 80% of the CPU's
// available RAM; disk is unlimited and not listed.
MaxMemory default_max_memory(const Machine& m);

}  // namespace devicemap
