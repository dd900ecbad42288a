#include "run/loader.hpp"

#include <cstdint>
#include <cstring>
#include <sstream>

#include "plan/checkpoint.hpp"
#include "plan/device_map.hpp"
#include "plan/error.hpp"
#include "plan/safetensors.hpp"
#include "run/tensor_layout.hpp"

namespace devicemap {
namespace {

std::string shape_text(at::IntArrayRef shape) {
  std::ostringstream s;
  s << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

c10::ScalarType scalar_type_for(DType dtype, const std::string& what) {
  const auto t = scalar_type_of(dtype);
  if (!t) throw Error(what + " has dtype " + std::string(safetensors_name(dtype)) + ", which LibTorch cannot hold");
  return *t;
}

// The dtype asked for: the options', else config.json's torch_dtype, else the embedding's.
DType requested_dtype(const Checkpoint& checkpoint, const ModelConfig& config, const LoadOptions& options,
                      const std::vector<TensorSpec>& specs) {
  if (options.dtype) return *options.dtype;
  if (config.torch_dtype) return *config.torch_dtype;
  for (const auto& spec : specs) {
    const CheckpointTensor* t = checkpoint.find(spec.name);
    if (!t) t = checkpoint.find(alternative_checkpoint_name(config, spec.name));
    if (t && is_floating(t->info->dtype)) return t->info->dtype;
  }
  return DType::F32;
}

ExecutionPolicy make_policy(const DeviceMap& map, DType requested, LoadReport& report) {
  if (!is_floating(requested) || dtype_bits(requested) < 16)
    throw Error("compute dtype " + std::string(torch_name(requested)) +
                " is not supported (use float32, bfloat16, float16 or float64)");
  ExecutionPolicy p;
  p.gpu_dtype = *scalar_type_of(requested);
  // LibTorch has no float16 matmul on the CPU: what would run there in float16 runs in float32.
  p.cpu_dtype = requested == DType::F16 ? c10::kFloat : p.gpu_dtype;
  report.requested_dtype = requested;
  report.gpu_dtype = requested;
  report.cpu_dtype = dtype_of(p.cpu_dtype);

  std::optional<int> first_gpu;
  for (const auto& [key, device] : map.entries()) {
    if (!device.is_gpu()) continue;
    const std::string where = "the device map puts '" + key + "' on GPU " + std::to_string(device.index);
    if (!at::hasCUDA())
      throw Error(where + ", but this LibTorch has no CUDA; map it to \"cpu\" or \"disk\" instead");
    if (device.index >= static_cast<int>(at::getNumGPUs()))
      throw Error(where + ", but this machine has " + std::to_string(at::getNumGPUs()) + " GPU(s)");
    if (!first_gpu || device.index < *first_gpu) first_gpu = device.index;
  }
  if (first_gpu) p.main = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(*first_gpu));
  report.main_device = p.main.str();
  return p;
}

const CheckpointTensor& find_tensor(const Checkpoint& checkpoint, const ModelConfig& config,
                                    const TensorSpec& spec) {
  const CheckpointTensor* t = checkpoint.find(spec.name);
  if (!t) {
    const std::string alt = alternative_checkpoint_name(config, spec.name);
    if (!alt.empty()) t = checkpoint.find(alt);
  }
  if (!t || !t->info)
    throw Error(checkpoint.dir().string() + ": the checkpoint has no tensor '" + spec.name + "', which a " +
                config.model_type + " model as config.json describes needs");
  const auto& shape = t->info->shape;
  if (!std::equal(shape.begin(), shape.end(), spec.shape.begin(), spec.shape.end()))
    throw Error(checkpoint.shards().at(t->shard).path().string() + ": tensor '" + spec.name + "' has shape " +
                shape_text(shape) + " but config.json implies " + shape_text(spec.shape));
  return *t;
}

}  // namespace

at::Tensor map_tensor(const SafetensorsFile& file, const TensorInfo& info) {
  const auto type = scalar_type_for(info.dtype, file.path().string() + ": tensor '" + info.name + "'");
  const auto bytes = file.data(info);
  const auto options = at::TensorOptions().dtype(type).device(c10::kCPU);
  const auto element = static_cast<std::uintptr_t>(c10::elementSize(type));
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % element != 0) {
    // Kernels may assume element alignment; a copy costs RAM but is always safe.
    at::Tensor copy = at::empty(info.shape, options);
    std::memcpy(copy.data_ptr(), bytes.data(), bytes.size());
    return copy;
  }
  // The tensor keeps the mapping alive: its deleter owns a reference to it. Weights are never written,
  // so the read-only pages are safe to hand out as a (formally mutable) tensor.
  auto mapping = file.shared_mapping();
  return at::from_blob(const_cast<std::byte*>(bytes.data()), info.shape, [mapping](void*) {}, options);
}

std::unique_ptr<Weights> load_weights(const Checkpoint& checkpoint, const ModelConfig& config,
                                      const DeviceMap& map, const LoadOptions& options, LoadReport& report) {
  if (!checkpoint.has_safetensors())
    throw Error(checkpoint.dir().string() +
                ": no .safetensors weights; loading pytorch_model*.bin is not supported yet");
  const auto specs = expected_tensors(config);
  const DType requested = requested_dtype(checkpoint, config, options, specs);
  auto weights = std::make_unique<Weights>(make_policy(map, requested, report));
  const ExecutionPolicy& policy = weights->policy();
  if (requested == DType::F16 && policy.main.is_cpu())
    report.notes.push_back("float16 weights run as float32 on the CPU (LibTorch has no float16 CPU kernels)");

  // Look everything up before loading anything: a wrong checkpoint fails fast and allocates nothing.
  struct Job {
    const TensorSpec* spec;
    const CheckpointTensor* tensor;
    Device placement;
  };
  std::vector<Job> jobs;
  LoadProgress progress;
  for (const auto& spec : specs) {
    if (!spec.tied_to.empty()) continue;
    const auto& t = find_tensor(checkpoint, config, spec);
    const auto placement = map.device_of(spec.name);
    if (!placement)
      throw Error("no key of the device map covers tensor '" + spec.name +
                  "'; add one for it or its module (the key \"\" covers everything)");
    jobs.push_back({&spec, &t, *placement});
    progress.bytes_total += t.info->nbytes();
  }
  progress.tensors_total = jobs.size();

  for (const auto& job : jobs) {
    const auto& name = job.spec->name;
    progress.tensor = name;
    if (options.on_progress && !options.on_progress(progress)) throw LoadCancelled();
    const SafetensorsFile& file = checkpoint.shards().at(job.tensor->shard);
    const at::Tensor mapped = map_tensor(file, *job.tensor->info);
    const auto device = policy.execution_device(job.placement);
    const auto dtype = at::isFloatingType(mapped.scalar_type()) ? policy.compute_dtype(device) : mapped.scalar_type();
    StoredTensor stored{mapped, job.placement, false};
    // "disk" stays in the mapping as it is; GPUs get their copy now; "cpu" keeps the mapping when no cast
    // is needed, else holds the cast copy in RAM.
    if (job.placement.is_gpu())
      stored.tensor = mapped.to(device, dtype);
    else if (job.placement.is_cpu())
      stored.tensor = mapped.to(dtype);
    stored.aliases_file = stored.tensor.is_alias_of(mapped) && mapped.data_ptr() == file.data(*job.tensor->info).data();
    const auto bytes = static_cast<std::uint64_t>(stored.tensor.nbytes());
    report.bytes_by_device[job.placement.name()] += bytes;
    if (stored.aliases_file) report.aliased_bytes += bytes;
    weights->add(name, std::move(stored));
    progress.bytes_done += job.tensor->info->nbytes();
    ++progress.tensors_done;
  }
  for (const auto& spec : specs) {
    if (spec.tied_to.empty()) continue;
    // A tied checkpoint may still carry its own copy of the head; transformers ignores it and so do we.
    weights->tie(spec.name, spec.tied_to);
    const auto own = map.device_of(spec.name), target = map.device_of(spec.tied_to);
    if (own && target && *own != *target)
      report.notes.push_back("'" + spec.name + "' is tied to '" + spec.tied_to + "' but mapped to " + own->name() +
                             " instead of " + target->name() + "; it is fetched from there when used");
  }
  report.tensors = weights->size();
  report.tied = weights->tied();
  return weights;
}

}  // namespace devicemap
