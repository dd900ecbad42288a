#include "run/load_plan.hpp"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "error.hpp"
#include "format/checkpoint.hpp"
#include "plan/device_map.hpp"
#include "plan/machine.hpp"
#include "plan/units.hpp"
#include "run/tensor_layout.hpp"
#include "run/tensor_source.hpp"

namespace devicemap {
namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

const TensorSource* find_source(const WeightFiles& files, const ModelConfig& config, const std::string& name) {
  if (const auto* t = files.find(name)) return t;
  const std::string alt = alternative_checkpoint_name(config, name);
  return alt.empty() ? nullptr : files.find(alt);
}

const TensorSource& checked_source(const Checkpoint& checkpoint, const WeightFiles& files, const ModelConfig& config,
                                   const TensorSpec& spec) {
  const TensorSource* t = find_source(files, config, spec.name);
  if (!t)
    throw Error(checkpoint.dir().string() + ": the checkpoint has no tensor '" + spec.name + "', which a " +
                config.model_type + " model as config.json describes needs");
  if (!spec.shape_checked_later && t->shape != spec.shape) {
    std::string why;
    // Name the config keys behind the first dimension that disagrees, and what the checkpoint holds.
    for (std::size_t d = 0; d < spec.dims.size() && t->shape.size() == spec.shape.size(); ++d)
      if (t->shape[d] != spec.shape[d]) {
        why = ": its dimension " + std::to_string(d) + " is " + std::to_string(t->shape[d]) + " in the checkpoint, where config.json has " +
              spec.dims[d];
        break;
      }
    throw Error(t->file.string() + ": tensor '" + spec.name + "' has shape " + shape_text(t->shape) +
                " but config.json implies " + shape_text(spec.shape) + why);
  }
  return *t;
}

// The options' dtype, else config.json's torch_dtype, else the first floating tensor's.
DType requested_dtype(const WeightFiles& files, const ModelConfig& config, const LoadOptions& options,
                      const std::vector<TensorSpec>& specs) {
  if (options.dtype) return *options.dtype;
  if (config.torch_dtype) return *config.torch_dtype;
  for (const auto& spec : specs)
    if (const auto* t = find_source(files, config, spec.name); t && is_floating(t->dtype)) return t->dtype;
  return DType::F32;
}

bool can_hold(DType d) {
  // LibTorch 1.13 has no float8 and no unsigned integers wider than a byte.
  return d != DType::F8_E4M3 && d != DType::F8_E5M2 && d != DType::U16 && d != DType::U32 && d != DType::U64;
}

// A GPTQ layer's g_idx indexes its scales' rows; an index out of range would fault on a GPU, so every
// one is checked here, once, from the file.
void check_group_indices(const LoadPlan& plan) {
  std::map<std::string, std::int64_t> groups;
  for (const auto& t : plan.tensors)
    if (t.name.ends_with(".scales") && !t.source->shape.empty()) groups[t.name.substr(0, t.name.size() - 7)] = t.source->shape[0];
  for (const auto& t : plan.tensors) {
    if (!t.name.ends_with(".g_idx")) continue;
    const TensorSource& s = *t.source;
    const auto layer = groups.find(t.name.substr(0, t.name.size() - 6));
    if (s.dtype != DType::I32 || layer == groups.end())
      throw Error(s.file.string() + ": tensor '" + t.name + "' must be int32 beside its layer's scales");
    for (std::size_t i = 0; i + 4 <= s.bytes.size(); i += 4) {
      std::int32_t g = 0;
      std::memcpy(&g, s.bytes.data() + i, 4);
      if (g < 0 || g >= layer->second)
        throw Error(s.file.string() + ": tensor '" + t.name + "' names group " + std::to_string(g) + " of " +
                    std::to_string(layer->second));
    }
  }
}

// Where each tensor of `specs` (in execution order) sits: -1 before the decoder blocks, its block's index,
// or num_layers after them.
std::vector<std::int64_t> parts_of(const ModelConfig& config, const std::vector<TensorSpec>& specs) {
  std::string base = block_name(config, 0);
  base.pop_back();  // "model.layers."
  std::vector<std::int64_t> parts;
  bool blocks_seen = false;
  for (const auto& spec : specs) {
    std::int64_t part = blocks_seen ? config.num_layers : -1;
    if (spec.name.starts_with(base)) {
      const std::size_t end = spec.name.find('.', base.size());
      part = std::stoll(spec.name.substr(base.size(), end - base.size()));
      blocks_seen = true;
    }
    parts.push_back(part);
  }
  return parts;
}

// RAM a GPTQ layer resident on the CPU takes once repacked for the decode kernels (run/packed_linear.hpp):
// rows of 4-bit codes (2-bit values held as nibbles, 8-bit ones as two planes of them) with a float32
// scale and offset per group and row (8 bits: the low plane's scales too), and with act order the
// input's gather. Its words' mapping is dropped after.
std::uint64_t gptq_packed_bytes(const std::vector<std::int64_t>& qweight_shape, const GptqConfig& gptq) {
  if (qweight_shape.size() != 2) return 0;
  const auto in = static_cast<std::uint64_t>(qweight_shape[0]) * static_cast<std::uint64_t>(32 / gptq.bits);
  const auto out = static_cast<std::uint64_t>(qweight_shape[1]);
  const std::uint64_t group = gptq.group_size < 0 ? in : static_cast<std::uint64_t>(gptq.group_size);
  const std::uint64_t groups = group == 0 ? 0 : (in + group - 1) / group;
  const std::uint64_t planes = gptq.bits == 8 ? 2 : 1;
  const std::uint64_t order = gptq.desc_act ? in * sizeof(std::int64_t) : 0;  // act order: the input's gather
  return planes * out * (in / 2) + (planes + 1) * groups * out * sizeof(float) + order;
}

}  // namespace

LoadPlan plan_load(const Checkpoint& checkpoint, const ModelConfig& config, const DeviceMap& map,
                   const LoadOptions& options) {
  const auto specs = expected_tensors(config);
  if (options.quantize != LoadQuantization::None && (config.gptq || config.bnb || config.awq))
    throw Error(checkpoint.dir().string() + ": the checkpoint is quantized already; quantizing on load is for float checkpoints");
  LoadPlan plan;
  plan.files = std::make_shared<const WeightFiles>(WeightFiles::open(checkpoint));
  const WeightFiles& files = *plan.files;
  plan.requested_dtype = requested_dtype(files, config, options, specs);
  if (!is_floating(plan.requested_dtype) || !can_hold(plan.requested_dtype))
    throw Error("compute dtype " + std::string(torch_name(plan.requested_dtype)) +
                " is not supported (use float32, bfloat16, float16 or float64)");
  plan.gpu_dtype = plan.requested_dtype;
  // LibTorch has no float16 CPU kernels: what would run there in float16 runs in float32, except the
  // matrices, which the decode kernels read as float16.
  plan.cpu_dtype = plan.requested_dtype == DType::F16 ? DType::F32 : plan.requested_dtype;
  for (const auto& [key, device] : map.entries())
    if (device.is_gpu() && (!plan.main_gpu || device.index < *plan.main_gpu)) plan.main_gpu = device.index;
  if (plan.cpu_dtype != plan.requested_dtype && !plan.main_gpu)
    plan.notes.push_back("float16 matrices stay float16 on the CPU (the decode kernels read them); norms and activations "
                         "run in float32 (LibTorch has no float16 CPU kernels)");

  // A pipeline stage loads its own layers, the embedding with the first, the norm and head with the last.
  const std::int64_t layers = config.num_layers;
  const LayerRange range = options.layers.value_or(LayerRange{0, layers});
  if (range.first < 0 || range.first >= range.end || range.end > layers)
    throw Error(checkpoint.dir().string() + ": a stage of layers " + std::to_string(range.first) + " to " + std::to_string(range.end - 1) +
                " is not within the model's " + std::to_string(layers) + " (num_hidden_layers in config.json)");
  plan.layers = range;
  const std::vector<std::int64_t> parts = parts_of(config, specs);
  const auto in_stage = [&](std::int64_t part) {
    return part < 0 ? range.first == 0 : part >= layers ? range.end == layers : part >= range.first && part < range.end;
  };
  // A tied head on a stage without the embedding holds its own copy of it, where the map puts the head.
  std::map<std::string, std::string> copied_for;  // embedding → the tied name that needs it here
  for (std::size_t i = 0; i < specs.size(); ++i)
    if (!specs[i].tied_to.empty() && in_stage(parts[i])) copied_for.emplace(specs[i].tied_to, specs[i].name);

  const DeviceMapIndex index(map);
  std::uint64_t recast_bytes = 0;  // "disk" weights cast every time their block runs
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& spec = specs[i];
    if (!in_stage(parts[i]) && !copied_for.contains(spec.name)) continue;
    if (!spec.tied_to.empty()) {
      // A tied checkpoint may still carry its own copy of the head; transformers ignores it and so do we.
      plan.ties.emplace_back(spec.name, spec.tied_to);
      const auto own = index.device_of(spec.name), target = index.device_of(spec.tied_to);
      if (own && target && *own != *target)
        plan.notes.push_back("'" + spec.name + "' is tied to '" + spec.tied_to + "' but mapped to " + own->name() +
                             " instead of " + target->name() + "; it is fetched from there when used");
      continue;
    }
    if (spec.optional && !find_source(files, config, spec.name)) continue;
    const TensorSource& source = checked_source(checkpoint, files, config, spec);
    if (!can_hold(source.dtype))
      throw Error(source.file.string() + ": tensor '" + source.name + "' has dtype " +
                  std::string(safetensors_name(source.dtype)) + ", which LibTorch cannot hold");
    auto placement = index.device_of(spec.name);
    if (!placement && !in_stage(parts[i])) placement = index.device_of(copied_for.at(spec.name));
    if (!placement)
      throw Error("no key of the device map covers tensor '" + spec.name +
                  "'; add one for it or its module (the key \"\" covers everything)");

    TensorLoad load{spec.name, &source, *placement, source.dtype, false, false, 0};
    const bool executes_on_gpu = placement->is_gpu() || plan.main_gpu.has_value();
    if (is_floating(source.dtype)) load.stored_dtype = plan.compute_dtype(executes_on_gpu);
    // float16 matrices that run on the CPU (in float32, LibTorch having no float16 kernels) stay float16:
    // the decode kernels read them as they would read their float32 cast, with half the bytes per token.
    load.as_stored = !executes_on_gpu && spec.read_as_stored && plan.cpu_dtype == DType::F32 && source.dtype == DType::F16;
    load.keep_dtype = spec.keep_dtype;
    if (load.as_stored || load.keep_dtype) load.stored_dtype = source.dtype;
    // Kernels may assume element alignment: bytes that are not aligned in the file are copied.
    const auto element = std::max<std::uint64_t>(1, dtype_bits(source.dtype) / 8);
    const bool aligned = source.file_offset % element == 0;
    // "disk" stays in the mapping as stored (cast when a block runs) unless an offload folder takes a
    // cast copy; "cpu" stays in the mapping when no cast is needed.
    if (placement->is_disk()) {
      load.offload = options.offload_folder.has_value() && load.stored_dtype != source.dtype;
      if (!load.offload && load.stored_dtype != source.dtype) recast_bytes += source.nbytes();
      if (!load.offload) load.stored_dtype = source.dtype;
    }
    load.aliases_file = load.offload || (aligned && !placement->is_gpu() && load.stored_dtype == source.dtype);
    load.stored_bytes = load.stored_dtype == DType::Bool ? source.numel() : dtype_bytes(load.stored_dtype, source.numel());
    if (options.quantize != LoadQuantization::None && spec.block_linear && placement->is_cpu() && is_floating(source.dtype)) {
      // Read from the mapping as stored, one layer at a time; RAM holds only the quantized form.
      load.quantize = true;
      load.stored_dtype = source.dtype;
      load.aliases_file = false;
      load.stored_bytes = quantized_bytes(spec.shape[0], spec.shape[1], options.quantize);
      plan.allocated[Device::cpu()] += load.stored_bytes;
    } else if (config.gptq && placement->is_cpu() && spec.name.ends_with(".qweight")) {
      plan.allocated[Device::cpu()] += gptq_packed_bytes(spec.shape, *config.gptq);
    } else if (load.aliases_file)
      plan.mapped[*placement] += load.stored_bytes;
    else
      plan.allocated[placement->is_gpu() ? *placement : Device::cpu()] += load.stored_bytes;
    plan.source_bytes += source.nbytes();
    if (load.offload) plan.offload_bytes += load.stored_bytes;
    plan.tensors.push_back(std::move(load));
  }
  if (options.quantize != LoadQuantization::None &&
      std::none_of(plan.tensors.begin(), plan.tensors.end(), [](const TensorLoad& t) { return t.quantize; }))
    throw Error(checkpoint.dir().string() + ": quantizing on load found nothing to quantize: it converts the Linear layers of the " +
                "decoder blocks the map puts on \"cpu\", and this " + config.model_type + " model has none there");
  check_group_indices(plan);
  if (plan.offload_bytes > 0)
    plan.notes.push_back(format_size(plan.offload_bytes) + " of \"disk\" weights are written to the offload folder in " +
                         std::string(torch_name(plan.compute_dtype(plan.main_gpu.has_value()))) +
                         ", so that they run without a cast");
  if (recast_bytes > 0)
    plan.notes.push_back(format_size(recast_bytes) + " of \"disk\" weights are stored in another dtype than the one that runs " +
                         "and are cast every time their block runs; an offload folder converts them once");
  return plan;
}

void check_kv_memory(const std::map<std::string, std::uint64_t>& needed, std::int64_t tokens, const Machine& machine) {
  for (const auto& [device, bytes] : needed) {
    const bool cpu = device == "cpu";
    std::optional<Device> d = cpu ? Device::cpu() : Device::parse(device);
    const DeviceInfo* info = d ? machine.find(*d) : nullptr;
    if (!info || bytes <= info->free) continue;
    throw Error(std::to_string(tokens) + " tokens need " + format_size(bytes) + " more of KV cache on " +
                (cpu ? std::string("the CPU's RAM") : "GPU " + d->name()) + " but it has " + format_size(info->free) +
                " free; ask for fewer new tokens or a shorter prompt");
  }
}

void check_memory(const LoadPlan& plan, const Machine& machine) {
  for (const auto& [device, bytes] : plan.allocated) {
    const DeviceInfo* info = machine.find(device);
    if (!info || bytes <= info->free) continue;
    const std::string what = device.is_gpu() ? "GPU " + device.name() : "the CPU's RAM";
    throw Error("loading needs " + format_size(bytes) + " on " + what + " but it has " + format_size(info->free) +
                " free; plan again with a lower max_memory for it, or move layers to " +
                (device.is_gpu() ? "\"cpu\" or \"disk\"" : "\"disk\""));
  }
  const DeviceInfo* disk = machine.find(Device::disk());
  if (plan.offload_bytes > 0 && disk && plan.offload_bytes > disk->free)
    throw Error("the offload folder needs " + format_size(plan.offload_bytes) + " but its disk has " +
                format_size(disk->free) + " free");
}

}  // namespace devicemap
