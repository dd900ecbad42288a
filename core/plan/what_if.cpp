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

}  // namespace

std::vector<WhatIfPoint> what_if_curve(const Skeleton& s, const Machine& machine, const MaxMemory& budgets,
                                       const PlanOptions& options, const SpeedInputs& speed, WhatIfAxis axis, int points) {
  std::vector<WhatIfPoint> out;
  points = std::max(points, 2);  // GpuBudget without GPUs: one
  switch (axis) {
    case WhatIfAxis::GpuBudget: {
      // The GPUs the budgets use (a GPU left out stays out), each up to its card's size.
      std::vector<std::pair<Device, std::uint64_t>> cards;
      std::uint64_t largest = 0;
      for (const Device g : budgets.gpus()) {
        const DeviceInfo* info = machine.find(g);
        cards.emplace_back(g, info ? info->total : *budgets.get(g));
        largest = std::max(largest, cards.back().second);
      }
      if (cards.empty()) points = 1;  // no GPU: one point, the plan as it is
      for (int i = 0; i < points; ++i) {
        const auto x = points == 1 ? 0 : static_cast<std::uint64_t>(static_cast<double>(largest) * i / (points - 1));
        MaxMemory b = budgets;
        for (const auto& [g, size] : cards) b.set(g, std::min(x, size));
        out.push_back(evaluate(static_cast<double>(x), s, machine, b, options, speed));
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
      const std::vector<Device> gpus = budgets.gpus();
      for (std::size_t n = 0; n <= gpus.size(); ++n) {
        MaxMemory b = budgets;
        for (std::size_t g = n; g < gpus.size(); ++g) b.erase(gpus[g]);
        out.push_back(evaluate(static_cast<double>(n), s, machine, b, options, speed));
      }
      break;
    }
  }
  return out;
}

}  // namespace devicemap
