#include "plan/speed_model.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "model/skeleton.hpp"
#include "plan/device_map.hpp"
#include "plan/machine.hpp"
#include "plan/units.hpp"

namespace devicemap {
namespace {

// One unit of execution: a decoder layer, or the direct tensors of another module (norm, head).
struct Block {
  bool layer = false;
  std::optional<Device> exec;  // where it runs
  double compute_bytes = 0;    // read from the execution device's memory
  double flop_seconds = 0;     // CPU execution only
  double fetch_seconds = 0;    // moving offloaded weights to the execution device
  double compute_seconds = 0;
};

// Registration-order blocks: every module inside a decoder layer belongs to the layer.
std::vector<int> block_of_modules(const Skeleton& s, std::vector<Block>& blocks) {
  std::vector<int> of(s.modules.size(), -1);
  std::vector<std::pair<int, int>> stack{{0, -1}};  // module, enclosing layer block
  while (!stack.empty()) {
    auto [m, layer] = stack.back();
    stack.pop_back();
    const auto& mod = s.modules[static_cast<std::size_t>(m)];
    if (layer < 0 && mod.is_layer) {
      layer = static_cast<int>(blocks.size());
      blocks.emplace_back().layer = true;
    }
    if (layer >= 0) {
      of[static_cast<std::size_t>(m)] = layer;
    } else if (!mod.params.empty()) {
      of[static_cast<std::size_t>(m)] = static_cast<int>(blocks.size());
      blocks.emplace_back();
    }
    for (auto c = mod.children.rbegin(); c != mod.children.rend(); ++c) stack.emplace_back(*c, layer);
  }
  return of;
}

}  // namespace

std::string SpeedPrediction::summary() const {
  if (!known) {
    std::string s = "unknown (no figure for ";
    for (std::size_t i = 0; i < missing.size(); ++i) s += (i ? ", " : "") + missing[i];
    return s + ")";
  }
  char b[160];
  std::snprintf(b, sizeof b, tokens_per_second >= 100 ? "%.0f tok/s" : "%.3g tok/s", tokens_per_second);
  std::string s = b;
  for (const auto& p : parts)
    if (p.resource == bottleneck) {
      if (p.resource == "dispatch")
        std::snprintf(b, sizeof b, " (bound by dispatch: %.2g ms per token)", p.seconds * 1e3);
      else if (p.resource == "CPU compute")
        std::snprintf(b, sizeof b, " (bound by CPU compute: %.2g ms per token)", p.seconds * 1e3);
      else
        std::snprintf(b, sizeof b, " (bound by %s: %s per token)", p.resource.c_str(),
                      format_size(static_cast<std::uint64_t>(p.bytes)).c_str());
      s += b;
    }
  return s;
}

SpeedPrediction predict_decode_speed(const Skeleton& s, const DeviceMap& map, const Machine& machine,
                                     const SpeedInputs& in) {
  SpeedPrediction out;
  const DeviceMapIndex index(map);
  std::optional<int> main_gpu;  // runs what is mapped to "cpu" and "disk", as the runner does
  for (const auto& [_, d] : map.entries())
    if (d.is_gpu() && (!main_gpu || d.index < *main_gpu)) main_gpu = d.index;

  std::vector<Block> blocks;
  const auto block_of = block_of_modules(s, blocks);

  // Bytes each tensor costs per token, where it lives and where it runs.
  struct Read {
    int block;
    Device home, exec;
    double bytes;
    double flop_seconds;  // CPU execution at the machine's rate for the dtype; 0 when it is unknown
    double recast;        // memory traffic of a cast each run, 0 when none
  };
  std::vector<Read> reads;
  double on_disk = 0, resident_cpu = 0;  // weights held there, whether read per token or not
  bool compute_unknown = false;
  bool packed_unknown = false;  // the rate of the kernels that read int8 rows or 4-bit codes
  // Mixtral's num_local_experts, Qwen MoE's num_experts, DeepSeek's n_routed_experts; num_experts_per_tok of them
  // run per token.
  double expert_share = 1.0;
  {
    const auto count = [&](const char* key) {
      return s.config.contains(key) && s.config[key].is_number_integer() ? s.config[key].get<std::int64_t>() : 0;
    };
    const std::int64_t experts = std::max({count("num_local_experts"), count("num_experts"), count("n_routed_experts")});
    const std::int64_t k = count("num_experts_per_tok");
    if (experts > 0 && k > 0 && k <= experts) expert_share = double(k) / double(experts);
  }
  std::optional<ModuleSizes> quantized;
  std::vector<std::string> not_converted;
  if (in.quantization) {
    quantized = real_quantized_sizes(s, *in.quantization, in.dtype);
    not_converted = modules_not_converted(s, *in.quantization);
  }
  // GPTQ and AWQ checkpoints: a qweight word holds 32 / bits weights.
  int packed_bits = 0;
  if (s.config.contains("quantization_config") && s.config["quantization_config"].is_object()) {
    const auto& q = s.config["quantization_config"];
    const std::string method = q.value("quant_method", "");
    if ((method == "gptq" || method == "awq") && q.contains("bits") && q["bits"].is_number_integer()) packed_bits = q["bits"].get<int>();
  }
  for (const auto& t : s.tensors) {
    if (t.buffer) continue;  // rotary tables and masks: small, and sliced rather than read whole
    const auto& weights = t.tied_to >= 0 ? s.tensors[static_cast<std::size_t>(t.tied_to)] : t;
    const auto home = index.device_of(weights.name);
    const auto own = index.device_of(t.name);
    const int block = block_of[static_cast<std::size_t>(t.module)];
    if (!home || !own || block < 0) continue;  // validate() reports uncovered tensors
    const Device exec = own->is_gpu() ? *own : main_gpu ? Device::gpu(*main_gpu) : Device::cpu();
    DType dt = in.dtype && is_floating(weights.dtype) ? *in.dtype : weights.dtype;
    // No float16 CPU kernels in LibTorch: the runner casts norms and biases; matrices stay float16 for
    // the decode kernels.
    if (exec.is_cpu() && dt == DType::F16 && weights.shape.size() != 2) dt = DType::F32;
    const std::size_t weights_index = static_cast<std::size_t>(&weights - s.tensors.data());
    const double bytes = quantized ? double(quantized->tensor[weights_index]) : double(weights.numel()) * dtype_bits(dt) / 8;
    if (t.tied_to < 0 && home->is_disk()) on_disk += bytes;
    if (t.tied_to < 0 && home->is_cpu()) resident_cpu += bytes;
    // A lookup reads one row; a tied embedding is read whole by the head that shares it (its alias).
    const bool embedding = s.modules[static_cast<std::size_t>(weights.module)].cls.find("Embedding") != std::string::npos;
    if (t.tied_to < 0 && embedding) continue;
    const bool recast = home->is_disk() && !in.offload_folder && is_floating(weights.dtype) && weights.dtype != dt;
    // Reading the stored bytes, the kernel zeroing the fresh buffer, and writing the cast into it.
    const double recast_bytes = recast ? double(weights.numel()) * dtype_bits(weights.dtype) / 8 + 2 * bytes : 0;
    // float16 matrices stream through the same 16-bit path of the decode kernels as bfloat16 ones.
    const bool sixteen = dt == DType::BF16 || (dt == DType::F16 && exec.is_cpu());
    double rate = sixteen && machine.cpu_gflops_bf16 > 0 ? machine.cpu_gflops_bf16 : machine.cpu_gflops;
    double elements = double(weights.numel());
    // Packed quantized Linears run at the packed kernels' own rate (when known), per weight.
    const bool words = packed_bits > 0 && weights.dtype == DType::I32 && weights.name.ends_with(".qweight");
    const bool bnb = in.quantization && weights.shape.size() == 2 && quantized_module(s, weights.module, not_converted);
    double read_bytes = bytes;
    if (words) {
      // The runner holds every width as 4-bit codes (run/packed_linear.hpp): a 2-bit value takes a nibble
      // (twice its stored bytes, read from RAM), an 8-bit one two nibbles; the kernel's rate is per nibble.
      elements *= 32.0 / packed_bits * (packed_bits == 8 ? 2 : 1);
      if (packed_bits == 2 && exec.is_cpu() && home->is_cpu()) read_bytes = 2 * bytes;
      rate = machine.cpu_gflops_4bit;
    } else if (bnb) {
      rate = in.quantization->method == Quantization::Method::Bnb8 ? machine.cpu_gflops_int8 : machine.cpu_gflops_4bit;
    }
    const double flop_seconds = exec.is_cpu() && rate > 0 ? 2.0 * elements / (rate * 1e9) : 0;
    if (exec.is_cpu() && rate <= 0) (words || bnb ? packed_unknown : compute_unknown) = true;
    // A routed expert is read only by the tokens its router picks: per token, top_k of the experts.
    const double share = t.name.find(".experts.") != std::string::npos ? expert_share : 1.0;
    reads.push_back({block, *home, exec, read_bytes * share, flop_seconds * share, recast_bytes * share});
  }

  // Figures the placement needs; a missing one leaves the prediction unknown.
  std::set<std::string> missing;
  const auto bandwidth = [&](Device d) {
    const DeviceInfo* info = machine.find(d);
    if (!info || info->bandwidth_gbs <= 0) {
      missing.insert("bandwidth of " + (d.is_gpu() ? "GPU " + d.name() : d.is_cpu() ? std::string("CPU RAM") : "disk"));
      return 1.0;
    }
    return info->bandwidth_gbs * 1e9;
  };
  if (expert_share < 1.0) {
    char share[96];
    std::snprintf(share, sizeof share, "each token reads %.3g%% of the routed experts' weights (num_experts_per_tok of them)",
                  100 * expert_share);
    out.assumptions.push_back(share);
  }
  const DeviceInfo* cpu = machine.find(Device::cpu());
  const double ram_free = cpu ? double(cpu->free) : 0;
  const bool cached = on_disk > 0 && on_disk <= ram_free - resident_cpu;
  if (on_disk > 0)
    out.assumptions.push_back(
        cached ? "the " + format_size(static_cast<std::uint64_t>(on_disk)) +
                     " on disk stay in the page cache after the first token and are read at RAM speed"
               : "the " + format_size(static_cast<std::uint64_t>(on_disk)) + " on disk exceed the RAM the plan leaves (" +
                     format_size(static_cast<std::uint64_t>(std::max(0.0, ram_free - resident_cpu))) +
                     "), so every token reads them from the disk");

  std::map<std::string, SpeedPart> parts;
  const auto charge = [&](const std::string& resource, double bytes, double seconds) {
    auto& p = parts[resource];
    p.resource = resource;
    p.bytes += bytes;
    p.seconds += seconds;
  };
  std::vector<double> cpu_ram_bytes(blocks.size(), 0);
  for (const auto& r : reads) {
    Block& b = blocks[static_cast<std::size_t>(r.block)];
    b.exec = r.exec;
    if (r.recast > 0) {
      const double t = r.recast / bandwidth(Device::cpu());
      (r.exec.is_cpu() ? b.compute_seconds : b.fetch_seconds) += t;
      charge("CPU RAM (casts)", r.recast, t);
    }
    if (r.exec.is_gpu()) {
      const double bw = bandwidth(r.exec);
      b.compute_bytes += r.bytes;
      charge("GPU " + r.exec.name() + " memory", r.bytes, r.bytes / bw);
      if (r.home.is_gpu()) continue;
      // Offloaded: over PCIe every token, from RAM or from the disk.
      if (machine.pcie_gbs <= 0) missing.insert("PCIe bandwidth");
      double link = machine.pcie_gbs * 1e9;
      std::string source = "PCIe";
      if (r.home.is_cpu() || cached) {
        link = std::min(link, bandwidth(Device::cpu()));
      } else {
        const double disk = bandwidth(Device::disk());
        if (disk < link) source = "disk";
        link = std::min(link, disk);
      }
      b.fetch_seconds += r.bytes / link;
      charge(source, r.bytes, r.bytes / link);
    } else {
      cpu_ram_bytes[static_cast<std::size_t>(r.block)] += r.bytes;
      b.flop_seconds += r.flop_seconds;
      if (r.home.is_disk() && !cached) {
        const double disk = bandwidth(Device::disk());
        b.fetch_seconds += r.bytes / disk;
        charge("disk", r.bytes, r.bytes / disk);
      }
    }
  }
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    Block& b = blocks[i];
    if (!b.exec) continue;
    const double kv = b.layer ? double(in.kv_bytes_per_layer) / 2 : 0;
    if (b.exec->is_gpu()) {
      const double t = kv / bandwidth(*b.exec);
      b.compute_seconds += b.compute_bytes / bandwidth(*b.exec) + t;
      if (kv > 0) charge("GPU " + b.exec->name() + " memory", kv, t);
    } else {
      const double bytes = cpu_ram_bytes[i] + kv;
      const double memory = bytes / bandwidth(Device::cpu());
      b.compute_seconds += std::max(memory, b.flop_seconds);
      charge("CPU RAM", bytes, memory);
      if (b.flop_seconds > 0) charge("CPU compute", 0, b.flop_seconds);
    }
    const double overhead = b.exec->is_gpu() ? kGpuBlockOverhead : kCpuBlockOverhead;
    b.compute_seconds += overhead;
    charge("dispatch", 0, overhead);
  }
  if (compute_unknown)
    out.assumptions.push_back("the CPU's compute rate is unknown: its blocks are taken to be bound by memory");
  if (packed_unknown)
    out.assumptions.push_back("the CPU's rate for quantized Linears (int8 rows, 4-bit codes) is unknown: they are taken to be bound by memory");

  out.missing.assign(missing.begin(), missing.end());
  for (auto& [_, p] : parts) out.parts.push_back(p);
  if (!out.missing.empty()) return out;

  // With prefetch, a layer's fetch hides behind the previous layer's compute (block 0's behind the last).
  std::vector<std::size_t> layers;
  for (std::size_t i = 0; i < blocks.size(); ++i)
    if (blocks[i].exec && blocks[i].layer) layers.push_back(i);
  double with = 0, without = 0;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const Block& b = blocks[i];
    if (!b.exec) continue;
    without += b.compute_seconds + b.fetch_seconds;
    if (!b.layer) with += b.compute_seconds + b.fetch_seconds;
  }
  for (std::size_t k = 0; k < layers.size(); ++k)
    with += std::max(blocks[layers[k]].compute_seconds, blocks[layers[(k + 1) % layers.size()]].fetch_seconds);
  out.known = with > 0;
  out.tokens_per_second = with > 0 ? 1 / with : 0;
  out.tokens_per_second_without_prefetch = without > 0 ? 1 / without : 0;
  const auto worst = std::max_element(out.parts.begin(), out.parts.end(),
                                      [](const SpeedPart& a, const SpeedPart& b) { return a.seconds < b.seconds; });
  if (worst != out.parts.end()) out.bottleneck = worst->resource;
  return out;
}

}  // namespace devicemap
