#pragma once
// A cluster profile: the hosts a model is split across (each a hardware profile, with budgets of its
// own or Accelerate's defaults) and the network link between them.
// {"name": "2 × 8×80 GB", "hosts": [{"name": "node0", "profile": "8x80gb"},
//   {"name": "node1", "profile": "hosts/node1.json", "max_memory": {"0": "70GiB", "cpu": "200GiB"}}],
//  "link": {"gbs": 50, "latency_us": 10}}
// A profile is a bundled name (resources/profiles), a file (relative to the cluster file) or an object.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "plan/budget.hpp"
#include "plan/machine.hpp"

namespace devicemap {

struct ClusterHost {
  std::string name;  // how the launch commands and file names call it
  Machine machine;
  MaxMemory budgets;
};

struct Cluster {
  std::string name;
  std::vector<ClusterHost> hosts;  // pipeline order: the first holds the embedding, the last the head
  double link_gbs = 0;             // between consecutive hosts, GB/s
  double link_latency_us = 0;      // one message, microseconds
};

// Throws devicemap::Error naming `source` and the key that is missing or wrong.
Cluster cluster_from_json(const nlohmann::json& j, std::string_view source, const std::filesystem::path& base);
Cluster load_cluster(const std::filesystem::path& path);

}  // namespace devicemap
