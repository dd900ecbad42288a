#pragma once
// The files a cluster plan is exported as: HOST.device_map.json for each host, vllm-launch.sh and
// devicemap-launch.sh (plan/devicemap_launch.hpp), in one folder, each written atomically, none over an
// existing file unless asked to.
#include <filesystem>
#include <string>
#include <vector>

#include "model/skeleton.hpp"
#include "plan/stage_plan.hpp"
#include "plan/vllm_launch.hpp"

namespace devicemap {

// The paths export_cluster_plan writes, in order (each host's map, then the two launch scripts).
std::vector<std::filesystem::path> cluster_export_files(const std::filesystem::path& folder, const StagePlan& plan);

// Creates `folder` if needed. Throws devicemap::Error, before writing anything, when `folder` is a file
// or (unless `replace`) one of the files exists.
void export_cluster_plan(const std::filesystem::path& folder, const Skeleton& model, const StagePlan& plan,
                         const VllmLaunch& launch, const std::string& devicemap_script, bool replace);

}  // namespace devicemap
