// The What if view: its curves are the planner's and the speed model's (plan/what_if.hpp) for the
// session as it is, the current plan is the marked point, and a click on a point plans with it as one
// undo step, after which the marked point sits on the curve.
#include <QtTest/QtTest>

#include <QApplication>
#include <QChart>
#include <QChartView>
#include <QLineSeries>
#include <QUndoStack>

#include "plan/machine.hpp"
#include "plan/what_if.hpp"
#include "session/session.hpp"
#include "testkit.hpp"
#include "ui/main_window.hpp"
#include "ui/session_controller.hpp"
#include "ui/what_if_view.hpp"

using namespace devicemap;
using namespace devicemap::ui;

class TestUiWhatIf : public QObject {
  Q_OBJECT

  SessionController* controller_ = nullptr;
  MainWindow* window_ = nullptr;
  WhatIfView* view_ = nullptr;

  const Session& session() const { return controller_->session(); }

  bool waitForCurve() {
    QTest::qWait(1);  // lets a pending debounce start
    return QTest::qWaitFor([&] { return !view_->computing() && !view_->curve().empty(); }, 60000);
  }

  // What the core gives for the session as it is now.
  std::vector<WhatIfPoint> coreCurve(WhatIfAxis axis) const {
    const PlanOptions& o = session().options();
    return what_if_curve(session().model().skeleton, session().machine(), session().budgets(), o,
                         {o.dtype, o.flavor, 0, false, o.quantization}, axis);
  }

  void expectCurveIsCores(WhatIfAxis axis) {
    const auto expected = coreCurve(axis);
    QCOMPARE(view_->curve().size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      QCOMPARE(view_->curve()[i].x, expected[i].x);
      QCOMPARE(view_->curve()[i].tokens_per_second, expected[i].tokens_per_second);
      QCOMPARE(view_->curve()[i].bottleneck, expected[i].bottleneck);
    }
  }

  // The marked point is the session's own prediction, at the session's place on the axis.
  void expectCurrentPointAt(std::size_t index) {
    const auto current = view_->currentPoint();
    QVERIFY(current.has_value());
    QCOMPARE(current->y(), session().predicted_speed().tokens_per_second);
    QCOMPARE(current->x(), view_->chartPoint(index).x());
    QCOMPARE(current->y(), view_->chartPoint(index).y());
  }

  void clickPoint(std::size_t index) {
    QChart* chart = view_->chart();
    QVERIFY(!chart->series().isEmpty());
    const QPointF scene = chart->mapToPosition(view_->chartPoint(index), chart->series().front());
    QVERIFY2(chart->plotArea().contains(scene), "the point lies inside the plot");
    QTest::mouseClick(view_->chartView()->viewport(), Qt::LeftButton, {}, view_->chartView()->mapFromScene(scene));
  }

 private Q_SLOTS:
  void initTestCase() {
    QStandardPaths::setTestModeEnabled(true);
    QApplication::setOrganizationName(QStringLiteral("DeviceMapTests"));
    QApplication::setApplicationName(QStringLiteral("test_ui_what_if"));
    QSettings().clear();
  }

  void init() {
    controller_ = new SessionController;
    // Llama 3.1 70B outgrows two 24 GB cards: the curves cross from disk/PCIe into GPU memory.
    controller_->setMachine(load_profile(testkit::resources_dir() / "profiles" / "2x24gb.json"), QStringLiteral("profile"));
    controller_->openModelNow("catalog:llama-3.1-70b");
    PlanOptions o = session().options();
    o.dtype = DType::BF16;
    controller_->setOptions(o, QStringLiteral("bf16"));
    controller_->undoStack()->clear();
    window_ = new MainWindow(controller_);
    window_->show();
    view_ = window_->whatIfView();
  }

  void cleanup() {
    delete window_;
    delete controller_;
  }

  // Hidden behind another tab, the view plans nothing; brought to the front, it plots the core's curve,
  // one line per region named by what bounds it.
  void theBudgetCurveIsTheCoresAndNamesItsRegions() {
    QVERIFY(QTest::qWaitForWindowExposed(window_));
    QTest::qWait(300);
    QVERIFY(view_->visibleRegion().isEmpty());
    QVERIFY(view_->curve().empty());
    window_->showWhatIf(WhatIfAxis::GpuBudget);
    QVERIFY(waitForCurve());
    expectCurveIsCores(WhatIfAxis::GpuBudget);
    QCOMPARE(view_->curve().size(), std::size_t(17));
    QCOMPARE(view_->curve().back().x, static_cast<double>(session().machine().find(Device::gpu(0))->total));
    // The default budgets are the cards' free memory: the plan sits at the last point.
    expectCurrentPointAt(view_->curve().size() - 1);

    QStringList names;
    for (auto* s : view_->chart()->series()) names << s->name();
    QSet<QString> regions;
    for (const auto& p : view_->curve())
      if (p.fits && p.tokens_per_second > 0) regions.insert(WhatIfView::regionName(p.bottleneck));
    QVERIFY2(regions.size() >= 2, "the 70B curve crosses at least two bottlenecks");
    for (const QString& r : regions) QVERIFY2(names.contains(r), qPrintable(r + " is not in " + names.join(", ")));
    QVERIFY(names.contains(QStringLiteral("this plan")));
  }

  // A click on a point of the budget curve sets every budgeted GPU to it: one undo step, and the plan
  // then sits on that point. Undo puts the budgets back.
  void clickingABudgetPointSetsTheBudgets() {
    window_->showWhatIf(WhatIfAxis::GpuBudget);
    QVERIFY(waitForCurve());
    const MaxMemory before = session().budgets();
    const std::size_t index = 8;  // 12 GiB of a 24 GB card
    const double x = view_->curve()[index].x;
    clickPoint(index);
    QCOMPARE(controller_->undoStack()->count(), 1);
    for (const Device g : session().machine().gpus()) QCOMPARE(session().budgets().get(g), std::optional<std::uint64_t>(x));
    QCOMPARE(session().budgets().get(Device::cpu()), before.get(Device::cpu()));
    QVERIFY(waitForCurve());
    expectCurveIsCores(WhatIfAxis::GpuBudget);  // the same curve: the budget axis varies what was set
    expectCurrentPointAt(index);
    controller_->undoStack()->undo();
    QCOMPARE(session().budgets().entries(), before.entries());
  }

  // The context axis doubles from 128 tokens; choosing a point sets the KV reserve's context.
  void choosingAContextSetsTheKvReserve() {
    window_->showWhatIf(WhatIfAxis::Context);
    QVERIFY(waitForCurve());
    expectCurveIsCores(WhatIfAxis::Context);
    QCOMPARE(view_->curve()[2].x, 256.0);
    const std::size_t index = 6;  // 4096 tokens
    clickPoint(index);
    QCOMPARE(session().options().kv.context, static_cast<std::uint64_t>(view_->curve()[index].x));
    QCOMPARE(session().options().kv.context, std::uint64_t(4096));
    QVERIFY(waitForCurve());
    expectCurrentPointAt(index);
    // A context between two points is drawn between them.
    PlanOptions o = session().options();
    o.kv.context = 5000;
    controller_->setOptions(o, QStringLiteral("5000"));
    QVERIFY(waitForCurve());
    QVERIFY(view_->currentPoint()->x() > 6 && view_->currentPoint()->x() < 7);
  }

  // One GPU of two: the other's budget goes to 0, the curve stays what it was, and the plan sits at 1.
  void choosingAGpuCountLeavesTheOthersOut() {
    window_->showWhatIf(WhatIfAxis::GpuCount);
    QVERIFY(waitForCurve());
    expectCurveIsCores(WhatIfAxis::GpuCount);
    const auto curve = view_->curve();
    QCOMPARE(curve.size(), std::size_t(3));
    view_->choose(1);
    QCOMPARE(session().budgets().get(Device::gpu(1)), std::optional<std::uint64_t>(0));
    QVERIFY(waitForCurve());
    for (std::size_t n = 0; n < curve.size(); ++n) QCOMPARE(view_->curve()[n].tokens_per_second, curve[n].tokens_per_second);
    expectCurrentPointAt(1);
    controller_->undoStack()->undo();
    QVERIFY(session().budgets().get(Device::gpu(1)).value_or(0) > 0);
  }

  // Edits while the view computes are not lost: the curve drawn is the one of the last edit.
  void aBurstOfEditsEndsOnTheLastOne() {
    window_->showWhatIf(WhatIfAxis::GpuBudget);
    QVERIFY(waitForCurve());
    for (int gib = 1; gib <= 12; ++gib) controller_->setBudget(Device::gpu(1), std::uint64_t(gib) << 30);
    controller_->setBudget(Device::cpu(), 20ull << 30);
    QVERIFY(waitForCurve());
    expectCurveIsCores(WhatIfAxis::GpuBudget);
  }
};

QTEST_MAIN(TestUiWhatIf)
#include "test_ui_what_if.moc"
