#pragma once
// What more (or less) GPU memory, context or GPUs would buy: the planner and the speed model run at
// each point of one axis, every other input as given. The Studio's What if view plots these curves.
#include <string>
#include <vector>

#include "plan/machine.hpp"
#include "plan/planner.hpp"
#include "plan/speed_model.hpp"

namespace devicemap {

enum class WhatIfAxis {
  // x: each GPU's budget in bytes, from 0 to the largest card (a card's budget stops at its size). The
  // GPUs varied are those with a budget above 0; the others keep theirs.
  GpuBudget,
  Context,    // x: tokens of context the KV reserve holds, from 0 to the model's max_position_embeddings
  // x: how many of the machine's GPUs the plan may use, from 0 to all of them: the first n keep their
  // budgets (one at 0 or without takes Accelerate's default), the rest get 0.
  GpuCount,
};

struct WhatIfPoint {
  double x = 0;
  bool planned = false;          // the planner accepted the inputs (an error leaves the point out of a plot)
  bool fits = false;             // no device over budget
  // The plan puts weights on a GPU, so the blocks it leaves on the CPU or disk run on the GPU and their
  // weights cross PCIe every token (as Accelerate runs them). A first small GPU budget can therefore
  // predict slower than none; from there on, more memory never predicts slower.
  bool uses_gpu = false;
  double tokens_per_second = 0;  // predicted decode speed, batch as given; 0 when unknown
  std::string bottleneck;        // the resource with the most time ("GPU 0 memory", "PCIe", "disk", …)
  std::string error;             // why the planner refused, when it did
};

// `points` evenly spaced values of the axis (GpuCount: one per GPU count; Context: doubling from 128
// tokens, with 0 first). `speed` carries the dtype, flavour and offload folder of the prediction; its KV
// bytes are each plan's own.
// The budgets a point of the GpuBudget and GpuCount axes plans with: what choosing that point sets.
MaxMemory with_gpu_budget(const Machine& machine, const MaxMemory& budgets, std::uint64_t bytes);
MaxMemory with_gpu_count(const Machine& machine, const MaxMemory& budgets, std::size_t n);
// Where the inputs as given lie on `axis` (the current plan's point): the largest varied GPU budget, the
// KV reserve's context, the number of GPUs with a budget above 0.
double what_if_position(WhatIfAxis axis, const Machine& machine, const MaxMemory& budgets, const PlanOptions& options);

std::vector<WhatIfPoint> what_if_curve(const Skeleton& skeleton, const Machine& machine, const MaxMemory& budgets,
                                       const PlanOptions& options, const SpeedInputs& speed, WhatIfAxis axis,
                                       int points = 17);

}  // namespace devicemap
