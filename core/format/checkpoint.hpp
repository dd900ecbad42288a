#pragma once
// A model on disk: a folder with model.safetensors, or shards listed by model.safetensors.index.json,
// or pytorch_model*.bin (read by the running layer), plus config.json, generation_config.json and
// quantize_config.json. A Hugging Face cache folder (models--org--name, or its snapshots/REV) resolves
// to its newest snapshot (or the one refs/main names).
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "format/safetensors.hpp"

namespace devicemap {

struct CheckpointTensor {
  const TensorInfo* info = nullptr;  // points into shards()[shard].tensors()
  std::size_t shard = 0;
};

class Checkpoint {
 public:
  // `path`: a model folder, a cache folder, or a single .safetensors file. Throws devicemap::Error that
  // names what is missing or wrong (no weights, a shard listed in the index missing, a tensor not in the
  // shard the index names, invalid JSON in a config file).
  static Checkpoint open(const std::filesystem::path& path);

  // Copies re-point tensors()[i].info into their own shards; moves keep them as they are.
  Checkpoint() = default;
  Checkpoint(const Checkpoint& other);
  Checkpoint& operator=(const Checkpoint& other);
  Checkpoint(Checkpoint&&) noexcept = default;
  Checkpoint& operator=(Checkpoint&&) noexcept = default;

  const std::filesystem::path& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }                       // {} when absent
  const nlohmann::json& generation_config() const { return generation_config_; }  // {} when absent
  const std::optional<nlohmann::json>& quantize_config() const { return quantize_config_; }

  bool has_safetensors() const { return !shards_.empty(); }
  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  // pytorch_model*.bin, only when there are no safetensors (which are preferred, as transformers does).
  std::vector<std::filesystem::path> bin_files() const { return bin_files_; }

  // All tensors of all shards, in the order of the shards then of their data offsets.
  const std::vector<CheckpointTensor>& tensors() const { return tensors_; }
  const CheckpointTensor* find(std::string_view name) const;
  std::uint64_t total_bytes() const;

  // Convenience readings of config.json.
  std::string model_type() const;                 // "" when absent
  std::optional<DType> torch_dtype() const;       // config's torch_dtype (or "dtype"), when valid
  bool tie_word_embeddings() const;               // default true, as transformers' PretrainedConfig

 private:
  std::filesystem::path dir_;
  nlohmann::json config_ = nlohmann::json::object();
  nlohmann::json generation_config_ = nlohmann::json::object();
  std::optional<nlohmann::json> quantize_config_;
  std::vector<SafetensorsFile> shards_;
  std::vector<std::filesystem::path> bin_files_;
  std::vector<CheckpointTensor> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

// Resolves a Hugging Face cache layout to a snapshot folder; returns `path` unchanged otherwise.
std::filesystem::path resolve_model_folder(const std::filesystem::path& path);

}  // namespace devicemap
