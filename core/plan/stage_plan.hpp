#pragma once
// A model split across the hosts of a cluster: contiguous stages of decoder layers, one per host (the
// embedding on the first, the head on the last), balanced by predicted time per token rather than by
// bytes; inside each stage the host's own device map, planned by the planner on the host's budgets.
#include <cstddef>
#include <string>
#include <vector>

#include "model/skeleton.hpp"
#include "model/stage_skeleton.hpp"
#include "plan/cluster.hpp"
#include "plan/planner.hpp"
#include "plan/speed_model.hpp"

namespace devicemap {

struct Stage {
  std::string host;
  StageCut cut;
  Plan plan;                 // the host's plan; its device_map names the model's own modules
  SpeedPrediction speed;     // of this stage alone
  double seconds = 0;        // per token: 1 / speed, or by bytes when the speed is unknown
  std::int64_t bytes = 0;    // weights the stage holds
};

struct StagePlan {
  std::vector<Stage> stages;
  bool fits = false;                 // every host's plan fits
  bool by_time = true;               // balanced by predicted time (false: by bytes, a figure was unknown)
  double activation_bytes = 0;       // hidden state sent from one host to the next, per token
  double transfer_seconds = 0;       // per token per link: latency + activation bytes / link bandwidth
  double tokens_per_second = 0;      // batch 1: the stages in turn and every transfer
  double pipelined_tokens_per_second = 0;  // as many sequences in flight as stages: 1 / slowest stage
  std::vector<std::string> notes;
};

// Throws devicemap::Error when the model has fewer decoder layers than the cluster hosts, or the
// planner refuses a host's stage.
StagePlan plan_stages(const Skeleton& skeleton, const Cluster& cluster, const PlanOptions& options,
                      const SpeedInputs& speed = {});

// A stage's device map for its host, the way it loads its part: keys that stand for a whole module in
// the stage but only part of it in the model (the root, "model", "model.layers") are opened into the
// modules the stage holds.
DeviceMap host_device_map(const Skeleton& model, const Stage& stage);

}  // namespace devicemap
