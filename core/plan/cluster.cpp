#include "plan/cluster.hpp"

#include <cctype>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "format/atomic_file.hpp"

namespace devicemap {
namespace {

constexpr std::size_t kMaxHosts = 256;

Machine host_machine(const nlohmann::json& p, const std::string& where, const std::filesystem::path& base) {
  if (p.is_object()) return machine_from_profile(p, where);
  if (!p.is_string() || p.get<std::string>().empty()) throw Error(where + ": a profile name, file or object");
  const std::string text = p.get<std::string>();
  std::error_code unreadable;  // a name too long or not a path is no file: say so below, never throw
  if (const auto file = base / text; std::filesystem::is_regular_file(file, unreadable)) return load_profile(file);
  for (const auto& bundled : bundled_profiles())
    if (bundled.stem() == text) return load_profile(bundled);
  throw Error(where + ": '" + text + "' is neither a file (next to the cluster file) nor a bundled profile");
}

}  // namespace

Cluster cluster_from_json(const nlohmann::json& j, std::string_view source, const std::filesystem::path& base) {
  const std::string src(source);
  if (!j.is_object()) throw Error(src + ": a cluster profile is a JSON object with \"hosts\" and \"link\"");
  Cluster c;
  if (j.contains("name")) {
    if (!j["name"].is_string()) throw Error(src + ": \"name\" must be a string");
    c.name = j["name"].get<std::string>();
  }
  if (!j.contains("hosts") || !j["hosts"].is_array() || j["hosts"].empty())
    throw Error(src + ": \"hosts\" must be a non-empty list of {\"name\", \"profile\"}");
  if (j["hosts"].size() > kMaxHosts) throw Error(src + ": \"hosts\" lists " + std::to_string(j["hosts"].size()) + " hosts; at most " + std::to_string(kMaxHosts));
  std::set<std::string> names;
  for (std::size_t i = 0; i < j["hosts"].size(); ++i) {
    const auto& h = j["hosts"][i];
    const std::string where = src + ": hosts[" + std::to_string(i) + "]";
    if (!h.is_object()) throw Error(where + " must be an object with \"name\" and \"profile\"");
    ClusterHost host;
    if (!h.contains("name") || !h["name"].is_string() || h["name"].get<std::string>().empty())
      throw Error(where + ".name must be a non-empty string");
    host.name = h["name"].get<std::string>();
    // Host names become file names and shell words.
    for (const char ch : host.name)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.'))
        throw Error(where + ".name '" + host.name + "': use letters, digits, '-', '_' and '.'");
    if (!names.insert(host.name).second) throw Error(where + ".name '" + host.name + "' is used twice");
    if (!h.contains("profile")) throw Error(where + ".profile is missing");
    host.machine = host_machine(h["profile"], where + ".profile", base);
    host.budgets = h.contains("max_memory") ? MaxMemory::from_json(h["max_memory"], where + ".max_memory")
                                            : default_max_memory(host.machine);
    if (!host.budgets.has(Device::cpu())) host.budgets.set(Device::cpu(), default_max_memory(host.machine).get(Device::cpu()).value_or(0));
    for (const auto& [d, bytes] : host.budgets.entries())
      if (d.is_gpu() && !host.machine.find(d))
        throw Error(where + ".max_memory: GPU " + std::to_string(d.index) + " is not in the host's profile");
    c.hosts.push_back(std::move(host));
  }
  if (!j.contains("link") || !j["link"].is_object()) throw Error(src + ": \"link\" must be {\"gbs\": N, \"latency_us\": N}");
  const auto& link = j["link"];
  if (!link.contains("gbs") || !link["gbs"].is_number() || !(link["gbs"].get<double>() > 0) || !std::isfinite(link["gbs"].get<double>()))
    throw Error(src + ": link.gbs must be a positive number (GB/s between hosts)");
  c.link_gbs = link["gbs"].get<double>();
  if (link.contains("latency_us")) {
    if (!link["latency_us"].is_number() || link["latency_us"].get<double>() < 0 || !std::isfinite(link["latency_us"].get<double>()))
      throw Error(src + ": link.latency_us must be a number ≥ 0 (microseconds)");
    c.link_latency_us = link["latency_us"].get<double>();
  }
  return c;
}

Cluster load_cluster(const std::filesystem::path& path) {
  return cluster_from_json(read_json_file(path), path.string(), path.parent_path());
}

}  // namespace devicemap
