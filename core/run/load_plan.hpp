#pragma once
// What loading a checkpoint by a device map will do, decided before any weight is read: for each tensor
// the forward pass needs, where it comes from, where it goes, in which dtype, and whether it aliases the
// file; the bytes each device receives; the compute dtypes. Torch-free, so a GUI can show it and the
// memory check runs before anything is allocated.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "format/dtype.hpp"
#include "plan/device.hpp"
#include "run/load_options.hpp"
#include "run/model_config.hpp"

namespace devicemap {

class Checkpoint;
class DeviceMap;
class WeightFiles;
struct Machine;
struct TensorSource;

struct TensorLoad {
  std::string name;                          // module-tree name
  const TensorSource* source = nullptr;      // in LoadPlan::files
  Device placement;                          // as the device map says
  DType stored_dtype = DType::F32;           // as held on its placement
  bool aliases_file = false;                 // served from a file mapping, zero copy
  bool offload = false;                      // cast once into the offload folder, served from there
  bool as_stored = false;                    // runs on the CPU in its stored dtype (TensorSpec::read_as_stored)
  bool keep_dtype = false;                   // never cast, on any device (TensorSpec::keep_dtype)
  bool quantize = false;                     // quantized as it loads (LoadOptions::quantize)
  std::uint64_t stored_bytes = 0;
};

struct LoadPlan {
  std::shared_ptr<const WeightFiles> files;  // the checkpoint's weight files, mapped
  DType requested_dtype = DType::F32;
  DType cpu_dtype = DType::F32;  // what runs on the CPU
  DType gpu_dtype = DType::F32;  // what runs on GPUs
  std::optional<int> main_gpu;   // executes the blocks on "cpu" and "disk"; none: the CPU does
  LayerRange layers;             // the decoder layers loaded (all of them, unless a pipeline stage)
  std::vector<TensorLoad> tensors;                        // in execution order
  std::vector<std::pair<std::string, std::string>> ties;  // name → the tensor whose weights it shares
  std::map<Device, std::uint64_t> allocated;  // bytes loading allocates per device (GPU copies, RAM casts)
  std::map<Device, std::uint64_t> mapped;     // bytes left in the checkpoint's mapping, by placement
  std::uint64_t source_bytes = 0;             // bytes read from the checkpoint
  std::uint64_t offload_bytes = 0;            // bytes written to the offload folder
  std::vector<std::string> notes;             // choices made for the user, one sentence each

  // The dtype a floating tensor has where it executes: the CPU's, or the GPUs'.
  DType compute_dtype(bool on_gpu) const { return on_gpu ? gpu_dtype : cpu_dtype; }
};

// Checks the checkpoint against config.json (every tensor the forward pass needs, with the implied
// shape) and the map against the tensors (every one covered), then decides dtypes and placements.
// Allocates no tensor. Throws devicemap::Error naming the tensor, key or file.
LoadPlan plan_load(const Checkpoint& checkpoint, const ModelConfig& config, const DeviceMap& map,
                   const LoadOptions& options);

// Throws devicemap::Error naming the device when the plan allocates more there than `machine` has free
// (the disk: more offload bytes than free space).
// Devices the machine does not list (GPUs without NVML) are left to the loader.
void check_memory(const LoadPlan& plan, const Machine& machine);

// Throws devicemap::Error when a device ("cpu", "cuda:N") cannot hold `needed` more bytes of KV cache for
// `tokens` tokens. Devices the machine does not list are left to the allocator.
void check_kv_memory(const std::map<std::string, std::uint64_t>& needed, std::int64_t tokens, const Machine& machine);

}  // namespace devicemap
