// libFuzzer target: config.json, read twice as the program reads it: into a skeleton for the planner
// (the architecture table and its size limits) and into the runtime's model configuration. Each either
// works or throws devicemap::Error, and nothing is allocated before the sizes are checked.
#include <nlohmann/json.hpp>

#include "error.hpp"
#include "model/model_source.hpp"
#include "model/skeleton.hpp"
#include "run/model_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace devicemap;
  const auto j = nlohmann::json::parse(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size, nullptr, false);
  if (j.is_discarded()) return 0;
  try {
    (void)skeleton_from_config(j).total_bytes();
  } catch (const Error&) {
  }
  try {
    (void)ModelConfig::from_json(j);
  } catch (const Error&) {
  }
  return 0;
}
