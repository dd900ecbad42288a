#include "model/model_source.hpp"

#include <algorithm>
#include <fstream>
#include <system_error>

#include "error.hpp"
#include "format/atomic_file.hpp"
#include "format/checkpoint.hpp"
#include "format/resources.hpp"

namespace devicemap {
namespace fs = std::filesystem;

std::vector<CatalogEntry> catalog() {
  std::vector<CatalogEntry> out;
  const fs::path dir = resources_dir() / "catalog";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() != ".json") continue;
    const nlohmann::json j = read_json_file(e.path());
    if (!j.contains("config") || !j["config"].is_object())
      throw Error(e.path().string() + ": a catalog entry needs a \"config\" object");
    out.push_back({e.path().stem().string(), j.value("title", e.path().stem().string()), j.value("source", ""), j["config"]});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

const CatalogEntry* find_catalog_entry(const std::vector<CatalogEntry>& entries, std::string_view id) {
  for (const auto& e : entries)
    if (e.id == id) return &e;
  return nullptr;
}

ModelSource open_model(std::string_view what) {
  if (what.starts_with("catalog:")) {
    const auto id = what.substr(8);
    const auto entries = catalog();
    const CatalogEntry* e = find_catalog_entry(entries, id);
    if (!e) {
      std::string known;
      for (const auto& x : entries) known += (known.empty() ? "" : ", ") + x.id;
      throw Error("catalog has no model '" + std::string(id) + "' (known: " + known + ")");
    }
    return {skeleton_from_config(e->config), "catalog:" + e->id, {}};
  }
  const fs::path path{std::string(what)};
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw Error(path.string() + (ec && ec != std::errc::no_such_file_or_directory ? ": cannot be read: " + ec.message() : ": no such file or folder"));
  if (fs::is_regular_file(path, ec) && path.extension() == ".json") {
    const nlohmann::json j = read_json_file(path);
    if (j.is_object() && j.contains("params")) return {Skeleton::from_json(j, path.string()), "skeleton " + path.string(), {}};
    if (j.is_object() && j.contains("model_type")) return {skeleton_from_config(j), "config " + path.string(), {}};
    throw Error(path.string() + ": neither a skeleton (no \"params\") nor a config.json (no \"model_type\")");
  }
  const Checkpoint ckpt = Checkpoint::open(path);
  if (!ckpt.has_safetensors()) {
    // pytorch_model*.bin: the planning layer reads no pickles; the config gives the same tree.
    Skeleton s = skeleton_from_config(ckpt.config());
    s.warnings.push_back("planned from config.json: this checkpoint has only pytorch_model*.bin weights");
    return {std::move(s), "checkpoint " + ckpt.dir().string(), ckpt.dir()};
  }
  return {skeleton_from_checkpoint(ckpt), "checkpoint " + ckpt.dir().string(), ckpt.dir()};
}

}  // namespace devicemap
