#pragma once
// Opens what a user names as a model: a checkpoint folder (or cache folder, or .safetensors file), a
// skeleton JSON, or "catalog:NAME" for a model planned from its config.json values alone.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/skeleton.hpp"

namespace devicemap {

class Checkpoint;

// The module tree of a real checkpoint, from its headers and config.json through the architecture table.
Skeleton skeleton_from_checkpoint(const Checkpoint& checkpoint);
// The module tree a config.json implies, with tensor shapes computed from its values.
Skeleton skeleton_from_config(const nlohmann::json& config);

struct CatalogEntry {
  std::string id;       // "llama-3.1-70b"
  std::string title;    // "Llama 3.1 70B"
  std::string source;   // Hugging Face repo id
  nlohmann::json config;
};
std::vector<CatalogEntry> catalog();  // resources/catalog/*.json, sorted by id
const CatalogEntry* find_catalog_entry(const std::vector<CatalogEntry>& entries, std::string_view id);

struct ModelSource {
  Skeleton skeleton;
  std::string description;           // "checkpoint /models/x", "catalog:llama-3.1-70b", "skeleton file.json"
  std::filesystem::path checkpoint;  // the model folder when it is a real checkpoint, else empty
};
// Throws devicemap::Error naming the path or catalog id.
ModelSource open_model(std::string_view what);

}  // namespace devicemap
