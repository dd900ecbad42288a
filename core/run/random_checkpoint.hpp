#pragma once
// A checkpoint of random weights for any config the runtime runs, written as it is drawn: what loading,
// planning and speed can be tried on without downloading a model. Tensors are exactly those the
// forward pass reads (tensor_layout.hpp). Torch-free.
#include <cstdint>
#include <filesystem>

#include <nlohmann/json_fwd.hpp>

#include "format/dtype.hpp"

namespace devicemap {

struct RandomCheckpointOptions {
  DType dtype = DType::F16;
  std::uint64_t seed = 0;
  std::uint64_t shard_bytes = 5'000'000'000;  // transformers' default max_shard_size, "5GB"
  double stddev = 0.02;                        // of weights; norm weights are 1 and biases 0
};

struct RandomCheckpoint {
  std::uint64_t bytes = 0;  // tensor data written
  std::size_t tensors = 0;
  std::size_t shards = 0;
};

// Writes config.json (`config` with torch_dtype set), generation_config.json (its bos/eos ids), and
// model.safetensors, or shards and model.safetensors.index.json when the weights pass shard_bytes; every
// file atomically. Throws devicemap::Error for a config the runtime cannot run or a file it cannot write.
RandomCheckpoint write_random_checkpoint(const std::filesystem::path& dir, const nlohmann::json& config,
                                         const RandomCheckpointOptions& options);

}  // namespace devicemap
