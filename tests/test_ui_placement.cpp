// The desktop program's placement editing, driven as a person would: budget sliders, clicks and drags
// on the placement view, the layer table's device cell, undo. Demo model on two small simulated GPUs.
#include <QtTest/QtTest>

#include <QAbstractItemModelTester>
#include <QApplication>
#include <QDoubleSpinBox>
#include <QItemSelectionModel>
#include <QSlider>
#include <QTableView>

#include <fstream>

#include "session/session.hpp"
#include "testkit.hpp"
#include "ui/budget_editor.hpp"
#include "ui/device_panel.hpp"
#include "ui/device_style.hpp"
#include "ui/layer_table_model.hpp"
#include "ui/main_window.hpp"
#include "ui/placement_view.hpp"
#include "ui/session_controller.hpp"

using namespace devicemap;
using namespace devicemap::ui;

namespace {

int unitIndex(const Session& s, const std::string& name) {
  for (std::size_t i = 0; i < s.units().size(); ++i)
    if (s.units()[i].name == name) return static_cast<int>(i);
  return -1;
}

std::string readFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

class TestUiPlacement : public QObject {
  Q_OBJECT

  SessionController* controller_ = nullptr;
  MainWindow* window_ = nullptr;
  QAbstractItemModelTester* tester_ = nullptr;

  const Session& session() const { return controller_->session(); }
  PlacementView* view() const { return window_->placementView(); }

 private Q_SLOTS:
  void initTestCase() {
    QStandardPaths::setTestModeEnabled(true);
    QApplication::setOrganizationName(QStringLiteral("DeviceMapTests"));
    QApplication::setApplicationName(QStringLiteral("test_ui_placement"));
    QSettings().clear();
  }

  void init() {
    controller_ = new SessionController;
    controller_->setMachine(testkit::two_small_gpus(), QStringLiteral("test machine"));
    controller_->openModelNow(testkit::demo_dir().string());
    window_ = new MainWindow(controller_);
    // Qt's own checks of the table model's signals and indexes, through every test.
    tester_ = new QAbstractItemModelTester(window_->layerModel(), QAbstractItemModelTester::FailureReportingMode::QtTest, window_);
    window_->resize(1400, 900);
    window_->show();
    QVERIFY(QTest::qWaitForWindowExposed(window_));
    QVERIFY(session().plan_error().empty());
  }

  void cleanup() {
    delete window_;
    delete controller_;
  }

  void sliderDragChangesBudgetAsPlannerDoesAndUndoesInOneStep() {
    BudgetEditor* editor = window_->devicePanel()->editor(Device::gpu(0));
    QVERIFY(editor);
    const auto original = *session().budgets().get(Device::gpu(0));
    const int steps_before = controller_->undoStack()->count();
    QSlider* slider = editor->slider();
    slider->setSliderDown(true);  // a drag: pressed, several values, released
    for (int v : {slider->value() - 100, slider->value() - 600, slider->value() - 1700}) slider->setValue(v);
    slider->setSliderDown(false);
    const std::uint64_t expected_bytes = static_cast<std::uint64_t>(slider->value()) * editor->step();
    QCOMPARE(*session().budgets().get(Device::gpu(0)), expected_bytes);
    QVERIFY(expected_bytes < original);

    // Exactly what the planner gives for the same inputs.
    MaxMemory budgets = session().budgets();
    const Plan expected = plan_device_map(session().model().skeleton, budgets, session().options());
    QCOMPARE(session().plan().device_map.to_json().dump(), expected.device_map.to_json().dump());
    for (std::size_t i = 0; i < expected.devices.size(); ++i)
      QCOMPARE(session().plan().devices[i].weights, expected.devices[i].weights);
    // The picture follows: every block is in the column of its device.
    for (std::size_t u = 0; u < session().units().size(); ++u) {
      const QRect block = view()->blockRect(static_cast<int>(u));
      QVERIFY(view()->columnRect(session().units()[u].device).contains(block.center()));
    }
    // The devices panel shows it.
    QCOMPARE(editor->bytes(), expected_bytes);

    QCOMPARE(controller_->undoStack()->count(), steps_before + 1);  // one drag, one step
    controller_->undoStack()->undo();
    QCOMPARE(*session().budgets().get(Device::gpu(0)), original);
    QCOMPARE(editor->bytes(), original);
  }

  void spinBoxSetsAnExactBudget() {
    BudgetEditor* editor = window_->devicePanel()->editor(Device::cpu());
    editor->spinBox()->setValue(editor->spinBox()->value() / 2);
    const auto bytes = *session().budgets().get(Device::cpu());
    QCOMPARE(editor->bytes(), bytes);
    QCOMPARE(session().plan().device_map.to_json().dump(),
             plan_device_map(session().model().skeleton, session().budgets(), session().options()).device_map.to_json().dump());
  }

  void dragPinsBlockExportsExpectedMapAndUndoRestores() {
    testkit::TempDir dir;
    QCOMPARE(window_->exportDeviceMap(QString::fromStdString((dir / "before.json").string())), QString());
    const int unit = unitIndex(session(), "model.layers.1");
    QVERIFY(unit >= 0);
    QVERIFY(session().units()[static_cast<std::size_t>(unit)].device != Device::disk());

    QWidget* vp = view()->viewport();
    const QPoint from = view()->blockRect(unit).center();
    const QPoint to = view()->columnRect(Device::disk()).center();
    QVERIFY(vp->rect().contains(from));
    QVERIFY(vp->rect().contains(to));
    QTest::mousePress(vp, Qt::LeftButton, {}, from);
    QTest::mouseMove(vp, from + QPoint(0, QApplication::startDragDistance() + 2));
    QTest::mouseMove(vp, to);
    QTest::mouseRelease(vp, Qt::LeftButton, {}, to);

    QCOMPARE(session().pins(), (std::vector<Pin>{{"model.layers.1", Device::disk()}}));
    const QString path = QString::fromStdString((dir / "device_map.json").string());
    QCOMPARE(window_->exportDeviceMap(path), QString());
    PlanOptions pinned = session().options();
    pinned.pins = {{"model.layers.1", Device::disk()}};
    const Plan expected = plan_device_map(session().model().skeleton, session().budgets(), pinned);
    const std::string written = readFile(dir / "device_map.json");
    QCOMPARE(written, expected.device_map.to_json().dump(2) + "\n");
    const auto json = nlohmann::json::parse(written);
    QCOMPARE(json.at("model.layers.1"), nlohmann::json("disk"));
    // The block is drawn pinned in the disk column now.
    const int moved = unitIndex(session(), "model.layers.1");
    QVERIFY(session().units()[static_cast<std::size_t>(moved)].pinned);
    QVERIFY(view()->columnRect(Device::disk()).contains(view()->blockRect(moved).center()));

    controller_->undoStack()->undo();
    QVERIFY(session().pins().empty());
    QCOMPARE(window_->exportDeviceMap(path), QString());
    QCOMPARE(readFile(dir / "device_map.json"), readFile(dir / "before.json"));
  }

  void dropOfASelectionPinsEveryBlockAndTiesFollow() {
    const int head = unitIndex(session(), "lm_head");
    QVERIFY(head >= 0);
    QWidget* vp = view()->viewport();
    const QPoint from = view()->blockRect(head).center();
    const QPoint to = view()->columnRect(Device::cpu()).center();
    QTest::mousePress(vp, Qt::LeftButton, {}, from);
    QTest::mouseMove(vp, to);
    QTest::mouseRelease(vp, Qt::LeftButton, {}, to);
    QCOMPARE(session().pins(), (std::vector<Pin>{{"lm_head", Device::cpu()}}));
    const int embed = unitIndex(session(), "model.embed_tokens");
    QCOMPARE(session().units()[static_cast<std::size_t>(embed)].device, Device::cpu());
    QCOMPARE(session().units()[static_cast<std::size_t>(embed)].follows, std::string("lm_head"));
  }

  void clicksShiftClicksAndTheTableShareOneSelection() {
    QWidget* vp = view()->viewport();
    const int first = unitIndex(session(), "model.layers.0");
    const int last = unitIndex(session(), "model.layers.3");
    QTest::mouseClick(vp, Qt::LeftButton, {}, view()->blockRect(first).center());
    QTest::mouseClick(vp, Qt::LeftButton, Qt::ShiftModifier, view()->blockRect(last).center());
    QCOMPARE(view()->selectedNames(),
             (std::vector<std::string>{"model.layers.0", "model.layers.1", "model.layers.2", "model.layers.3"}));
    QCOMPARE(window_->layerTable()->selectionModel(), window_->selectionModel());
    QCOMPARE(window_->selectionModel()->selectedRows().size(), 4);
    // Ctrl-click takes one out.
    QTest::mouseClick(vp, Qt::LeftButton, Qt::ControlModifier, view()->blockRect(unitIndex(session(), "model.layers.2")).center());
    QCOMPARE(view()->selectedNames(), (std::vector<std::string>{"model.layers.0", "model.layers.1", "model.layers.3"}));
    // Selecting in the table shows in the view.
    auto* model = window_->layerModel();
    window_->selectionModel()->select(model->indexOfName("model.norm"), QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
    QCOMPARE(view()->selectedNames(), std::vector<std::string>{"model.norm"});
    // Sorting the table keeps the selection on the same block.
    window_->layerTable()->sortByColumn(LayerTableModel::SizeColumn, Qt::DescendingOrder);
    QCOMPARE(view()->selectedNames(), std::vector<std::string>{"model.norm"});
    QCOMPARE(model->unitAtRow(window_->selectionModel()->selectedRows().front().row()).name, std::string("model.norm"));
  }

  void rubberBandSelectsTheBlocksItCrosses() {
    QWidget* vp = view()->viewport();
    const int a = unitIndex(session(), "model.embed_tokens");
    const QRect column = view()->columnRect(session().units()[static_cast<std::size_t>(a)].device);
    // From empty space at the column's bottom up through its blocks.
    const QPoint start(column.left() + 2, column.bottom() - 2);
    QVERIFY(view()->unitAt(start) < 0);
    QTest::mousePress(vp, Qt::LeftButton, {}, start);
    QTest::mouseMove(vp, QPoint(column.right() - 2, column.top() + 2));
    QTest::mouseRelease(vp, Qt::LeftButton, {}, QPoint(column.right() - 2, column.top() + 2));
    std::vector<std::string> expected;
    for (const auto& u : session().units())
      if (u.device == session().units()[static_cast<std::size_t>(a)].device) expected.push_back(u.name);
    QCOMPARE(view()->selectedNames(), expected);
  }

  void editingTheDeviceCellPins() {
    auto* model = window_->layerModel();
    const QModelIndex cell = model->indexOfName("model.norm", LayerTableModel::DeviceColumn);
    QVERIFY(model->flags(cell) & Qt::ItemIsEditable);
    QVERIFY(model->setData(cell, deviceCode(Device::gpu(1))));
    QCOMPARE(session().pins(), (std::vector<Pin>{{"model.norm", Device::gpu(1)}}));
    const QModelIndex after = model->indexOfName("model.norm", LayerTableModel::DeviceColumn);
    QCOMPARE(after.data().toString(), QStringLiteral("GPU 1"));
    QCOMPARE(model->indexOfName("model.norm", LayerTableModel::PinnedColumn).data().toString(), QStringLiteral("pinned"));
    controller_->unpinAll();
    QVERIFY(session().pins().empty());
    controller_->undoStack()->undo();
    QCOMPARE(session().pins().size(), std::size_t{1});
  }
};

QTEST_MAIN(TestUiPlacement)
#include "test_ui_placement.moc"
