#pragma once
// Internal to the running layer: Accelerate's load_checkpoint_and_dispatch, executing a LoadPlan. Each
// tensor goes from its file's mapping (safetensors or .bin archive) straight to its device: GPU tensors
// are copied there in the GPU compute dtype; "cpu" tensors alias the mapping when the dtype already
// matches (zero copy) and are cast into RAM otherwise; "disk" tensors stay in the mapping (or, with an
// offload folder and a cast to make, in its .dat files) and are copied or cast when a block runs.
#include <memory>

#include "run/load_options.hpp"
#include "run/load_plan.hpp"
#include "run/weights.hpp"

namespace devicemap {

class Checkpoint;
struct TensorSource;

// Throws devicemap::Error when the plan names a GPU this LibTorch or this machine lacks; LoadCancelled
// when options.on_progress says stop. Fills the report's placement figures.
std::unique_ptr<Weights> load_weights(const LoadPlan& plan, const LoadOptions& options,
                                      LoadReport& report);

// A CPU tensor over the tensor's bytes in its file's mapping, keeping the mapping alive while it lives.
// Falls back to a copy when the bytes are not aligned for the element type.
at::Tensor map_tensor(const TensorSource& source);

}  // namespace devicemap
