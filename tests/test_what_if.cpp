// What-if curves: the planner and the speed model along one axis. Where the model says a curve must be
// monotone, it is: once a plan uses a GPU, more GPU memory or more GPUs never predict slower; a longer
// context never predicts faster. (The first GPU can predict slower than none: the blocks left on the CPU
// then run on the GPU and their weights cross PCIe every token, as Accelerate runs them.)
#include "testkit.hpp"

#include "model/model_source.hpp"
#include "plan/machine.hpp"
#include "plan/what_if.hpp"

using namespace devicemap;

namespace {

struct Case {
  const char* model;
  const char* profile;
};
constexpr Case kCases[] = {{"catalog:llama-3.1-8b", "1x24gb"}, {"catalog:llama-3.1-70b", "2x24gb"},
                           {"catalog:mixtral-8x7b", "2x24gb"}, {"catalog:llama-3.1-405b", "8x80gb"}};

Machine profile(const char* name) { return load_profile(testkit::resources_dir() / "profiles" / (std::string(name) + ".json")); }

// Every point planned and predicted, and each step in the direction `sign` (+1 up, -1 down) or level,
// between points that agree on using a GPU (when `same_execution`).
void expect_monotone(const std::vector<WhatIfPoint>& curve, int sign, const std::string& what, bool same_execution = true) {
  QVERIFY2(curve.size() >= 2, what.c_str());
  for (std::size_t i = 0; i < curve.size(); ++i) {
    const auto& p = curve[i];
    QVERIFY2(p.planned, (what + ": " + p.error).c_str());
    QVERIFY2(p.tokens_per_second > 0, (what + ": no prediction at x=" + std::to_string(p.x)).c_str());
    if (i == 0 || (same_execution && p.uses_gpu != curve[i - 1].uses_gpu)) continue;
    const double step = (p.tokens_per_second - curve[i - 1].tokens_per_second) * sign;
    QVERIFY2(step >= -1e-9 * curve[i - 1].tokens_per_second,
             (what + ": " + std::to_string(curve[i - 1].tokens_per_second) + " tok/s at x=" + std::to_string(curve[i - 1].x) +
              " then " + std::to_string(p.tokens_per_second) + " at x=" + std::to_string(p.x))
                 .c_str());
  }
}

// One case's curve along `axis`, planned in bfloat16 on the profile's default budgets.
struct CaseCurve {
  ModelSource model;
  Machine machine;
  MaxMemory budgets;
  std::vector<WhatIfPoint> curve;
  std::string what;
};
CaseCurve bf16_curve(const Case& c, WhatIfAxis axis, const char* axis_name) {
  CaseCurve r{open_model(c.model), profile(c.profile), {}, {}, std::string(c.model) + " on " + c.profile + ", " + axis_name};
  r.budgets = default_max_memory(r.machine);
  PlanOptions o;
  o.dtype = DType::BF16;
  r.curve = what_if_curve(r.model.skeleton, r.machine, r.budgets, o, {o.dtype}, axis);
  return r;
}

}  // namespace

class WhatIfTest : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void moreGpuMemoryNeverPredictsSlower() {
    for (const auto& c : kCases) {
      const auto [model, m, budgets, curve, what] = bf16_curve(c, WhatIfAxis::GpuBudget, "GPU budget");
      expect_monotone(curve, +1, what);
      QCOMPARE(curve.front().x, 0.0);
      QCOMPARE(curve.back().x, static_cast<double>(m.devices.front().total));
      // Nothing on a GPU at 0, so nothing is bound by one; a full card beats the first budget that uses it.
      QVERIFY(!curve.front().uses_gpu);
      QVERIFY2(!curve.front().bottleneck.starts_with("GPU"), curve.front().bottleneck.c_str());
      const auto first_gpu = std::find_if(curve.begin(), curve.end(), [](const WhatIfPoint& p) { return p.uses_gpu; });
      QVERIFY(first_gpu != curve.end() && curve.back().uses_gpu);
      QVERIFY(curve.back().tokens_per_second > first_gpu->tokens_per_second);
    }
  }

  void aLongerContextNeverPredictsFaster() {
    for (const auto& c : kCases) {
      const auto [model, m, budgets, curve, what] = bf16_curve(c, WhatIfAxis::Context, "context");
      expect_monotone(curve, -1, what);
      QCOMPARE(curve.front().x, 0.0);
      QCOMPARE(curve.back().x, static_cast<double>(model.skeleton.config["max_position_embeddings"].get<std::uint64_t>()));
    }
  }

  void moreGpusNeverPredictSlower() {
    for (const auto& c : kCases) {
      const auto [model, m, budgets, curve, what] = bf16_curve(c, WhatIfAxis::GpuCount, "GPU count");
      QCOMPARE(curve.size(), budgets.gpus().size() + 1);
      expect_monotone(curve, +1, what);
    }
  }

  // The budget axis varies only the GPUs the budgets use; without a GPU it is one point.
  void theBudgetAxisKeepsToTheBudgetsGpus() {
    const auto model = open_model("catalog:llama-3.1-70b");  // larger than one card: GPU 1 would take layers
    const Machine m = profile("2x24gb");
    MaxMemory budgets = default_max_memory(m);
    budgets.erase(Device::gpu(1));
    const auto curve = what_if_curve(model.skeleton, m, budgets, {}, {}, WhatIfAxis::GpuBudget);
    QCOMPARE(curve.size(), std::size_t(17));
    // Its last point is GPU 0 at its card's size and GPU 1 still left out.
    MaxMemory full = budgets;
    full.set(Device::gpu(0), m.find(Device::gpu(0))->total);
    const Plan plan = plan_device_map(model.skeleton, full, {});
    QVERIFY(!plan.device_map.devices().empty());
    for (const auto d : plan.device_map.devices()) QVERIFY(d != Device::gpu(1));
    QCOMPARE(curve.back().tokens_per_second, predict_decode_speed(model.skeleton, plan.device_map, m).tokens_per_second);
    MaxMemory cpu_only;
    cpu_only.set(Device::cpu(), 64ull << 30);
    const auto flat = what_if_curve(model.skeleton, m, cpu_only, {}, {}, WhatIfAxis::GpuBudget);
    QCOMPARE(flat.size(), std::size_t(1));
    QVERIFY(flat[0].planned && !flat[0].uses_gpu);
  }

  // The point at the plan's own inputs is the plan's own prediction.
  void thePointAtTheCurrentBudgetIsTheCurrentPlan() {
    const auto model = open_model("catalog:llama-3.1-70b");
    const Machine m = profile("2x24gb");
    PlanOptions o;
    o.dtype = DType::BF16;
    const MaxMemory budgets = default_max_memory(m);
    const auto curve = what_if_curve(model.skeleton, m, budgets, o, {o.dtype}, WhatIfAxis::GpuCount);
    const Plan plan = plan_device_map(model.skeleton, budgets, o);
    const SpeedPrediction p = predict_decode_speed(model.skeleton, plan.device_map, m, {o.dtype});
    QCOMPARE(curve.back().tokens_per_second, p.tokens_per_second);
    QCOMPARE(curve.back().bottleneck, p.bottleneck);
    QCOMPARE(curve.back().fits, plan.fits());
  }

  // Choosing a point gives the budgets its curve planned with, and the inputs then sit at that point:
  // a GPU the count leaves out gets 0, which plans as a GPU without a budget (as Accelerate's balancing
  // counts only GPUs above 0), and the budget axis then leaves it out.
  void choosingAPointPlansAsItsCurve() {
    const auto model = open_model("catalog:llama-3.1-70b");
    const Machine m = profile("2x24gb");
    PlanOptions o;
    o.dtype = DType::BF16;
    const MaxMemory budgets = default_max_memory(m);
    const auto count = what_if_curve(model.skeleton, m, budgets, o, {o.dtype}, WhatIfAxis::GpuCount);
    QCOMPARE(count.size(), std::size_t(3));
    QCOMPARE(what_if_position(WhatIfAxis::GpuCount, m, budgets, o), 2.0);
    const MaxMemory one = with_gpu_count(m, budgets, 1);
    QCOMPARE(one.get(Device::gpu(1)), std::optional<std::uint64_t>(0));
    QCOMPARE(one.get(Device::gpu(0)), budgets.get(Device::gpu(0)));
    QCOMPARE(what_if_position(WhatIfAxis::GpuCount, m, one, o), 1.0);
    MaxMemory erased = budgets;
    erased.erase(Device::gpu(1));
    QVERIFY(plan_device_map(model.skeleton, one, o).device_map == plan_device_map(model.skeleton, erased, o).device_map);
    const Plan chosen = plan_device_map(model.skeleton, one, o);
    QCOMPARE(predict_decode_speed(model.skeleton, chosen.device_map, m, {o.dtype}).tokens_per_second, count[1].tokens_per_second);
    // The count curve from the chosen budgets is the same curve: GPU 1 comes back with its default.
    const auto again = what_if_curve(model.skeleton, m, one, o, {o.dtype}, WhatIfAxis::GpuCount);
    for (std::size_t n = 0; n < count.size(); ++n) QCOMPARE(again[n].tokens_per_second, count[n].tokens_per_second);

    // The budget axis now varies GPU 0 alone; choosing 10 GiB sets it and leaves GPU 1 at 0.
    const MaxMemory ten = with_gpu_budget(m, one, 10ull << 30);
    QCOMPARE(ten.get(Device::gpu(0)), std::optional<std::uint64_t>(10ull << 30));
    QCOMPARE(ten.get(Device::gpu(1)), std::optional<std::uint64_t>(0));
    QCOMPARE(what_if_position(WhatIfAxis::GpuBudget, m, ten, o), static_cast<double>(10ull << 30));
    // A budget never passes the card.
    QCOMPARE(with_gpu_budget(m, budgets, 1ull << 40).get(Device::gpu(1)), std::optional<std::uint64_t>(m.find(Device::gpu(1))->total));
    o.kv.context = 4096;
    QCOMPARE(what_if_position(WhatIfAxis::Context, m, budgets, o), 4096.0);
  }
};

QTEST_MAIN(WhatIfTest)
#include "test_what_if.moc"
