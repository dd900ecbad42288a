#include "run/loader.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>

#include "error.hpp"
#include "format/mapped_file.hpp"
#include "run/cpu_cast.hpp"
#include "run/offload_folder.hpp"
#include "run/quantize.hpp"
#include "run/tensor_source.hpp"

namespace devicemap {
namespace {

c10::ScalarType scalar_type_for(DType dtype, const std::string& what) {
  const auto t = scalar_type_of(dtype);
  if (!t) throw Error(what + " has dtype " + std::string(safetensors_name(dtype)) + ", which LibTorch cannot hold");
  return *t;
}

// Where blocks run, checked against what this LibTorch and this machine have.
ExecutionPolicy make_policy(const LoadPlan& plan) {
  ExecutionPolicy p;
  p.gpu_dtype = scalar_type_for(plan.gpu_dtype, "the GPU compute dtype");
  p.cpu_dtype = scalar_type_for(plan.cpu_dtype, "the CPU compute dtype");
  for (const auto& t : plan.tensors) {
    if (!t.placement.is_gpu()) continue;
    const std::string where = "the device map puts '" + t.name + "' on GPU " + std::to_string(t.placement.index);
    if (!at::hasCUDA())
      throw Error(where + ", but this LibTorch has no CUDA; map it to \"cpu\" or \"disk\" instead");
    if (t.placement.index >= static_cast<int>(at::getNumGPUs()))
      throw Error(where + ", but this machine has " + std::to_string(at::getNumGPUs()) + " GPU(s)");
  }
  if (plan.main_gpu) {
    if (!at::hasCUDA() || *plan.main_gpu >= static_cast<int>(at::getNumGPUs()))
      throw Error("the device map names GPU " + std::to_string(*plan.main_gpu) + ", which this " +
                  (at::hasCUDA() ? "machine" : "LibTorch (no CUDA)") + " does not have");
    p.main = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(*plan.main_gpu));
  }
  return p;
}

// Copies to a GPU go through one page-locked host buffer reused for every tensor, in chunks: the driver
// reads pinned memory at full PCIe speed, while a pageable or mapped source is first bounced through a
// driver buffer of its own. A tensor crosses in its stored dtype and is cast on the GPU, which also
// halves the bytes on the link when float16 or bfloat16 becomes float32.
class PinnedStaging {
 public:
  at::Tensor upload(const at::Tensor& source, const c10::Device& device, c10::ScalarType dtype) {
    if (!source.is_contiguous()) return source.to(device, dtype);  // strided .bin tensors: rare, small
    at::Tensor out = at::empty(source.sizes(), source.options().device(device));
    const at::Tensor from = source.view({-1}).view(at::kByte), to = out.view({-1}).view(at::kByte);
    if (!buffer_.defined()) buffer_ = at::empty({kChunk}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
    for (std::int64_t done = 0, total = from.numel(); done < total; done += kChunk) {
      const std::int64_t n = std::min(kChunk, total - done);
      at::Tensor staged = buffer_.narrow(0, 0, n);
      staged.copy_(from.narrow(0, done, n));
      to.narrow(0, done, n).copy_(staged);  // synchronous: the buffer is free again afterwards
    }
    return out.scalar_type() == dtype ? out : out.to(dtype);
  }

 private:
  static constexpr std::int64_t kChunk = std::int64_t{64} << 20;
  at::Tensor buffer_;  // allocated on the first GPU tensor only: CPU-only loads pin nothing
};

// A CPU tensor over a whole mapped file (an offload .dat), keeping the mapping alive.
at::Tensor alias_mapping(std::shared_ptr<const MappedFile> file, c10::ScalarType type, const std::vector<std::int64_t>& shape) {
  void* data = const_cast<std::byte*>(file->bytes().data());
  return at::from_blob(data, shape, [file](void*) {}, at::TensorOptions().dtype(type).device(c10::kCPU));
}

// A NAME.dat an earlier load wrote is used again when the index lists it with this dtype and shape and
// it is not older than the checkpoint file it was cast from (a replaced checkpoint is cast again).
bool reusable(const OffloadFolder& folder, const std::string& name, DType dtype, const at::Tensor& source,
              const std::filesystem::path& source_file) {
  const auto* e = folder.find(name);
  if (!e || e->dtype != dtype || !std::equal(e->shape.begin(), e->shape.end(), source.sizes().begin(), source.sizes().end()))
    return false;
  std::error_code ec1, ec2;
  const auto written = std::filesystem::last_write_time(folder.data_file(name), ec1);
  const auto original = std::filesystem::last_write_time(source_file, ec2);
  return !ec1 && !ec2 && written >= original;
}

// What offload() made of a "disk" tensor.
enum class Offloaded { Written, Reused, InMemory };

// Casts a "disk" tensor once into the offload folder and returns it served from its .dat mapping. In
// another program's folder nothing is written: a tensor it holds is used as stored (mapped when its
// dtype is the one wanted, else cast into memory), one it lacks is cast into memory.
at::Tensor offload(OffloadFolder& folder, const std::string& name, const at::Tensor& source, DType dtype,
                   const std::filesystem::path& source_file, Offloaded& how) {
  const auto type = scalar_type_for(dtype, "tensor '" + name + "'");
  if (!folder.owned()) {
    const auto* e = folder.find(name);
    if (e && std::equal(e->shape.begin(), e->shape.end(), source.sizes().begin(), source.sizes().end())) {
      const at::Tensor stored = alias_mapping(folder.map(name), scalar_type_for(e->dtype, folder.dir().string() + ": '" + name + "'"), e->shape);
      how = e->dtype == dtype ? Offloaded::Reused : Offloaded::InMemory;
      return how == Offloaded::Reused ? stored : cast_on_cpu(stored, type).contiguous();
    }
    how = Offloaded::InMemory;
    return cast_on_cpu(source, type).contiguous();
  }
  const bool reused = reusable(folder, name, dtype, source, source_file);
  how = reused ? Offloaded::Reused : Offloaded::Written;
  if (reused) return alias_mapping(folder.map(name), type, folder.find(name)->shape);  // map() checks the size
  const at::Tensor cast = cast_on_cpu(source, type).contiguous();
  const std::vector<std::int64_t> shape(cast.sizes().begin(), cast.sizes().end());
  folder.write(name, dtype, shape,
               std::span<const std::byte>(static_cast<const std::byte*>(cast.data_ptr()), cast.nbytes()));
  return alias_mapping(folder.map(name), type, shape);
}

}  // namespace

at::Tensor map_tensor(const TensorSource& source) {
  const auto type = scalar_type_for(source.dtype, source.file.string() + ": tensor '" + source.name + "'");
  const auto options = at::TensorOptions().dtype(type).device(c10::kCPU);
  const auto element = static_cast<std::uintptr_t>(c10::elementSize(type));
  auto* data = const_cast<std::byte*>(source.bytes.data());
  if (reinterpret_cast<std::uintptr_t>(data) % element != 0) {
    // Kernels may assume element alignment; a copy costs RAM but is always safe.
    at::Tensor staging = at::empty({static_cast<std::int64_t>(source.bytes.size() / element)}, options);
    std::memcpy(staging.data_ptr(), data, source.bytes.size());
    return source.strides.empty() ? staging.view(source.shape) : staging.as_strided(source.shape, source.strides);
  }
  // The tensor keeps the mapping alive: its deleter owns a reference to it. Weights are never written,
  // so the read-only pages are safe to hand out as a (formally mutable) tensor.
  auto mapping = source.mapping;
  if (!source.strides.empty()) return at::from_blob(data, source.shape, source.strides, [mapping](void*) {}, options);
  return at::from_blob(data, source.shape, [mapping](void*) {}, options);
}

std::unique_ptr<Weights> load_weights(const LoadPlan& plan, const LoadOptions& options, LoadReport& report) {
  auto weights = std::make_unique<Weights>(make_policy(plan));
  const ExecutionPolicy& policy = weights->policy();
  report.requested_dtype = plan.requested_dtype;
  report.cpu_dtype = plan.cpu_dtype;
  report.gpu_dtype = plan.gpu_dtype;
  report.main_device = policy.main.str();
  report.notes = plan.notes;

  std::optional<OffloadFolder> folder;
  if (options.offload_folder && plan.offload_bytes > 0) folder.emplace(*options.offload_folder);

  LoadProgress progress;
  progress.tensors_total = plan.tensors.size();
  progress.bytes_total = plan.source_bytes;
  // A cancelled or failed load still lists the files it finished, so that the next load reuses them.
  struct IndexOnExit {
    std::optional<OffloadFolder>& folder;
    ~IndexOnExit() {
      if (!folder || !std::uncaught_exceptions()) return;
      try {
        folder->save_index();
      } catch (...) {  // the error being thrown matters more
      }
    }
  } index_on_exit{folder};
  PinnedStaging staging;
  for (const auto& load : plan.tensors) {
    progress.tensor = load.name;
    if (options.on_progress && !options.on_progress(progress)) throw LoadCancelled();
    const TensorSource& source = *load.source;
    const at::Tensor mapped = map_tensor(source);
    const auto dtype = scalar_type_for(load.stored_dtype, "tensor '" + load.name + "'");
    StoredTensor stored{mapped, load.placement, false, load.as_stored, load.keep_dtype};
    if (load.placement.is_gpu()) {
      stored.tensor = staging.upload(mapped, policy.execution_device(load.placement), dtype);
    } else if (load.quantize) {
      // The layer's only copy is its quantized form; the float weight leaves no bytes behind.
      weights->add_packed(load.name.substr(0, load.name.size() - 7), quantize_linear(mapped, options.quantize));
      stored.tensor = at::empty({0}, mapped.options());
    } else if (load.offload && folder) {
      Offloaded how = Offloaded::Written;
      stored.tensor = offload(*folder, load.name, mapped, load.stored_dtype, source.file, how);
      stored.aliases_file = how != Offloaded::InMemory;
      const auto bytes = static_cast<std::uint64_t>(stored.tensor.nbytes());
      (how == Offloaded::Written ? report.offloaded_bytes : how == Offloaded::Reused ? report.reused_offload_bytes
                                                                                     : report.foreign_offload_ram_bytes) += bytes;
    } else {
      // "cpu" weights are copied out of the mapping unless asked not to; "disk" ones stay in it.
      stored.tensor = cast_on_cpu(mapped, dtype, !options.map_cpu_weights && load.placement.is_cpu());
    }
    stored.aliases_file = stored.aliases_file || stored.tensor.data_ptr() == static_cast<const void*>(source.bytes.data());
    if (!stored.aliases_file && source.mapping) source.mapping->release(source.bytes);
    const auto bytes = load.quantize ? load.stored_bytes : static_cast<std::uint64_t>(stored.tensor.nbytes());
    report.bytes_by_device[load.placement.name()] += bytes;
    if (stored.aliases_file) report.aliased_bytes += bytes;
    weights->add(load.name, std::move(stored));
    progress.bytes_done += source.nbytes();
    ++progress.tensors_done;
  }
  if (folder) folder->save_index();
  for (const auto& [name, target] : plan.ties) weights->tie(name, target);
  report.tensors = weights->size();
  report.tied = weights->tied();
  return weights;
}

}  // namespace devicemap
