#pragma once
// Models in the local Hugging Face cache (hub/models--org--name): repo id, newest snapshot, bytes on disk.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace devicemap::ui {

struct CachedModel {
  std::string repo_id;              // "meta-llama/Llama-3.1-8B"
  std::filesystem::path folder;     // …/models--meta-llama--Llama-3.1-8B
  std::filesystem::path snapshot;   // the snapshot that would be opened
  std::uint64_t bytes = 0;          // blobs on disk
  bool has_weights = false;         // *.safetensors or pytorch_model*.bin in the snapshot
};

// $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
std::filesystem::path huggingFaceHubDir();

// Lists the models under `hub`, sorted by repo id. A missing or unreadable folder gives none.
std::vector<CachedModel> scanHuggingFaceCache(const std::filesystem::path& hub);

}  // namespace devicemap::ui
