#pragma once
// Predicted decode speed of a placement, batch 1. A decode step reads every weight once (an untied
// embedding only one row), so a block costs its bytes over the bandwidth of the memory it is read
// from, or its multiply-adds over the compute rate, whichever is slower, plus a fixed dispatch cost.
// Weights that live on the CPU or on disk while their block runs on a GPU cross PCIe every token
// (Accelerate's CPU offload); disk weights come from the page cache when what the plan leaves of the
// RAM can hold them all, from the disk otherwise (a cyclic scan larger than an LRU cache never hits).
// The runner fetches block i + 1 while block i runs, so a step costs Σ max(compute_i, fetch_{i+1});
// without prefetch (as Accelerate) it costs Σ compute_i + fetch_i. Both are reported. A cast of "disk"
// weights on a CPU that also runs the block competes for the same memory, so it counts as compute.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "format/dtype.hpp"
#include "model/module_sizes.hpp"
#include "model/quantization.hpp"
#include "plan/device.hpp"

namespace devicemap {

class DeviceMap;
class Skeleton;
struct Machine;

struct SpeedInputs {
  std::optional<DType> dtype;  // compute dtype; none = as stored (float16 runs as float32 on the CPU)
  Flavor flavor = Flavor::Transformers;
  std::int64_t kv_bytes_per_layer = 0;  // KV cache of a full context; a step reads half of it on average
  // "disk" weights stored in another dtype than the compute dtype are cast every time they run unless
  // an offload folder holds converted copies.
  bool offload_folder = false;
  // bitsandbytes: a step reads the quantized bytes (real_quantized_sizes), not 16-bit matrices.
  std::optional<Quantization> quantization = std::nullopt;
};

// Where the time of one decode step goes, per resource.
struct SpeedPart {
  std::string resource;  // "GPU 0 memory", "CPU RAM", "CPU compute", "PCIe", "disk", "dispatch"
  double bytes = 0;      // read per token (0 for "CPU compute" and "dispatch")
  double seconds = 0;    // if nothing overlapped
};

struct SpeedPrediction {
  bool known = false;                 // every figure the placement needs was known
  std::vector<std::string> missing;   // what is unknown ("bandwidth of disk"): no prediction then
  double tokens_per_second = 0;       // with prefetch, as this program runs
  double tokens_per_second_without_prefetch = 0;  // fetching each block when it runs, as Accelerate
  std::string bottleneck;             // the resource with the most time
  std::vector<SpeedPart> parts;
  std::vector<std::string> assumptions;  // choices the figure rests on, one sentence each
  std::string summary() const;        // "12.3 tok/s (PCIe: 4.1 GB per token at 25 GB/s)"
};

// Dispatch cost of one block (a decoder layer, or the head) at batch 1, seconds: LibTorch's eager
// operator overhead measured on the CPU runner (stories260K decodes at 900-2650 tok/s through 7 blocks
// whose weights are too small to cost anything else), and a dozen kernel launches on a GPU.
inline constexpr double kCpuBlockOverhead = 70e-6;
inline constexpr double kGpuBlockOverhead = 60e-6;

SpeedPrediction predict_decode_speed(const Skeleton& skeleton, const DeviceMap& map, const Machine& machine,
                                     const SpeedInputs& inputs = {});

}  // namespace devicemap
