#pragma once
// The planning flags `plan`, `check` and `run` share: model, budgets, strategy, dtype, flavour, no-split classes,
// pins, KV reserve, hardware profile; and what their outputs share (bandwidth text, the disk sample).
#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "cli/args.hpp"
#include "model/model_source.hpp"
#include "plan/machine.hpp"
#include "plan/planner.hpp"

namespace devicemap::cli {

std::set<std::string> planning_options();  // options that take a value
std::set<std::string> planning_flags();    // options that do not
extern const char* const kPlanningHelp;

struct PlanningRequest {
  Machine machine;
  MaxMemory max_memory;
  PlanOptions options;
};

// Reads the planning flags for `model`. Budgets: --max-memory, else the profile's or this machine's
// (GPU free memory, 80% of available RAM, as Accelerate picks them); a missing "cpu" gets 80% of RAM.
PlanningRequest read_planning_flags(const Args& args, const Skeleton& model);

// The largest weight file of a checkpoint folder: what a disk read test should read.
std::filesystem::path largest_weight_file(const std::filesystem::path& dir);
// ", GPUs 1008 GB/s, RAM 60 GB/s, PCIe 25 GB/s, disk 3.5 GB/s": what a prediction rests on.
std::string bandwidth_text(const Machine& m);

}  // namespace devicemap::cli
