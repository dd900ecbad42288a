#include "plan/devicemap_launch.hpp"

#include <filesystem>
#include <system_error>

#include "format/dtype.hpp"
#include "plan/shell_quote.hpp"

namespace devicemap {

namespace {

// Inside double quotes: the characters the shell would still expand.
std::string double_quoted_text(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '$' || c == '\\' || c == '`') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string launch_path(const std::string& given, const std::string& otherwise) {
  std::error_code ec;
  if (given.empty() || !std::filesystem::exists(given, ec)) return otherwise;
  const auto absolute = std::filesystem::absolute(given, ec);
  return ec ? given : absolute.lexically_normal().string();
}

std::vector<std::string> planning_args_of(const PlanOptions& o) {
  std::vector<std::string> args;
  if (o.dtype) args.insert(args.end(), {"--dtype", std::string(torch_name(*o.dtype))});
  if (o.strategy != Strategy::Auto) args.insert(args.end(), {"--strategy", std::string(strategy_name(o.strategy))});
  if (o.flavor != Flavor::Transformers) args.insert(args.end(), {"--flavor", std::string(flavor_name(o.flavor))});
  if (o.no_split_classes) {
    std::string classes;
    for (const auto& c : *o.no_split_classes) classes += (classes.empty() ? "" : ",") + c;
    args.insert(args.end(), {"--no-split", classes});
  }
  if (o.kv.enabled()) args.insert(args.end(), {"--context", std::to_string(o.kv.context), "--batch", std::to_string(o.kv.batch)});
  if (o.offload_buffers) args.push_back("--offload-buffers");
  if (o.fallback_allocation) args.push_back("--fallback-allocation");
  return args;
}

std::string devicemap_launch_script(const StagePlan& plan, const Cluster& cluster, const std::string& model,
                                    const std::string& cluster_file, const std::vector<std::string>& planning_args, int port) {
  const std::string& head = cluster.hosts.front().name;
  std::string s = "#!/bin/sh\n";
  s += "# devicemap, one pipeline stage per host of " + (cluster.name.empty() ? std::string("the cluster") : cluster.name) + ":\n";
  std::string names;
  for (std::size_t i = 0; i < plan.stages.size(); ++i) {
    const auto& st = plan.stages[i];
    s += "#   rank " + std::to_string(i) + " on " + st.host + ": decoder layers " + std::to_string(st.cut.first_layer) + " to " +
         std::to_string(st.cut.end_layer - 1) + (st.cut.first ? ", the embedding" : "") + (st.cut.last ? ", the head" : "") + "\n";
    names += (i ? " " : "") + st.host;
  }
  s += "# Every host needs the model at " + model + " and the cluster file at " + cluster_file + ".\n";
  s += "# Start the ranks in any order (each waits for the others); " + head + " (rank 0) serves the rendezvous at port " +
       std::to_string(port) + ", reads the prompt and prints the text:\n";
  for (std::size_t i = 1; i < plan.stages.size(); ++i) s += "#   on " + plan.stages[i].host + ":  ./devicemap-launch.sh " + plan.stages[i].host + "\n";
  s += "#   on " + head + ":  ./devicemap-launch.sh " + head + " --prompt 'Once upon a time'\n";
  s += "# Flags after the host's name go to `devicemap run` (on rank 0: the prompt and generation settings).\n";
  s += "# DEVICEMAP_MASTER=HOST:PORT replaces the rendezvous address (when " + head + " is not a name the others resolve).\n";
  s += "set -eu\n";
  s += "host=\"${1:?usage: $0 HOST [devicemap run flags]; HOST is one of: " + double_quoted_text(names) + "}\"\nshift\n";
  s += "case \"$host\" in\n";
  for (std::size_t i = 0; i < plan.stages.size(); ++i) s += "  " + shell_quoted(plan.stages[i].host) + ") rank=" + std::to_string(i) + " ;;\n";
  s += "  *) echo \"$0: '$host' is not a host of this cluster (" + double_quoted_text(names) + ")\" >&2; exit 2 ;;\nesac\n";
  s += "master=\"${DEVICEMAP_MASTER:-" + double_quoted_text(head) + ":" + std::to_string(port) + "}\"\n";
  s += "exec devicemap run " + shell_quoted(model) + " --cluster " + shell_quoted(cluster_file) + " --rank \"$rank\" --master \"$master\"";
  for (const auto& a : planning_args) s += " " + shell_quoted(a);
  s += " \"$@\"\n";
  return s;
}

}  // namespace devicemap
