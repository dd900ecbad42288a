#include "cli/plan_flags.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "error.hpp"
#include "format/resources.hpp"
#include "model/quantization.hpp"

namespace devicemap::cli {

std::set<std::string> planning_options() {
  return {"max-memory", "strategy", "dtype", "flavor", "no-split", "pin", "context", "batch", "profile", "offload-folder",
          "bnb-4bit-quant-type", "llm-int8-skip-modules"};
}
std::set<std::string> planning_flags() {
  return {"offload-buffers", "fallback-allocation", "load-in-8bit", "load-in-4bit", "bnb-4bit-use-double-quant"};
}

const char* const kPlanningHelp =
    "  --max-memory 0=20GiB,1=20GiB,cpu=64GiB   budgets (plain digits are bytes); default: free GPU memory\n"
    "                                           and 80% of available RAM, of this machine or of --profile\n"
    "  --strategy auto|balanced|balanced_low_0|sequential   (default auto)\n"
    "  --dtype float16|bfloat16|float32         target dtype (default: as stored)\n"
    "  --flavor accelerate|transformers         how --dtype counts (default transformers: cast first)\n"
    "  --no-split A,B                           no-split classes (\"\" = none; default: the model's)\n"
    "  --offload-buffers, --fallback-allocation as Accelerate's infer_auto_device_map\n"
    "  --pin NAME=DEVICE                        keep a module on a device (repeatable); the rest is\n"
    "                                           planned around it; tied partners follow\n"
    "  --context N --batch B                    reserve KV cache for N tokens x B sequences per layer\n"
    "  --profile FILE|NAME                      plan for a described machine (resources/profiles/NAME.json)\n"
    "  --load-in-8bit | --load-in-4bit          bitsandbytes on load: sized as transformers sizes it (the\n"
    "                                           map it makes), the fit by the real quantized bytes\n"
    "  --bnb-4bit-quant-type nf4|fp4 --bnb-4bit-use-double-quant --llm-int8-skip-modules A,B\n";

PlanningRequest read_planning_flags(const Args& args, const Skeleton& model) {
  PlanningRequest r;
  if (auto p = args.get("profile")) {
    std::filesystem::path path = *p;
    if (!std::filesystem::exists(path) && path.extension().empty()) path = resources_dir() / "profiles" / (*p + ".json");
    r.machine = load_profile(path);
  } else {
    r.machine = detect_machine(args.get("offload-folder").value_or("."));
  }
  if (auto mm = args.get("max-memory")) {
    r.max_memory = MaxMemory::parse(*mm);
    if (!r.max_memory.has(Device::cpu()))
      r.max_memory.set(Device::cpu(), default_max_memory(r.machine).get(Device::cpu()).value_or(0));
  } else {
    r.max_memory = default_max_memory(r.machine);
  }
  auto& o = r.options;
  if (auto s = args.get("strategy")) {
    auto v = strategy_from_name(*s);
    if (!v) throw Error("--strategy: '" + *s + "' is not one of auto, balanced, balanced_low_0, sequential");
    o.strategy = *v;
  }
  if (auto d = args.get("dtype")) {
    o.dtype = dtype_from_torch_name(*d);
    if (!o.dtype || !is_floating(*o.dtype)) throw Error("--dtype: '" + *d + "' is not float16, bfloat16 or float32");
  }
  if (auto f = args.get("flavor")) {
    auto v = flavor_from_name(*f);
    if (!v) throw Error("--flavor: '" + *f + "' is not accelerate or transformers");
    o.flavor = *v;
  }
  if (auto ns = args.get("no-split")) {
    std::vector<std::string> classes;
    std::stringstream ss(*ns);
    for (std::string c; std::getline(ss, c, ',');)
      if (!c.empty()) classes.push_back(c);
    o.no_split_classes = classes;
  }
  o.offload_buffers = args.flag("offload-buffers");
  o.fallback_allocation = args.flag("fallback-allocation");
  for (const auto& pin : args.all("pin")) {
    const auto eq = pin.rfind('=');
    if (eq == std::string::npos) throw Error("--pin: '" + pin + "' must be NAME=DEVICE, e.g. model.layers.3=1");
    auto d = Device::parse(pin.substr(eq + 1));
    if (!d) throw Error("--pin: '" + pin.substr(eq + 1) + "' is not a device (0, 1, …, cpu, disk)");
    o.pins.push_back({pin.substr(0, eq), *d});
  }
  o.kv.context = args.get_u64("context", 0);
  o.kv.batch = args.get_u64("batch", 1);
  if (args.get("batch") && !args.get("context")) throw Error("--batch needs --context (the KV reserve is context × batch)");
  // bitsandbytes: the flags, else a bitsandbytes checkpoint's quantization_config.
  const bool eight = args.flag("load-in-8bit"), four = args.flag("load-in-4bit");
  if (eight && four) throw Error("--load-in-8bit and --load-in-4bit exclude each other");
  if (eight || four) {
    Quantization q;
    q.method = eight ? Quantization::Method::Bnb8 : Quantization::Method::Bnb4;
    q.quant_type = args.get("bnb-4bit-quant-type").value_or("fp4");  // BitsAndBytesConfig's default
    if (q.quant_type != "nf4" && q.quant_type != "fp4")
      throw Error("--bnb-4bit-quant-type: '" + q.quant_type + "' is not nf4 or fp4");
    q.double_quant = args.flag("bnb-4bit-use-double-quant");
    if (auto skip = args.get("llm-int8-skip-modules")) {
      std::stringstream ss(*skip);
      for (std::string m; std::getline(ss, m, ',');)
        if (!m.empty()) q.skip_modules.push_back(m);
    }
    o.quantization = q;
  } else if (args.get("bnb-4bit-quant-type") || args.flag("bnb-4bit-use-double-quant") || args.get("llm-int8-skip-modules")) {
    throw Error("--bnb-4bit-quant-type, --bnb-4bit-use-double-quant and --llm-int8-skip-modules need --load-in-8bit or --load-in-4bit");
  } else {
    o.quantization = Quantization::from_config(model.config, "config.json");
  }
  return r;
}

// The largest weight file of a checkpoint folder: what a disk read test should read.
std::filesystem::path largest_weight_file(const std::filesystem::path& dir) {
  std::filesystem::path best;
  std::uintmax_t size = 0;
  std::error_code ec;
  if (dir.empty()) return best;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const auto ext = e.path().extension();
    if ((ext == ".safetensors" || ext == ".bin") && e.is_regular_file(ec) && e.file_size(ec) > size) {
      size = e.file_size(ec);
      best = e.path();
    }
  }
  return best;
}

static std::string gbs(double v) {
  char b[32];
  std::snprintf(b, sizeof b, v >= 100 ? "%.0f GB/s" : "%.3g GB/s", v);
  return b;
}

// ", GPUs 1008 GB/s, RAM 60 GB/s, PCIe 25 GB/s, disk 3.5 GB/s": what the prediction rests on.
std::string bandwidth_text(const Machine& m) {
  std::string s;
  std::vector<double> gpus;
  for (const auto& d : m.devices)
    if (d.device.is_gpu()) gpus.push_back(d.bandwidth_gbs);
  const bool same = !gpus.empty() && std::all_of(gpus.begin(), gpus.end(), [&](double v) { return v == gpus[0]; });
  if (same && gpus[0] > 0) s += std::string(gpus.size() > 1 ? ", GPUs " : ", GPU ") + gbs(gpus[0]);
  for (const auto& d : m.devices) {
    if (d.bandwidth_gbs <= 0 || (d.device.is_gpu() && same)) continue;
    s += ", " + (d.device.is_gpu() ? "GPU " + d.device.name() : d.device.is_cpu() ? std::string("RAM") : "disk") + " " +
         gbs(d.bandwidth_gbs);
    if (d.device.is_cpu() && m.pcie_gbs > 0 && !gpus.empty()) s += ", PCIe " + gbs(m.pcie_gbs);
  }
  return s;
}

}  // namespace devicemap::cli
