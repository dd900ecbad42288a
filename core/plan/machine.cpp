#include "plan/machine.hpp"

#include <dlfcn.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <system_error>
#include <sstream>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "format/atomic_file.hpp"
#include "format/resources.hpp"
#include "plan/units.hpp"

namespace devicemap {
namespace fs = std::filesystem;
namespace {

// The few NVML entry points we need, resolved at run time so that nothing links against the driver.
struct NvmlMemory {
  unsigned long long total, free, used;
};
using NvmlInit = int (*)();
using NvmlCount = int (*)(unsigned*);
using NvmlHandle = int (*)(unsigned, void**);
using NvmlName = int (*)(void*, char*, unsigned);
using NvmlMem = int (*)(void*, NvmlMemory*);
using NvmlUnsigned = int (*)(void*, unsigned*);
using NvmlClock = int (*)(void*, int, unsigned*);
constexpr int kNvmlClockMem = 2;  // NVML_CLOCK_MEM

// Peak memory bandwidth from the bus width and the memory clock (double data rate), GB/s: 5120 bits at
// 2619 MHz gives an H100's 3.35 TB/s, 384 bits at 10501 MHz an RTX 4090's 1008 GB/s. 0 when unknown.
double gpu_bandwidth_gbs(void* lib, void* h) {
  auto bus = reinterpret_cast<NvmlUnsigned>(::dlsym(lib, "nvmlDeviceGetMemoryBusWidth"));
  auto clock = reinterpret_cast<NvmlClock>(::dlsym(lib, "nvmlDeviceGetMaxClockInfo"));
  unsigned bits = 0, mhz = 0;
  if (!bus || !clock || bus(h, &bits) != 0 || clock(h, kNvmlClockMem, &mhz) != 0) return 0;
  return double(mhz) * 1e6 * 2 * bits / 8 / 1e9;
}

// Host-to-device rate of the PCIe link: lanes × per-lane rate of its generation × 0.8, what pinned
// copies reach in practice (gen4 x16: 25 GB/s). 0 when unknown.
double pcie_gbs(void* lib, void* h) {
  auto gen = reinterpret_cast<NvmlUnsigned>(::dlsym(lib, "nvmlDeviceGetMaxPcieLinkGeneration"));
  auto width = reinterpret_cast<NvmlUnsigned>(::dlsym(lib, "nvmlDeviceGetMaxPcieLinkWidth"));
  unsigned g = 0, w = 0;
  if (!gen || !width || gen(h, &g) != 0 || width(h, &w) != 0 || g == 0) return 0;
  static constexpr double kLaneGbs[] = {0.25, 0.5, 0.985, 1.969, 3.938, 7.877};
  return kLaneGbs[std::min<unsigned>(g, 6) - 1] * w * 0.8;
}

std::vector<DeviceInfo> nvml_gpus(double& pcie) {
  std::vector<DeviceInfo> out;
  void* lib = ::dlopen("libnvidia-ml.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!lib) return out;
  auto init = reinterpret_cast<NvmlInit>(::dlsym(lib, "nvmlInit_v2"));
  auto shutdown = reinterpret_cast<NvmlInit>(::dlsym(lib, "nvmlShutdown"));
  auto count = reinterpret_cast<NvmlCount>(::dlsym(lib, "nvmlDeviceGetCount_v2"));
  auto handle = reinterpret_cast<NvmlHandle>(::dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  auto name = reinterpret_cast<NvmlName>(::dlsym(lib, "nvmlDeviceGetName"));
  auto mem = reinterpret_cast<NvmlMem>(::dlsym(lib, "nvmlDeviceGetMemoryInfo"));
  unsigned n = 0;
  if (init && count && handle && name && mem && init() == 0) {
    if (count(&n) == 0)
      for (unsigned i = 0; i < n; ++i) {
        void* h = nullptr;
        char buf[96] = {};
        NvmlMemory m{};
        if (handle(i, &h) != 0 || mem(h, &m) != 0) continue;
        name(h, buf, sizeof buf);
        out.push_back({Device::gpu(static_cast<int>(i)), buf, m.total, m.free, gpu_bandwidth_gbs(lib, h), false});
        if (const double link = pcie_gbs(lib, h); link > 0) pcie = pcie > 0 ? std::min(pcie, link) : link;
      }
    if (shutdown) shutdown();
  }
  ::dlclose(lib);
  return out;
}

std::uint64_t meminfo_kib(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string k;
  std::uint64_t v = 0;
  std::string unit;
  while (in >> k >> v >> unit)
    if (k == key + ":") return v;
  return 0;
}

std::uint64_t size_field(const nlohmann::json& j, const char* key, std::string_view source) {
  if (!j.contains(key)) throw Error(std::string(source) + ": \"" + key + "\" is missing");
  const auto& v = j[key];
  if (v.is_number_unsigned() || (v.is_number_integer() && v.get<long long>() >= 0)) return v.get<std::uint64_t>();
  if (v.is_string()) return parse_size(v.get<std::string>());
  throw Error(std::string(source) + ": \"" + key + "\" = " + v.dump() + " is not a size");
}

// An optional rate (GB/s, GFLOP/s): a number of at least 0; absent means unknown (0).
double rate_field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) return 0;
  const auto& v = j[key];
  if (!v.is_number() || v.get<double>() < 0 || !std::isfinite(v.get<double>()))
    throw Error(where + ": \"" + key + "\" = " + v.dump() + " is not a rate (a number, 0 or more)");
  return v.get<double>();
}

// An optional name: a string.
std::string name_field(const nlohmann::json& j, const char* fallback, const std::string& where) {
  if (!j.contains("name")) return fallback;
  if (!j["name"].is_string()) throw Error(where + ": \"name\" = " + j["name"].dump() + " is not a string");
  return j["name"].get<std::string>();
}

}  // namespace

const DeviceInfo* Machine::find(Device d) const {
  for (const auto& i : devices)
    if (i.device == d) return &i;
  return nullptr;
}

std::vector<Device> Machine::gpus() const {
  std::vector<Device> out;
  for (const auto& i : devices)
    if (i.device.is_gpu()) out.push_back(i.device);
  return out;
}

Machine detect_machine(const fs::path& offload_folder) {
  Machine m;
  m.name = "this machine";
  m.devices = nvml_gpus(m.pcie_gbs);
  const std::uint64_t total = meminfo_kib("MemTotal") * 1024, avail = meminfo_kib("MemAvailable") * 1024;
  m.devices.push_back({Device::cpu(), "CPU RAM", total, avail, 0, false});
  fs::path probe = offload_folder;
  std::error_code ec;  // a path the system refuses (too long, no permission) probes its parents instead
  while (!probe.empty() && !fs::exists(probe, ec) && probe.has_parent_path() && probe != probe.parent_path()) probe = probe.parent_path();
  struct statvfs st {};
  if (::statvfs(probe.empty() ? "." : probe.c_str(), &st) == 0) {
    const std::uint64_t free = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    const std::uint64_t size = static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize;
    const fs::path shown = fs::absolute(probe, ec);
    m.devices.push_back({Device::disk(), "disk (" + (ec ? probe : shown).string() + ")", size, free, 0, false});
  }
  return m;
}

Machine machine_from_profile(const nlohmann::json& j, std::string_view source) {
  const std::string src(source);
  if (!j.is_object()) throw Error(src + ": a hardware profile must be a JSON object");
  Machine m;
  m.simulated = true;
  m.name = name_field(j, src.c_str(), src);
  m.pcie_gbs = rate_field(j, "pcie_gbs", src);
  int index = 0;
  if (j.contains("gpus")) {
    if (!j["gpus"].is_array()) throw Error(src + ": \"gpus\" must be an array");
    for (const auto& g : j["gpus"]) {
      const std::string where = src + ": gpus[" + std::to_string(index) + "]";
      if (!g.is_object()) throw Error(where + " must be an object {name, memory}");
      const auto bytes = size_field(g, "memory", where);
      m.devices.push_back({Device::gpu(index++), name_field(g, "GPU", where), bytes, bytes, rate_field(g, "bandwidth_gbs", where), true});
    }
  }
  if (!j.contains("cpu") || !j["cpu"].is_object()) throw Error(src + ": \"cpu\" {\"memory\": …} is missing");
  const auto ram = size_field(j["cpu"], "memory", src + ": cpu");
  m.cpu_gflops = rate_field(j["cpu"], "gflops", src + ": cpu");
  m.cpu_gflops_bf16 = rate_field(j["cpu"], "gflops_bf16", src + ": cpu");
  m.cpu_gflops_int8 = rate_field(j["cpu"], "gflops_int8", src + ": cpu");
  m.cpu_gflops_4bit = rate_field(j["cpu"], "gflops_4bit", src + ": cpu");
  m.devices.push_back({Device::cpu(), name_field(j["cpu"], "CPU RAM", src + ": cpu"), ram, ram,
                       rate_field(j["cpu"], "bandwidth_gbs", src + ": cpu"), true});
  if (j.contains("disk") && j["disk"].is_object()) {
    const auto free = size_field(j["disk"], "free", src + ": disk");
    m.devices.push_back({Device::disk(), name_field(j["disk"], "disk", src + ": disk"), free, free,
                         rate_field(j["disk"], "bandwidth_gbs", src + ": disk"), true});
  }
  return m;
}

Machine load_profile(const fs::path& path) {
  return machine_from_profile(read_json_file(path), path.string());
}

nlohmann::json profile_to_json(const Machine& m) {
  nlohmann::json j;
  j["name"] = m.name;
  j["gpus"] = nlohmann::json::array();
  for (const auto& d : m.devices) {
    nlohmann::json e{{"name", d.name}, {"bandwidth_gbs", d.bandwidth_gbs}};
    if (d.device.is_gpu()) {
      e["memory"] = d.total;
      j["gpus"].push_back(e);
    } else if (d.device.is_cpu()) {
      e["memory"] = d.total;
      e["gflops"] = m.cpu_gflops;
      if (m.cpu_gflops_bf16 > 0) e["gflops_bf16"] = m.cpu_gflops_bf16;
      if (m.cpu_gflops_int8 > 0) e["gflops_int8"] = m.cpu_gflops_int8;
      if (m.cpu_gflops_4bit > 0) e["gflops_4bit"] = m.cpu_gflops_4bit;
      j["cpu"] = e;
    } else {
      e["free"] = d.free;
      j["disk"] = e;
    }
  }
  j["pcie_gbs"] = m.pcie_gbs;
  return j;
}

std::vector<fs::path> bundled_profiles() {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(resources_dir() / "profiles", ec))
    if (e.path().extension() == ".json") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

MaxMemory default_max_memory(const Machine& m) {
  MaxMemory mm;
  for (const auto& d : m.devices) {
    if (d.device.is_gpu()) mm.set(d.device, d.free);
    if (d.device.is_cpu()) mm.set(d.device, static_cast<std::uint64_t>(static_cast<double>(d.free) * 0.8));
  }
  return mm;
}

}  // namespace devicemap
