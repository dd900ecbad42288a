#pragma once
// Internal to the running layer: Accelerate's load_checkpoint_and_dispatch for our checkpoints. Every
// tensor the architecture needs goes from the checkpoint's mapping straight to the device the map gives:
// GPU tensors are copied there in the GPU compute dtype; "cpu" tensors alias the mapping when the dtype
// already matches (zero copy) and are cast into RAM otherwise; "disk" tensors always stay in the mapping
// and are cast or copied only when a block runs.
#include <memory>

#include "run/load_options.hpp"
#include "run/model_config.hpp"
#include "run/weights.hpp"

namespace devicemap {

class Checkpoint;
class DeviceMap;
class SafetensorsFile;
struct TensorInfo;

// Throws devicemap::Error naming the tensor, the file or the map key: a tensor missing or of the wrong
// shape for config.json, a tensor no map key covers, a GPU the map names that this machine or this
// LibTorch lacks, a dtype LibTorch cannot hold; LoadCancelled when on_progress says stop.
std::unique_ptr<Weights> load_weights(const Checkpoint& checkpoint, const ModelConfig& config,
                                      const DeviceMap& map, const LoadOptions& options, LoadReport& report);

// A CPU tensor over the tensor's bytes in the file's mapping, keeping the mapping alive while it lives.
// Falls back to a copy when the bytes are not aligned for the element type.
at::Tensor map_tensor(const SafetensorsFile& file, const TensorInfo& info);

}  // namespace devicemap
