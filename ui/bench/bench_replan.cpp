// How long the desktop program takes from an edit to a repainted window on a 405B-sized model
// (catalog:llama-3.1-405b, 126 layers): a budget slider step, a drop that pins a layer, an undo. Each
// figure covers re-planning, refreshing the layer table, the devices panel and the plan summary, and
// painting what changed (the event loop's own repaint); the last line repaints the whole window, an
// upper bound. Frame budget: 16 ms.
//
//   bench_replan [iterations]        (runs on the offscreen platform unless QT_QPA_PLATFORM is set)
#include <QApplication>
#include <QStandardPaths>
#include <QUndoStack>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "format/resources.hpp"
#include "plan/machine.hpp"
#include "session/session.hpp"
#include "ui/main_window.hpp"
#include "ui/placement_view.hpp"
#include "ui/session_controller.hpp"

using namespace devicemap;
using Clock = std::chrono::steady_clock;

namespace {

// Counts the placement view's paints, to show that each edit was painted.
class PaintCounter : public QObject {
 public:
  int paints = 0;
  bool eventFilter(QObject*, QEvent* e) override {
    if (e->type() == QEvent::Paint) ++paints;
    return false;
  }
};

double time_ms(const std::function<void()>& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

void report(const char* what, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ms.size())))]; };
  std::printf("  %-46s min %6.2f  median %6.2f  p95 %6.2f  max %6.2f ms\n", what, ms.front(), at(0.5), at(0.95), ms.back());
}

void scenario(const std::string& profile, int iterations) {
  ui::SessionController controller;
  controller.setMachine(load_profile(resources_dir() / "profiles" / (profile + ".json")), QStringLiteral("profile"));
  controller.openModelNow("catalog:llama-3.1-405b");
  PlanOptions o = controller.session().options();
  o.kv = {8192, 1};
  controller.setOptions(o, QStringLiteral("KV reserve"));
  ui::MainWindow window(&controller);
  window.resize(1600, 1000);
  window.show();
  QApplication::processEvents();
  PaintCounter counter;
  window.placementView()->viewport()->installEventFilter(&counter);

  const Session& s = controller.session();
  std::printf("%s on %s: %zu blocks, %zu devices, KV reserve 8192 tokens, %s\n", s.model().description.c_str(),
              s.machine().name.c_str(), s.units().size(), s.plan().devices.size(), s.plan().fits() ? "fits" : "does not fit");

  const Device gpu0 = Device::gpu(0);
  const std::uint64_t base = *s.budgets().get(gpu0);
  const std::uint64_t step = 256ull << 20;  // a slider step of a few pixels
  auto budget = [&](int i) { return base - static_cast<std::uint64_t>(1 + i % 40) * step; };
  std::vector<double> plan_only, slider, drop, undo, whole;
  const int gesture = controller.newGesture();
  const int paints_before = counter.paints;
  for (int i = 0; i < iterations; ++i) {
    plan_only.push_back(time_ms([&] { (void)plan_device_map(s.model().skeleton, s.budgets(), s.options()); }));
    slider.push_back(time_ms([&] {
      controller.setBudget(gpu0, budget(i), gesture);
      QApplication::processEvents();
    }));
  }
  const int slider_paints = counter.paints - paints_before;
  for (int i = 0; i < iterations; ++i) {
    const std::string layer = "model.layers." + std::to_string(2 + i % 120);
    drop.push_back(time_ms([&] {
      controller.pin({layer}, i % 2 ? Device::cpu() : Device::disk());
      QApplication::processEvents();
    }));
    undo.push_back(time_ms([&] {
      controller.undoStack()->undo();
      QApplication::processEvents();
    }));
  }
  for (int i = 0; i < iterations; ++i)
    whole.push_back(time_ms([&] {
      controller.setBudget(gpu0, budget(i + 1), gesture);
      window.repaint();
    }));
  report("plan_device_map alone", plan_only);
  report("slider step: re-plan, refresh, paint", slider);
  report("drop (pin a layer): re-plan, refresh, paint", drop);
  report("undo: re-plan, refresh, paint", undo);
  report("slider step + repaint of the whole window", whole);
  std::printf("  (placement view painted %d times for %d slider steps)\n", slider_paints, iterations);
}

}  // namespace

int main(int argc, char** argv) {
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  QStandardPaths::setTestModeEnabled(true);  // leave the user's settings alone
  const int iterations = argc > 1 ? std::max(5, std::atoi(argv[1])) : 200;
  scenario("8x80gb", iterations);
  scenario("1x24gb", iterations);
  return 0;
}
