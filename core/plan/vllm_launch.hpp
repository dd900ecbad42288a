#pragma once
// A stage plan as a vLLM launch: Ray on every host, then `vllm serve` with one pipeline stage per host
// (--pipeline-parallel-size, VLLM_PP_LAYER_PARTITION with each stage's layer count) and tensor
// parallelism over each host's GPUs (--tensor-parallel-size).
#include <string>

#include "plan/cluster.hpp"
#include "plan/stage_plan.hpp"

namespace devicemap {

struct VllmLaunch {
  int pipeline_parallel = 0;
  int tensor_parallel = 0;
  std::string layer_partition;  // "63,63"
  std::string script;           // a POSIX shell script with the steps as comments
};

// What `vllm serve` is given for a model the program opened as `ref`: a catalog entry's Hugging Face
// repository, else `ref` itself (a folder or a repository id).
std::string vllm_model_name(const std::string& ref);

// `model` is what `vllm serve` is given: a Hugging Face repo id or a folder.
VllmLaunch vllm_launch(const StagePlan& plan, const Cluster& cluster, const std::string& model, const PlanOptions& options);

}  // namespace devicemap
