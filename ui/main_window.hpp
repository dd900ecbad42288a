#pragma once
// The desktop program's window: devices and plan options on the left, the placement picture in the
// middle, the layer table, the run panel and the What if plots below; menus for opening models and plans, import
// and export of device_map.json, undo, hardware simulation and the view.
#include <QMainWindow>
#include <QString>

#include <string>

#include "plan/what_if.hpp"

class QActionGroup;
class QItemSelectionModel;
class QLabel;
class QMenu;
class QProgressBar;
class QTableView;

namespace devicemap::ui {

class DevicePanel;
class LayerTableModel;
class PlacementView;
class PlanControls;
class RunPanel;
class WhatIfView;
class SessionController;

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  // Without a controller the window makes its own. It opens nothing: see startup().
  explicit MainWindow(SessionController* controller = nullptr, QWidget* parent = nullptr);
  ~MainWindow() override;

  // First start: the machine to plan for (this one, or a simulated GPU when it has none) and the
  // model — `model` when given, else the most recent one, else the bundled demo.
  void startup(const QString& model = {});
  // Plans for this machine when the plan needs devices it lacks, then loads and generates `prompt`.
  void runPrompt(const QString& prompt);

  SessionController* controller() const { return controller_; }
  PlacementView* placementView() const { return view_; }
  QTableView* layerTable() const { return table_; }
  LayerTableModel* layerModel() const { return model_; }
  QItemSelectionModel* selectionModel() const { return selection_; }
  DevicePanel* devicePanel() const { return devices_; }
  PlanControls* planControls() const { return controls_; }
  WhatIfView* whatIfView() const { return what_if_; }
  // Brings the What if view to the front, plotting against `axis`.
  void showWhatIf(WhatIfAxis axis);

  // File operations without dialogs (the menus call these). Each returns "" or what went wrong.
  QString exportDeviceMap(const QString& path);
  // Splits the model across the hosts of `clusterFile` and writes each host's device map and the vLLM
  // launch into `folder` (existing files only when `replace`); `summary` says what was written.
  QString exportForCluster(const QString& clusterFile, const QString& folder, bool replace, QString* summary = nullptr);
  QString importDeviceMap(const QString& path);
  QString savePlan(const QString& path);
  QString openPlanNow(const QString& path);

  QString deviceMapText() const;  // what Copy as JSON puts on the clipboard
  QString pythonText() const;     // what Copy as Python puts on the clipboard

 protected:
  void closeEvent(QCloseEvent* event) override;
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;

 private:
  void buildActions();
  void buildDocks();
  void onPlanChanged();
  void onMachineChanged();
  void onModelChanged();
  void openModel(const QString& what);
  void openFolderDialog();
  void pickModel(bool catalog);
  void openPlanDialog();
  bool savePlanDialog(bool ask);
  void exportDialog();
  void exportClusterDialog();
  void importDialog();
  void simulateHardware();
  void useThisMachine();
  void showContextMenu(const QPoint& globalPos);
  void fillPinMenu(QMenu* menu);
  void fillRecentMenu();
  void rememberModel(const QString& ref);
  void updateTitle();
  void setTheme(const QString& name);
  std::vector<std::string> selectedNames() const;

  SessionController* controller_;
  LayerTableModel* model_ = nullptr;
  QItemSelectionModel* selection_ = nullptr;
  PlacementView* view_ = nullptr;
  QTableView* table_ = nullptr;
  DevicePanel* devices_ = nullptr;
  PlanControls* controls_ = nullptr;
  RunPanel* run_ = nullptr;
  WhatIfView* what_if_ = nullptr;
  QLabel* fits_ = nullptr;
  QLabel* hardware_ = nullptr;
  QProgressBar* busy_ = nullptr;
  QMenu* recent_ = nullptr;
  QMenu* pin_menu_ = nullptr;
  QMenu* view_menu_ = nullptr;
  QActionGroup* themes_ = nullptr;
  QString plan_path_;
  QString hardware_note_;
};

}  // namespace devicemap::ui
