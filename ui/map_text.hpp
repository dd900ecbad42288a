#pragma once
// A plan as text to paste elsewhere: device_map.json, or Python that loads the model with it.
#include <string>

#include "plan/device_map.hpp"
#include "plan/planner.hpp"

namespace devicemap::ui {

// device_map.json's text, exactly as DeviceMap::save writes it.
std::string deviceMapJson(const DeviceMap& map);

// AutoModelForCausalLM.from_pretrained(model_id, device_map=…, torch_dtype=…, max_memory=…,
// offload_folder=… when something goes to disk).
std::string pythonSnippet(const DeviceMap& map, const std::string& model_id, const PlanOptions& options,
                          const MaxMemory& budgets);

// What from_pretrained should be given for a model reference: the Hugging Face repo id of a catalog
// entry or of a cache folder ("models--org--name/snapshots/…"), else the folder itself.
std::string modelIdFor(const std::string& ref, const std::string& catalog_source);

}  // namespace devicemap::ui
