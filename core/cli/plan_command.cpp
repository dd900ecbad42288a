// devicemap plan MODEL [planning flags] [-o device_map.json] [--format table|json]
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/plan_cluster.hpp"
#include "cli/plan_flags.hpp"
#include "error.hpp"
#include "model/architecture.hpp"
#include "model/name_ranges.hpp"
#include "plan/bandwidth.hpp"
#include "plan/speed_model.hpp"
#include "plan/units.hpp"

namespace devicemap::cli {
namespace {

const char* const kUsage =
    "usage: devicemap plan MODEL_DIR|SKELETON.json|catalog:NAME [options]\n"
    "Plans where every module goes, as Accelerate's infer_auto_device_map would.\n\n";

std::string cell(std::optional<std::int64_t> bytes) { return bytes ? format_size(static_cast<std::uint64_t>(*bytes)) : "unlimited"; }

void print_prediction(std::ostream& os, const Skeleton& skeleton, const PlanningRequest& req, const Plan& plan,
                      bool offload_folder) {
  const SpeedPrediction p = predict_decode_speed(skeleton, plan.device_map, req.machine,
                                                 {req.options.dtype, req.options.flavor, plan.kv_per_layer, offload_folder,
                                                  req.options.quantization});
  os << "decode    " << p.summary();
  if (p.known) {
    char b[96];
    std::snprintf(b, sizeof b,
                  p.tokens_per_second_without_prefetch >= 100 ? "; %.0f tok/s without prefetch, as Accelerate runs it"
                                                               : "; %.3g tok/s without prefetch, as Accelerate runs it",
                  p.tokens_per_second_without_prefetch);
    os << b;
  }
  os << "  (predicted, batch 1)\n";
  for (const auto& a : p.assumptions) os << "          assuming " << a << "\n";
}

void print_table(std::ostream& os, const ModelSource& model, const PlanningRequest& req, const Plan& plan,
                 bool offload_folder) {
  const auto& o = req.options;
  os << "model     " << model.description << "  (" << (model.skeleton.model_type.empty() ? "?" : model.skeleton.model_type)
     << ", " << format_size(static_cast<std::uint64_t>(plan.total_bytes)) << ")\n";
  os << "machine   " << req.machine.name << (req.machine.simulated ? " (simulated)" : "");
  os << bandwidth_text(req.machine);
  os << "\n";
  const std::string dtype = o.dtype ? std::string(torch_name(*o.dtype)) : o.quantization ? "float16 (bitsandbytes' default)" : "as stored";
  os << "strategy  " << strategy_name(o.strategy) << ", dtype " << dtype
     << " (" << flavor_name(o.flavor) << " accounting)";
  if (o.quantization)
    os << "\nquantized " << o.quantization->name() << ": planned as transformers sizes it (" << format_size(static_cast<std::uint64_t>(plan.total_bytes))
       << ", budgets at 90%), really " << format_size(static_cast<std::uint64_t>(plan.real_total_bytes)) << "; 'used' is real";
  if (plan.kv_per_layer) os << ", KV cache " << format_size(static_cast<std::uint64_t>(plan.kv_per_layer)) << " per layer";
  os << "\n\n";
  os << std::left << std::setw(7) << "device" << std::right << std::setw(12) << "budget" << std::setw(12) << "planned"
     << std::setw(12) << "reserve" << std::setw(12) << "kv cache" << std::setw(12) << "used" << "  modules\n";
  for (const auto& u : plan.devices) {
    if (u.modules.empty() && u.device.is_disk()) continue;
    os << std::left << std::setw(7) << u.device.name() << std::right << std::setw(12) << cell(u.budget) << std::setw(12)
       << cell(u.planned) << std::setw(12) << format_size(static_cast<std::uint64_t>(u.offload_reserve)) << std::setw(12)
       << format_size(static_cast<std::uint64_t>(u.kv_cache)) << std::setw(12)
       << format_size(static_cast<std::uint64_t>(u.real_weights.value_or(u.weights)))
       << "  ";
    const auto ranges = compress_name_ranges(u.modules);
    for (std::size_t i = 0; i < ranges.size(); ++i) os << (i ? ", " : "") << ranges[i];
    if (ranges.empty()) os << "-";
    if (u.shortfall() > 0) os << "   OVER BUDGET by " << format_size(static_cast<std::uint64_t>(u.shortfall()));
    os << "\n";
  }
  os << "\n" << (plan.fits() ? "fits" : "does NOT fit") << "\n";
  print_prediction(os, model.skeleton, req, plan, offload_folder);
  for (const auto& n : plan.notes) os << "note: " << n << "\n";
  for (const auto& w : model.skeleton.warnings) os << "warning: " << w << "\n";
  for (const auto& w : plan.warnings) os << "warning: " << w << "\n";
  if (const std::string gap = runtime_gap(model.skeleton.model_type); !gap.empty())
    os << "note: " << (model.skeleton.model_type.empty() ? std::string("this model") : model.skeleton.model_type)
       << " plans but does not run here: " << gap << "\n";
  for (const auto& i : plan.info) os << "info: " << i << "\n";
}

}  // namespace

int plan_command(Invocation& inv) {
  auto options = planning_options();
  options.insert({"o", "output", "format", "cluster"});
  auto flags = planning_flags();
  flags.insert({"help", "force"});
  std::vector<std::string> argv;
  for (const auto& a : inv.args) argv.push_back(a == "-o" ? "--output" : a);
  const Args args(argv, options, flags);
  if (args.flag("help")) {
    inv.out << kUsage << kPlanningHelp
            << "  -o, --output FILE                        write device_map.json (atomically; --force to replace)\n"
            << "  --cluster FILE|NAME                      split across hosts (hosts' profiles, link): stages balanced by\n"
            << "                                           predicted time, one device map per host (-o DIR) and a vLLM launch\n"
            << "  --format table|json                      json prints exactly the device_map.json content\n";
    return 0;
  }
  if (args.positionals().size() != 1) throw Error("plan takes one model (a folder, a skeleton .json or catalog:NAME); see --help");
  const std::string format = args.get("format").value_or("table");
  if (format != "table" && format != "json") throw Error("--format: '" + format + "' is not table or json");

  const ModelSource model = open_model(args.positionals()[0]);
  if (args.get("cluster")) return plan_cluster(inv, args, args.positionals()[0], model);
  PlanningRequest req = read_planning_flags(args, model.skeleton);
  if (format == "table" && !req.machine.simulated) measure_bandwidths(req.machine, largest_weight_file(model.checkpoint));
  const Plan plan = plan_device_map(model.skeleton, req.max_memory, req.options);

  if (auto out = args.get("output")) {
    const std::filesystem::path path = *out;
    if (std::filesystem::exists(path) && !args.flag("force"))
      throw Error(path.string() + " exists; pass --force to replace it (the old file is never half-written)");
    plan.device_map.save(path);
  }
  if (format == "json")
    inv.out << plan.device_map.to_json().dump(2) << "\n";
  else
    print_table(inv.out, model, req, plan, args.get("offload-folder").has_value());
  return 0;
}

}  // namespace devicemap::cli
