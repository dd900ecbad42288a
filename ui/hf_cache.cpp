#include "ui/hf_cache.hpp"

#include <algorithm>
#include <cstdlib>
#include <system_error>

#include "format/checkpoint.hpp"

namespace devicemap::ui {
namespace fs = std::filesystem;

fs::path huggingFaceHubDir() {
  if (const char* hub = std::getenv("HF_HUB_CACHE"); hub && *hub) return hub;
  if (const char* home = std::getenv("HF_HOME"); home && *home) return fs::path(home) / "hub";
  const char* user = std::getenv("HOME");
  return fs::path(user ? user : ".") / ".cache" / "huggingface" / "hub";
}

std::vector<CachedModel> scanHuggingFaceCache(const fs::path& hub) {
  std::vector<CachedModel> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(hub, ec)) {
    const std::string leaf = entry.path().filename().string();
    if (!leaf.starts_with("models--") || !entry.is_directory(ec)) continue;
    CachedModel m;
    m.folder = entry.path();
    m.repo_id = leaf.substr(8);
    if (const auto sep = m.repo_id.find("--"); sep != std::string::npos)
      m.repo_id = m.repo_id.substr(0, sep) + "/" + m.repo_id.substr(sep + 2);
    for (const auto& blob : fs::recursive_directory_iterator(m.folder / "blobs", ec))
      if (blob.is_regular_file(ec)) m.bytes += blob.file_size(ec);
    try {
      m.snapshot = resolve_model_folder(m.folder);
    } catch (const std::exception&) {
      m.snapshot = m.folder;  // a broken cache entry: listed, and opening it says what is wrong
    }
    for (const auto& f : fs::directory_iterator(m.snapshot, ec)) {
      const std::string name = f.path().filename().string();
      if (name.ends_with(".safetensors") || (name.starts_with("pytorch_model") && name.ends_with(".bin"))) m.has_weights = true;
    }
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const CachedModel& a, const CachedModel& b) { return a.repo_id < b.repo_id; });
  return out;
}

}  // namespace devicemap::ui
