#pragma once
// A stage plan as devicemap's own launch: one `devicemap run --cluster … --rank R --master HOST0:PORT`
// per host (run/pipeline.hpp), as a POSIX shell script that takes the host's name.
#include <string>
#include <vector>

#include "plan/cluster.hpp"
#include "plan/planner.hpp"
#include "plan/stage_plan.hpp"

namespace devicemap {

// The `devicemap run` flags that make its planner plan as `options` say (--dtype, --strategy,
// --flavor, --no-split, --context, --batch, --offload-buffers, --fallback-allocation). Pins are left
// out: each host's map is planned within its stage.
std::vector<std::string> planning_args_of(const PlanOptions& options);

// A file or folder named here, as a launch script names it: its absolute path; anything else (a
// repository id, a bundled cluster's name) as `otherwise`.
std::string launch_path(const std::string& given, const std::string& otherwise);

// `model` and `cluster_file` as every host finds them; `planning_args`: the flags the plan was made
// with (--dtype bfloat16, …), which every rank must repeat to plan the same stages.
std::string devicemap_launch_script(const StagePlan& plan, const Cluster& cluster, const std::string& model,
                                    const std::string& cluster_file, const std::vector<std::string>& planning_args,
                                    int port = 29500);

}  // namespace devicemap
