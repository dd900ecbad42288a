// devicemap bench plan|load|generate [--format json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/args.hpp"
#include "cli/bench.hpp"
#include "cli/commands.hpp"
#include "error.hpp"
#include "format/resources.hpp"
#include "model/model_source.hpp"
#include "plan/machine.hpp"
#include "plan/planner.hpp"
#include "plan/speed_model.hpp"
#include "plan/what_if.hpp"

namespace devicemap::cli {

void print_measurement(std::ostream& os, const Measurement& m, bool json) {
  if (json) {
    nlohmann::ordered_json j{{"name", m.name}, {"value", m.value}, {"unit", m.unit}};
    if (m.bound) j["bound"] = *m.bound;
    if (m.ratio) j["ratio"] = *m.ratio;
    if (!m.note.empty()) j["note"] = m.note;
    os << j.dump() << "\n";
    return;
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-52s %12.2f %-6s", m.name.c_str(), m.value, m.unit.c_str());
  os << buf;
  if (m.bound) {
    std::snprintf(buf, sizeof buf, "  bound %10.2f  ratio %8.2f", *m.bound, m.ratio.value_or(0));
    os << buf;
  }
  if (!m.note.empty()) os << "  (" << m.note << ")";
  os << "\n";
}

double median_us(int runs, const std::function<void()>& fn) {
  std::vector<double> t;
  t.reserve(static_cast<std::size_t>(runs));
  for (int i = 0; i < runs; ++i) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  std::nth_element(t.begin(), t.begin() + static_cast<long>(t.size() / 2), t.end());
  return t[t.size() / 2];
}

int bench_plan(const std::vector<std::string>& argv, std::ostream& out) {
  const Args args(argv, {"format", "runs"}, {});
  const bool json = args.get("format").value_or("table") == "json";
  const int runs = static_cast<int>(args.get_u64("runs", 200));
  // Accelerate 1.15 on the reference machine: ~10 ms to plan a 70B model, +7–10 ms for balancing.
  constexpr double kAccelerateUs = 10000, kAccelerateBalancedUs = 17000;
  struct Case {
    const char* model;
    MaxMemory budget;
  };
  std::vector<Case> cases{{"llama-2-70b", MaxMemory::parse("0=40GiB,1=40GiB,cpu=200GiB")},
                          {"bloom-176b", MaxMemory::parse("0=80GiB,1=80GiB,2=80GiB,cpu=200GiB")},
                          {"llama-3.1-405b", MaxMemory::parse("0=80GiB,1=80GiB,2=80GiB,3=80GiB,cpu=512GiB")}};
  for (const auto& c : cases) {
    const Skeleton s = open_model(std::string("catalog:") + c.model).skeleton;
    // The bound: one pass over every tensor to size the modules, the least any planner must do.
    const double bound = median_us(runs, [&] { volatile auto t = compute_module_sizes(s).total(); (void)t; });
    for (Strategy st : {Strategy::Sequential, Strategy::Balanced}) {
      PlanOptions o;
      o.strategy = st;
      const double us = median_us(runs, [&] { volatile auto n = plan_device_map(s, c.budget, o).raw_map.entries().size(); (void)n; });
      const double ref = st == Strategy::Sequential ? kAccelerateUs : kAccelerateBalancedUs;
      print_measurement(out, {std::string("plan.") + c.model + "." + std::string(strategy_name(st)), us, "us", bound, us / bound,
                              "bound: sizing every tensor once; Accelerate ~" + std::to_string(static_cast<int>(ref / 1000)) +
                                  " ms, " + std::to_string(static_cast<int>(ref / us)) + "x slower"},
                        json);
    }
  }
  // A What-if curve of Llama 3.1 405B on 8×80 GB: the planner and the speed model at every point.
  const Skeleton s = open_model("catalog:llama-3.1-405b").skeleton;
  const Machine m = load_profile(resources_dir() / "profiles" / "8x80gb.json");
  const MaxMemory budgets = default_max_memory(m);
  PlanOptions o;
  o.dtype = DType::BF16;
  const int curve_runs = std::max(1, runs / 40);
  // The bound: one plan and one prediction per point, timed alone.
  const double one_point = median_us(curve_runs * 4, [&] {
    const Plan p = plan_device_map(s, budgets, o);
    volatile double v = predict_decode_speed(s, p.device_map, m, {o.dtype, o.flavor, p.kv_per_layer}).tokens_per_second;
    (void)v;
  });
  for (const auto& [axis, name] : {std::pair{WhatIfAxis::GpuBudget, "gpu_budget"}, std::pair{WhatIfAxis::Context, "context"},
                                   std::pair{WhatIfAxis::GpuCount, "gpu_count"}}) {
    std::size_t points = 0;
    const double us = median_us(curve_runs, [&] { points = what_if_curve(s, m, budgets, o, {o.dtype}, axis).size(); });
    const double bound = one_point * static_cast<double>(points);
    print_measurement(out, {std::string("what_if.llama-3.1-405b.8x80gb.") + name, us / 1000, "ms", bound / 1000, us / bound,
                            "bound: " + std::to_string(points) + " points x one plan and prediction"},
                      json);
  }
  return 0;
}

int bench_command(Invocation& inv) {
  if (inv.args.empty() || inv.args[0] == "--help") {
    inv.out << "usage: devicemap bench plan|kernels|load|generate [--format json] [ARGS]\n"
               "  plan                 planning time for 70B/176B/405B-sized catalog models (median, µs), What-if curves\n"
               "  kernels              decode kernels' weight streaming, per dtype and shape, vs memory read\n"
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS
               "  load MODEL           load throughput vs a plain read of the same files; peak RSS vs CPU bytes\n"
               "  generate MODEL [--tokens N] [--prefill N] [--cases decode,mapped,libtorch,half_disk]\n"
               "                       decode tok/s (kernels and LibTorch) vs weight bytes per token over measured\n"
               "                       memory bandwidth; prefill tok/s of an N-token prompt\n"
               "  generate MODEL --cluster FILE\n"
               "                       the model as pipeline stages of the cluster's hosts, every rank on this\n"
               "                       machine, vs one process; the per-token cost of the transfers\n"
               "every ratio is value / bound (for a rate: the fraction of the bound reached)\n"
#endif
        ;
    return inv.args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(inv.args.begin() + 1, inv.args.end());
  if (inv.args[0] == "plan") return bench_plan(rest, inv.out);
  if (inv.args[0] == "kernels") return bench_kernels(rest, inv.out);
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS
  if (inv.args[0] == "load") return bench_load(rest, inv.out);
  if (inv.args[0] == "generate") return bench_generate(rest, inv.out);
#endif
  throw Error("bench: unknown measurement '" + inv.args[0] + "' (plan, kernels, load, generate)");
}

}  // namespace devicemap::cli
