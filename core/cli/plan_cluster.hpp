#pragma once
// devicemap plan MODEL --cluster FILE: the model's stages across the cluster's hosts, each host's
// device map, and the vLLM launch of the same split.
#include "cli/args.hpp"
#include "cli/cli.hpp"
#include "model/model_source.hpp"

namespace devicemap::cli {

int plan_cluster(Invocation& inv, const Args& args, const std::string& model_arg, const ModelSource& model);

}  // namespace devicemap::cli
