// libFuzzer target for cluster profiles (devicemap plan --cluster): whatever the file holds, reading it,
// cutting the demo model into one stage per host, planning each host, its device map and the vLLM
// launch either work or throw devicemap::Error; a plan that is made covers every layer exactly once.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "format/resources.hpp"
#include "fuzz_scratch.hpp"
#include "model/model_source.hpp"
#include "plan/cluster.hpp"
#include "plan/stage_plan.hpp"
#include "plan/vllm_launch.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace devicemap;
  static const Skeleton demo = open_model((resources_dir() / "demo").string()).skeleton;
  const auto j = nlohmann::json::parse(std::string_view(reinterpret_cast<const char*>(data), size), nullptr, false);
  if (j.is_discarded()) return 0;
  try {
    // Profile files are looked up next to the cluster file: an empty scratch folder here.
    const Cluster c = cluster_from_json(j, "cluster.json", fuzz::scratch());
    const StagePlan plan = plan_stages(demo, c, {});
    std::size_t next = 0;
    for (const auto& st : plan.stages) {
      if (st.cut.first_layer != next || st.cut.end_layer <= st.cut.first_layer) __builtin_trap();
      next = st.cut.end_layer;
      (void)host_device_map(demo, st);
    }
    if (next != decoder_layers(demo).size()) __builtin_trap();
    (void)vllm_launch(plan, c, "m", {}).script;
  } catch (const Error&) {
  }
  return 0;
}
