#pragma once
// How to load a model by a device map, and what loading did. Torch-free: the GUI and the CLI include it.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "format/dtype.hpp"

namespace devicemap {

struct LoadProgress {
  std::size_t tensors_done = 0;
  std::size_t tensors_total = 0;
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
  std::string_view tensor;  // the tensor being loaded
};

// Quantizing a float checkpoint's block Linears as they load (run/quantize.hpp).
enum class LoadQuantization : unsigned char { None, Int8, Nf4 };
// Bytes a quantized [out, in] Linear holds (codes and scales), for the memory check before loading.
std::uint64_t quantized_bytes(std::int64_t out, std::int64_t in, LoadQuantization method);

// A pipeline stage's share of a model (run/pipeline.hpp): decoder layers [first, end). The stage with
// layer 0 also holds the embedding; the one with the last layer the final norm and the head (and, when
// the head is tied, its own copy of the embedding).
struct LayerRange {
  std::int64_t first = 0;
  std::int64_t end = 0;
};

struct LoadOptions {
  // Compute dtype. Default: config.json's torch_dtype, else the checkpoint's own. On the CPU, float16
  // runs as float32 (LibTorch has no float16 CPU kernels); bfloat16 and float32 run as they are.
  std::optional<DType> dtype;
  // Called before each tensor; return false to cancel (load then throws LoadCancelled).
  std::function<bool(const LoadProgress&)> on_progress;
  // Refuse to load when the map puts more on a device than it has free (detected: NVML for GPUs,
  // MemAvailable for RAM), instead of failing half-way or swapping.
  bool check_memory = true;
  // Accelerate-format offload folder. When set, "disk" tensors whose dtype differs from the compute
  // dtype are cast once and written there, and run from those files; others stay in the checkpoint.
  std::optional<std::filesystem::path> offload_folder;
  // Weights the map puts on "cpu" are copied into huge-page memory, as transformers materialises them; a
  // copied tensor's mapped pages are released, so the process holds it once. With this set, those that
  // need no cast run from the checkpoint's mapping instead (zero copy: an instant load, and the page
  // cache holds them once), but the page cache's small pages make a decode step slower (a 4.4 GB
  // float32 model: 5.7 against 11.7 tok/s copied, in one run of `bench generate`).
  bool map_cpu_weights = false;
  // Fetch the next block's offloaded weights on a background thread while a block runs.
  bool prefetch = true;
  // Longer inputs run through the KV cache this many tokens at a time, which bounds the attention
  // scores of a long prompt to chunk × context floats per head.
  std::int64_t prefill_chunk = 512;
  // The block Linears mapped to "cpu" are quantized as they load (int8 rows or NF4 codes), read from
  // the checkpoint's mapping one at a time, so a model that does not fit at 16 bits runs; the memory
  // check counts their quantized bytes.
  LoadQuantization quantize = LoadQuantization::None;
  // Load and run only these decoder layers (a pipeline stage); the device map need cover only them.
  std::optional<LayerRange> layers;
};

// Work stopped because the user asked (a progress callback returned false, a cancel flag was set).
struct Cancelled : Error {
  explicit Cancelled(const std::string& what = "cancelled") : Error(what) {}
};

struct LoadCancelled : Cancelled {
  LoadCancelled() : Cancelled("loading was cancelled") {}
};

struct LoadReport {
  double seconds = 0;
  DType requested_dtype = DType::F32;  // what the options or config.json asked for
  DType cpu_dtype = DType::F32;        // what runs on the CPU
  DType gpu_dtype = DType::F32;        // what runs on GPUs (when the map uses any)
  std::string main_device = "cpu";     // executes the blocks mapped to "cpu" and "disk": "cpu", "cuda:0"
  std::size_t tensors = 0;             // loaded (tied ones counted once)
  std::size_t tied = 0;                // names that share another tensor's weights
  std::map<std::string, std::uint64_t> bytes_by_device;  // by placement: "0", "cpu", "disk"
  std::uint64_t aliased_bytes = 0;     // served straight from a file mapping (zero copy)
  std::uint64_t offloaded_bytes = 0;   // written to the offload folder
  std::uint64_t reused_offload_bytes = 0;  // found there from an earlier load, and used as they were
  // "disk" tensors held in RAM instead because the offload folder is another program's (never written
  // to) and lacks them or holds them in another dtype.
  std::uint64_t foreign_offload_ram_bytes = 0;
  std::vector<std::string> notes;      // choices made for the user, one sentence each
  std::size_t packed_linears = 0;      // quantized Linears the decode kernels read packed in RAM (4-bit codes, int8 rows)
  std::uint64_t packed_bytes = 0;      // their codes and block scales
};

}  // namespace devicemap
