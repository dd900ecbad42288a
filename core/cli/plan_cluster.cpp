#include "cli/plan_cluster.hpp"

#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/plan_flags.hpp"
#include "error.hpp"
#include "format/resources.hpp"
#include "model/name_ranges.hpp"
#include "plan/cluster.hpp"
#include "plan/cluster_export.hpp"
#include "plan/devicemap_launch.hpp"
#include "plan/stage_plan.hpp"
#include "plan/units.hpp"
#include "plan/vllm_launch.hpp"

namespace devicemap::cli {
namespace {

std::string rate_text(double tps) {
  char b[32];
  std::snprintf(b, sizeof b, tps >= 100 ? "%.0f" : "%.3g", tps);
  return b;
}

std::string seconds_text(double s) {
  char b[32];
  if (s >= 1) std::snprintf(b, sizeof b, "%.2f s", s);
  else if (s >= 1e-3) std::snprintf(b, sizeof b, "%.2f ms", s * 1e3);
  else std::snprintf(b, sizeof b, "%.1f us", s * 1e6);
  return b;
}

std::string devices_text(const Plan& plan) {
  std::string out;
  for (const Device d : plan.device_map.devices()) out += (out.empty() ? "" : ",") + d.name();
  return out;
}

}  // namespace

Cluster read_cluster_flag(const Args& args) {
  for (const char* clash : {"profile", "max-memory", "pin"})
    if (args.get(clash)) throw Error(std::string("--cluster: --") + clash + " does not apply (each host of the cluster file has its own)");
  std::filesystem::path cluster_file = *args.get("cluster");
  std::error_code ec;
  if (!std::filesystem::exists(cluster_file, ec) && cluster_file.extension().empty())
    cluster_file = resources_dir() / "clusters" / (cluster_file.string() + ".json");  // a bundled one by name
  return load_cluster(cluster_file);
}

StagePlan plan_cluster_stages(const Skeleton& skeleton, const Cluster& cluster, const PlanOptions& o) {
  return plan_stages(skeleton, cluster, o, {o.dtype, o.flavor, 0, false, o.quantization});
}

int plan_cluster(Invocation& inv, const Args& args, const std::string& model_arg, const ModelSource& model) {
  const std::string format = args.get("format").value_or("table");
  const Cluster cluster = read_cluster_flag(args);
  const PlanningRequest req = read_planning_flags(args, model.skeleton);
  const PlanOptions& o = req.options;
  const StagePlan plan = plan_cluster_stages(model.skeleton, cluster, o);
  const VllmLaunch vllm = vllm_launch(plan, cluster, vllm_model_name(model_arg), o);
  std::vector<DeviceMap> maps;
  for (const auto& st : plan.stages) maps.push_back(host_device_map(model.skeleton, st));

  if (auto dir = args.get("output"))
    export_cluster_plan(*dir, model.skeleton, plan, vllm,
                        devicemap_launch_script(plan, cluster, launch_path(model_arg, vllm_model_name(model_arg)),
                                                launch_path(*args.get("cluster"), *args.get("cluster")), planning_args_of(o)),
                        args.flag("force"));

  if (format == "json") {
    nlohmann::ordered_json j;
    j["cluster"] = cluster.name;
    j["fits"] = plan.fits;
    j["balanced_by"] = plan.by_time ? "time" : "bytes";
    auto& stages = j["stages"] = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < plan.stages.size(); ++i) {
      const auto& st = plan.stages[i];
      stages.push_back({{"host", st.host},
                        {"first_layer", st.cut.first_layer},
                        {"last_layer", st.cut.end_layer - 1},
                        {"embedding", st.cut.first},
                        {"head", st.cut.last},
                        {"bytes", st.bytes},
                        {"fits", st.plan.fits()},
                        {"tokens_per_second", st.speed.known ? st.speed.tokens_per_second : 0.0},
                        {"bottleneck", st.speed.bottleneck},
                        {"device_map", maps[i].to_json()}});
    }
    j["activation_bytes"] = plan.activation_bytes;
    j["transfer_seconds"] = plan.transfer_seconds;
    j["tokens_per_second"] = plan.tokens_per_second;
    j["pipelined_tokens_per_second"] = plan.pipelined_tokens_per_second;
    j["vllm"] = {{"pipeline_parallel_size", vllm.pipeline_parallel},
                 {"tensor_parallel_size", vllm.tensor_parallel},
                 {"VLLM_PP_LAYER_PARTITION", vllm.layer_partition},
                 {"script", vllm.script}};
    j["notes"] = plan.notes;
    inv.out << j.dump(2) << "\n";
    return 0;
  }

  auto& os = inv.out;
  os << "model     " << model.description << "  (" << (model.skeleton.model_type.empty() ? "?" : model.skeleton.model_type) << ", "
     << format_size(model.skeleton.total_bytes()) << ")\n";
  char link[96];
  std::snprintf(link, sizeof link, "link %.3g GB/s, %.3g us", cluster.link_gbs, cluster.link_latency_us);
  os << "cluster   " << (cluster.name.empty() ? std::string("(unnamed)") : cluster.name) << ": " << cluster.hosts.size()
     << " hosts, " << link << "\n";
  os << "balanced  by predicted " << (plan.by_time ? "time per token" : "bytes (a speed is unknown)") << "\n\n";
  os << std::left << std::setw(7) << "stage" << std::setw(14) << "host" << std::setw(16) << "layers" << std::right << std::setw(12)
     << "weights" << std::setw(14) << "per token" << "  " << std::left << std::setw(16) << "bound by" << "devices\n";
  for (std::size_t i = 0; i < plan.stages.size(); ++i) {
    const auto& st = plan.stages[i];
    std::string layers = std::to_string(st.cut.first_layer) + "-" + std::to_string(st.cut.end_layer - 1) + " (" +
                         std::to_string(st.cut.end_layer - st.cut.first_layer) + ")";
    os << std::left << std::setw(7) << i << std::setw(14) << st.host << std::setw(16) << layers << std::right << std::setw(12)
       << format_size(static_cast<std::uint64_t>(st.bytes)) << std::setw(14) << (st.seconds > 0 ? seconds_text(st.seconds) : "unknown")
       << "  " << std::left << std::setw(16) << (st.speed.bottleneck.empty() ? "-" : st.speed.bottleneck) << devices_text(st.plan)
       << (st.plan.fits() ? "" : "   DOES NOT FIT") << (st.cut.first ? "   + embedding" : "") << (st.cut.last ? "   + head" : "") << "\n";
  }
  os << "\ntransfer  " << format_size(static_cast<std::uint64_t>(plan.activation_bytes)) << " per token per link: "
     << seconds_text(plan.transfer_seconds) << "\n";
  if (plan.by_time)
    os << "decode    " << rate_text(plan.tokens_per_second) << " tok/s at batch 1 (the stages in turn, " << plan.stages.size() - 1
       << " transfer(s)); " << rate_text(plan.pipelined_tokens_per_second) << " tok/s with " << plan.stages.size()
       << " sequences in flight (predicted)\n";
  os << (plan.fits ? "fits" : "does NOT fit") << "\n";
  for (const auto& n : plan.notes) os << "note: " << n << "\n";
  os << "\nvLLM      VLLM_PP_LAYER_PARTITION=" << vllm.layer_partition << " vllm serve … --pipeline-parallel-size "
     << vllm.pipeline_parallel << " --tensor-parallel-size " << vllm.tensor_parallel << "\n";
  if (auto dir = args.get("output"))
    os << "wrote     " << plan.stages.size() << " device maps, vllm-launch.sh and devicemap-launch.sh to " << *dir << "\n";
  else
    os << "          (-o DIR writes each host's device_map.json, the whole vLLM launch, and devicemap's own)\n";
  return 0;
}

}  // namespace devicemap::cli
