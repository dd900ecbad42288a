#pragma once
// devicemap plan MODEL --cluster FILE: the model's stages across the cluster's hosts, each host's
// device map, and the vLLM launch of the same split.
#include "cli/args.hpp"
#include "cli/cli.hpp"
#include "model/model_source.hpp"
#include "plan/cluster.hpp"
#include "plan/stage_plan.hpp"

namespace devicemap::cli {

// --cluster FILE (or a bundled cluster's name); throws devicemap::Error for flags the hosts' own
// budgets replace (--profile, --max-memory, --pin).
Cluster read_cluster_flag(const Args& args);
// The stages of `skeleton` across `cluster` with the planning flags' options (--dtype, --strategy, …):
// the plan every rank of `devicemap run --cluster` makes alike.
StagePlan plan_cluster_stages(const Skeleton& skeleton, const Cluster& cluster, const PlanOptions& options);

int plan_cluster(Invocation& inv, const Args& args, const std::string& model_arg, const ModelSource& model);

}  // namespace devicemap::cli
