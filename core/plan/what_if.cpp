#include "plan/what_if.hpp"

#include <algorithm>

#include "error.hpp"
#include "model/skeleton.hpp"

namespace devicemap {
namespace {

WhatIfPoint evaluate(double x, const Skeleton& s, const Machine& machine, const MaxMemory& budgets, const PlanOptions& options,
                     SpeedInputs speed) {
  WhatIfPoint p;
  p.x = x;
  try {
    const Plan plan = plan_device_map(s, budgets, options);
    p.planned = true;
    p.fits = plan.fits();
    const auto devices = plan.device_map.devices();
    p.uses_gpu = std::any_of(devices.begin(), devices.end(), [](Device d) { return d.is_gpu(); });
    speed.kv_bytes_per_layer = plan.kv_per_layer;
    const SpeedPrediction prediction = predict_decode_speed(s, plan.device_map, machine, speed);
    if (prediction.known) p.tokens_per_second = prediction.tokens_per_second;
    p.bottleneck = prediction.bottleneck;
  } catch (const Error& e) {
    p.error = e.what();
  }
  return p;
}

std::uint64_t max_context(const Skeleton& s) {
  const auto& c = s.config;
  for (const char* key : {"max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"})
    if (c.is_object() && c.contains(key) && c[key].is_number_unsigned() && c[key].get<std::uint64_t>() > 0)
      return c[key].get<std::uint64_t>();
  return 131072;
}

// The GPUs the budget axis varies, each with its card's size: those with a budget above 0 (a GPU left
// out, or set to 0 by the GPU count, stays out), or every budgeted one when all are at 0.
std::vector<std::pair<Device, std::uint64_t>> budgeted_cards(const Machine& machine, const MaxMemory& budgets) {
  std::vector<std::pair<Device, std::uint64_t>> cards, zero;
  for (const Device g : budgets.gpus()) {
    const DeviceInfo* info = machine.find(g);
    const std::uint64_t budget = *budgets.get(g);
    (budget > 0 ? cards : zero).emplace_back(g, info ? info->total : budget);
  }
  return cards.empty() ? zero : cards;
}

}  // namespace

MaxMemory with_gpu_budget(const Machine& machine, const MaxMemory& budgets, std::uint64_t bytes) {
  MaxMemory b = budgets;
  for (const auto& [g, size] : budgeted_cards(machine, budgets)) b.set(g, std::min(bytes, size));
  return b;
}

MaxMemory with_gpu_count(const Machine& machine, const MaxMemory& budgets, std::size_t n) {
  MaxMemory b = budgets;
  const MaxMemory defaults = default_max_memory(machine);
  const std::vector<Device> gpus = machine.gpus();
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    const auto budget = budgets.get(gpus[i]).value_or(0);
    b.set(gpus[i], i >= n ? 0 : budget > 0 ? budget : defaults.get(gpus[i]).value_or(0));
  }
  return b;
}

double what_if_position(WhatIfAxis axis, const Machine& machine, const MaxMemory& budgets, const PlanOptions& options) {
  switch (axis) {
    case WhatIfAxis::GpuBudget: {
      std::uint64_t x = 0;
      for (const auto& card : budgeted_cards(machine, budgets)) x = std::max(x, std::min(*budgets.get(card.first), card.second));
      return static_cast<double>(x);
    }
    case WhatIfAxis::Context:
      return static_cast<double>(options.kv.context);
    case WhatIfAxis::GpuCount: {
      std::size_t n = 0;
      for (const Device g : machine.gpus()) n += budgets.get(g).value_or(0) > 0;
      return static_cast<double>(n);
    }
  }
  return 0;
}

std::vector<WhatIfPoint> what_if_curve(const Skeleton& s, const Machine& machine, const MaxMemory& budgets,
                                       const PlanOptions& options, const SpeedInputs& speed, WhatIfAxis axis, int points) {
  std::vector<WhatIfPoint> out;
  points = std::max(points, 2);  // GpuBudget without GPUs: one
  switch (axis) {
    case WhatIfAxis::GpuBudget: {
      const auto cards = budgeted_cards(machine, budgets);
      std::uint64_t largest = 0;
      for (const auto& card : cards) largest = std::max(largest, card.second);
      if (cards.empty()) points = 1;  // no GPU: one point, the plan as it is
      for (int i = 0; i < points; ++i) {
        const auto x = points == 1 ? 0 : static_cast<std::uint64_t>(static_cast<double>(largest) * i / (points - 1));
        out.push_back(evaluate(static_cast<double>(x), s, machine, with_gpu_budget(machine, budgets, x), options, speed));
      }
      break;
    }
    case WhatIfAxis::Context: {
      const std::uint64_t top = max_context(s);
      std::vector<std::uint64_t> xs{0};
      for (std::uint64_t c = 128; c < top; c *= 2) xs.push_back(c);
      xs.push_back(top);
      for (const auto x : xs) {
        PlanOptions o = options;
        o.kv.context = x;
        o.kv.batch = std::max<std::uint64_t>(o.kv.batch, 1);
        out.push_back(evaluate(static_cast<double>(x), s, machine, budgets, o, speed));
      }
      break;
    }
    case WhatIfAxis::GpuCount: {
      for (std::size_t n = 0; n <= machine.gpus().size(); ++n)
        out.push_back(evaluate(static_cast<double>(n), s, machine, with_gpu_count(machine, budgets, n), options, speed));
      break;
    }
  }
  return out;
}

}  // namespace devicemap
