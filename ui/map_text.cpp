#include "ui/map_text.hpp"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "plan/units.hpp"

namespace devicemap::ui {
namespace {

std::string pyString(const std::string& s) { return nlohmann::json(s).dump(); }  // JSON strings are Python strings

std::string pyDevice(const Device& d) { return d.is_gpu() ? std::to_string(d.index) : "\"" + d.name() + "\""; }

}  // namespace

std::string deviceMapJson(const DeviceMap& map) { return map.to_json().dump(2) + "\n"; }

std::string pythonSnippet(const DeviceMap& map, const std::string& model_id, const PlanOptions& options,
                          const MaxMemory& budgets) {
  std::string out = "import torch\nfrom transformers import AutoModelForCausalLM\n\ndevice_map = {\n";
  for (const auto& [name, device] : map.entries()) out += "    " + pyString(name) + ": " + pyDevice(device) + ",\n";
  out += "}\n";
  bool disk = false;
  for (const auto& [_, d] : map.entries()) disk = disk || d.is_disk();
  out += "model = AutoModelForCausalLM.from_pretrained(\n    " + pyString(model_id) + ",\n    device_map=device_map,\n";
  if (options.dtype) out += "    torch_dtype=torch." + std::string(torch_name(*options.dtype)) + ",\n";
  if (!budgets.entries().empty()) {
    out += "    max_memory={";
    bool first = true;
    for (const auto& [d, bytes] : budgets.entries()) {
      out += (first ? "" : ", ") + pyDevice(d) + ": " + pyString(format_size_exact(bytes));
      first = false;
    }
    out += "},\n";
  }
  if (disk) out += "    offload_folder=\"offload\",\n";
  out += ")\n";
  return out;
}

std::string modelIdFor(const std::string& ref, const std::string& catalog_source) {
  if (ref.starts_with("catalog:") && !catalog_source.empty()) return catalog_source;
  // A Hugging Face cache path: …/models--org--name[/snapshots/REV]
  for (std::filesystem::path p = ref; !p.empty() && p != p.parent_path(); p = p.parent_path()) {
    const std::string leaf = p.filename().string();
    if (leaf.starts_with("models--")) {
      std::string id = leaf.substr(8);
      if (const auto sep = id.find("--"); sep != std::string::npos) id = id.substr(0, sep) + "/" + id.substr(sep + 2);
      return id;
    }
  }
  return ref;
}

}  // namespace devicemap::ui
