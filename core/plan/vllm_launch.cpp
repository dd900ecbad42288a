#include "plan/vllm_launch.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "format/dtype.hpp"
#include "model/model_source.hpp"
#include "plan/shell_quote.hpp"
#include "plan/units.hpp"

namespace devicemap {

std::string vllm_model_name(const std::string& ref) {
  if (ref.starts_with("catalog:"))
    if (const auto entries = catalog(); const CatalogEntry* e = find_catalog_entry(entries, ref.substr(8)))
      if (!e->source.empty()) return e->source;
  return ref;
}

VllmLaunch vllm_launch(const StagePlan& plan, const Cluster& cluster, const std::string& model, const PlanOptions& options) {
  VllmLaunch out;
  out.pipeline_parallel = static_cast<int>(plan.stages.size());
  std::size_t fewest = SIZE_MAX, most = 0;
  for (const auto& h : cluster.hosts) {
    fewest = std::min(fewest, h.machine.gpus().size());
    most = std::max(most, h.machine.gpus().size());
  }
  out.tensor_parallel = static_cast<int>(fewest == SIZE_MAX ? 0 : fewest);
  for (std::size_t i = 0; i < plan.stages.size(); ++i)
    out.layer_partition += (i ? "," : "") + std::to_string(plan.stages[i].cut.end_layer - plan.stages[i].cut.first_layer);

  std::string s = "#!/bin/sh\n";
  s += "# vLLM, one pipeline stage per host of " + (cluster.name.empty() ? std::string("the cluster") : cluster.name) + ": " +
       std::to_string(out.pipeline_parallel) + " stages of " + out.layer_partition + " decoder layers, tensor parallel over " +
       std::to_string(out.tensor_parallel) + " GPU(s) per host.\n";
  if (fewest == 0) s += "# NOTE: a host without GPUs cannot hold a vLLM stage; this launch will not start as it is.\n";
  if (fewest != most)
    s += "# NOTE: vLLM runs one tensor-parallel size on every host: the smallest host's " + std::to_string(fewest) +
         " GPU(s); the larger hosts leave GPUs idle.\n";
  for (const auto& st : plan.stages) {
    std::int64_t off = 0;
    for (const auto& u : st.plan.devices)
      if (!u.device.is_gpu()) off += u.real_weights.value_or(u.weights);
    if (off > 0 && out.tensor_parallel > 0) {
      const double per_gpu = std::ceil(static_cast<double>(off) / out.tensor_parallel / double(1ull << 30));
      s += "# NOTE: host " + st.host + "'s stage does not fit its GPUs: " + format_size(static_cast<std::uint64_t>(off)) +
           " are on its CPU or disk here; vLLM offloads with --cpu-offload-gb (about " + std::to_string(static_cast<long long>(per_gpu)) +
           " per GPU), slower than this plan predicts.\n";
    }
  }
  const std::string& head = cluster.hosts.front().name;
  s += "#\n# 1. On " + head + ":\n#      ray start --head --port=6379\n";
  for (std::size_t i = 1; i < cluster.hosts.size(); ++i)
    s += "# " + std::to_string(i + 1) + ". On " + cluster.hosts[i].name + ":\n#      ray start --address=" + head + ":6379\n";
  s += "# " + std::to_string(cluster.hosts.size() + 1) + ". Then on " + head + ", this script:\n";
  s += "VLLM_PP_LAYER_PARTITION=" + out.layer_partition + " exec vllm serve " + shell_quoted(model) + " \\\n";
  s += "  --pipeline-parallel-size " + std::to_string(out.pipeline_parallel) + " --tensor-parallel-size " +
       std::to_string(out.tensor_parallel) + " \\\n";
  s += "  --distributed-executor-backend ray";
  if (options.dtype) s += " --dtype " + std::string(torch_name(*options.dtype));
  if (options.kv.enabled()) s += " --max-model-len " + std::to_string(options.kv.context);
  s += "\n";
  out.script = s;
  return out;
}

}  // namespace devicemap
