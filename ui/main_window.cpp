#include "ui/main_window.hpp"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QClipboard>
#include <QCloseEvent>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QScrollArea>
#include <QSettings>
#include <QStatusBar>
#include <QTableView>

#include "error.hpp"
#include "format/resources.hpp"
#include "plan/bandwidth.hpp"
#include "plan/units.hpp"
#include "ui/about_text.hpp"
#include "ui/device_delegate.hpp"
#include "ui/device_panel.hpp"
#include "ui/device_style.hpp"
#include "ui/hardware_dialog.hpp"
#include "ui/layer_table_model.hpp"
#include "ui/map_text.hpp"
#include "ui/model_picker.hpp"
#include "ui/placement_view.hpp"
#include "ui/plan_controls.hpp"
#include "ui/run_panel.hpp"
#include "ui/session_controller.hpp"
#include "ui/theme.hpp"
#include "ui/what_if_view.hpp"

namespace devicemap::ui {
namespace {

constexpr int kMaxRecent = 10;

QAction* menuAction(QMenu* menu, const QString& text, const QKeySequence& keys, const QString& tip) {
  QAction* a = menu->addAction(text);
  if (!keys.isEmpty()) a->setShortcut(keys);
  a->setStatusTip(tip);
  a->setToolTip(tip);
  return a;
}

}  // namespace

MainWindow::MainWindow(SessionController* controller, QWidget* parent)
    : QMainWindow(parent), controller_(controller ? controller : new SessionController(this)) {
  setAcceptDrops(true);
  setDockNestingEnabled(true);
  // The devices and plan column runs the full height; the layer table sits under the picture only.
  setCorner(Qt::BottomLeftCorner, Qt::LeftDockWidgetArea);
  model_ = new LayerTableModel(controller_, this);
  selection_ = new QItemSelectionModel(model_, this);
  view_ = new PlacementView(model_, selection_, this);
  view_->setToolTip(QString());
  table_ = new QTableView(this);
  table_->setModel(model_);
  delete table_->selectionModel();
  table_->setSelectionModel(selection_);
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::ExtendedSelection);
  table_->setSortingEnabled(true);
  table_->sortByColumn(-1, Qt::AscendingOrder);
  table_->setItemDelegateForColumn(LayerTableModel::DeviceColumn, new DeviceDelegate(controller_, table_));
  table_->setEditTriggers(QAbstractItemView::DoubleClicked | QAbstractItemView::EditKeyPressed);
  table_->verticalHeader()->setDefaultSectionSize(table_->fontMetrics().height() + 6);
  table_->verticalHeader()->hide();
  // Widths fitted once per model, not on every re-plan: measuring 100+ rows each time costs milliseconds.
  table_->horizontalHeader()->setSectionResizeMode(LayerTableModel::NameColumn, QHeaderView::Stretch);
  table_->horizontalHeader()->setMinimumSectionSize(48);
  connect(model_, &QAbstractItemModel::modelReset, this, [this] {
    for (int c = LayerTableModel::ClassColumn; c < LayerTableModel::ColumnCount; ++c) table_->resizeColumnToContents(c);
  });
  table_->setContextMenuPolicy(Qt::CustomContextMenu);
  connect(table_, &QWidget::customContextMenuRequested, this,
          [this](const QPoint& p) { showContextMenu(table_->viewport()->mapToGlobal(p)); });

  setCentralWidget(view_);

  buildDocks();
  buildActions();

  fits_ = new QLabel(this);
  hardware_ = new QLabel(this);
  busy_ = new QProgressBar(this);
  busy_->setRange(0, 0);
  busy_->setMaximumWidth(120);
  busy_->hide();
  statusBar()->addPermanentWidget(busy_);
  statusBar()->addPermanentWidget(hardware_);
  statusBar()->addPermanentWidget(fits_);

  connect(controller_, &SessionController::planChanged, this, &MainWindow::onPlanChanged);
  connect(controller_, &SessionController::machineChanged, this, &MainWindow::onMachineChanged);
  connect(controller_, &SessionController::modelChanged, this, &MainWindow::onModelChanged);
  connect(controller_, &SessionController::opening, this, [this](const QString& what) {
    busy_->show();
    statusBar()->showMessage(tr("Opening %1 …").arg(what));
  });
  connect(controller_, &SessionController::openFailed, this, [this](const QString& message) {
    busy_->hide();
    statusBar()->clearMessage();
    QMessageBox::warning(this, tr("Cannot open"), message);
  });
  connect(controller_, &SessionController::planFileOpened, this, [this](const QString& path) {
    plan_path_ = path;
    hardware_note_.clear();
    onMachineChanged();
    updateTitle();
  });
  connect(controller_->undoStack(), &QUndoStack::cleanChanged, this, &MainWindow::updateTitle);
  connect(view_, &PlacementView::hovered, this, [this](const QString& text) {
    if (text.isEmpty())
      statusBar()->clearMessage();
    else
      statusBar()->showMessage(text);
  });
  connect(view_, &PlacementView::notice, this, [this](const QString& text) { statusBar()->showMessage(text, 8000); });
  connect(view_, &PlacementView::contextMenuWanted, this, &MainWindow::showContextMenu);
  connect(selection_, &QItemSelectionModel::currentChanged, this, [this](const QModelIndex& current) {
    if (current.isValid() && table_->hasFocus()) view_->ensureVisible(model_->unitOfRow(current.row()));
  });

  QSettings settings;
  setTheme(settings.value(QStringLiteral("theme"), QStringLiteral("system")).toString());
  if (!restoreGeometry(settings.value(QStringLiteral("window/geometry")).toByteArray())) resize(1400, 860);
  restoreState(settings.value(QStringLiteral("window/state")).toByteArray());
  onMachineChanged();
  onModelChanged();
}

MainWindow::~MainWindow() = default;

void MainWindow::buildDocks() {
  devices_ = new DevicePanel(controller_, this);
  connect(devices_, &DevicePanel::simulateRequested, this, &MainWindow::simulateHardware);
  auto* devices_scroll = new QScrollArea(this);
  devices_scroll->setWidget(devices_);
  devices_scroll->setWidgetResizable(true);
  devices_scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  devices_scroll->setFrameShape(QFrame::NoFrame);
  auto* devices_dock = new QDockWidget(tr("Devices"), this);
  devices_dock->setObjectName(QStringLiteral("devices"));
  devices_dock->setWidget(devices_scroll);
  addDockWidget(Qt::LeftDockWidgetArea, devices_dock);

  controls_ = new PlanControls(controller_, this);
  auto* plan_dock = new QDockWidget(tr("Plan"), this);
  plan_dock->setObjectName(QStringLiteral("plan"));
  plan_dock->setWidget(controls_);
  addDockWidget(Qt::LeftDockWidgetArea, plan_dock);

  auto* layers_dock = new QDockWidget(tr("Layers"), this);
  layers_dock->setObjectName(QStringLiteral("layers"));
  layers_dock->setWidget(table_);
  addDockWidget(Qt::BottomDockWidgetArea, layers_dock);

  run_ = new RunPanel(controller_, this);
  connect(run_, &RunPanel::planForThisMachine, this, &MainWindow::useThisMachine);
  auto* run_dock = new QDockWidget(tr("Run"), this);
  run_dock->setObjectName(QStringLiteral("run"));
  run_dock->setWidget(run_);
  addDockWidget(Qt::BottomDockWidgetArea, run_dock);
  tabifyDockWidget(layers_dock, run_dock);

  what_if_ = new WhatIfView(controller_, this);
  auto* what_if_dock = new QDockWidget(tr("What if"), this);
  what_if_dock->setObjectName(QStringLiteral("whatIf"));
  what_if_dock->setWidget(what_if_);
  addDockWidget(Qt::BottomDockWidgetArea, what_if_dock);
  tabifyDockWidget(run_dock, what_if_dock);
  connect(what_if_dock, &QDockWidget::visibilityChanged, what_if_, [this](bool shown) {
    if (shown) what_if_->refresh();
  });
  layers_dock->raise();
  resizeDocks({devices_dock}, {360}, Qt::Horizontal);
  resizeDocks({devices_dock, plan_dock}, {520, 260}, Qt::Vertical);
  resizeDocks({layers_dock}, {260}, Qt::Vertical);
}

void MainWindow::buildActions() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  connect(menuAction(file, tr("&Open Model Folder…"), QKeySequence::Open, tr("Open a checkpoint folder (safetensors or .bin)")),
          &QAction::triggered, this, &MainWindow::openFolderDialog);
  connect(menuAction(file, tr("Open from Hugging Face &Cache…"), QKeySequence(tr("Ctrl+Shift+O")),
                    tr("Pick a model already downloaded to the Hugging Face cache")),
          &QAction::triggered, this, [this] { pickModel(false); });
  connect(menuAction(file, tr("Open from Ca&talog…"), QKeySequence(tr("Ctrl+Shift+K")),
                    tr("Plan a well-known model from its config alone, without downloading it")),
          &QAction::triggered, this, [this] { pickModel(true); });
  recent_ = file->addMenu(tr("Open &Recent"));
  connect(recent_, &QMenu::aboutToShow, this, &MainWindow::fillRecentMenu);
  file->addSeparator();
  connect(menuAction(file, tr("Open &Plan…"), QKeySequence(tr("Ctrl+Alt+O")), tr("Open a plan file: model, hardware, budgets, pins, options")),
          &QAction::triggered, this, &MainWindow::openPlanDialog);
  connect(menuAction(file, tr("&Save Plan"), QKeySequence::Save, tr("Save model, hardware, budgets, pins and options")),
          &QAction::triggered, this, [this] { savePlanDialog(false); });
  connect(menuAction(file, tr("Save Plan &As…"), QKeySequence::SaveAs, tr("Save the plan under a new name")),
          &QAction::triggered, this, [this] { savePlanDialog(true); });
  file->addSeparator();
  connect(menuAction(file, tr("&Import device_map.json…"), QKeySequence(tr("Ctrl+I")),
                    tr("Load a map made elsewhere: each of its keys becomes a pin")),
          &QAction::triggered, this, &MainWindow::importDialog);
  connect(menuAction(file, tr("&Export device_map.json…"), QKeySequence(tr("Ctrl+E")),
                    tr("Write the map as transformers and accelerate load it")),
          &QAction::triggered, this, &MainWindow::exportDialog);
  connect(menuAction(file, tr("Export for a &Cluster…"), QKeySequence(),
                    tr("Split the model across the hosts of a cluster profile: one device map per host and a vLLM launch")),
          &QAction::triggered, this, &MainWindow::exportClusterDialog);
  file->addSeparator();
  connect(menuAction(file, tr("&Quit"), QKeySequence::Quit, tr("Quit")), &QAction::triggered, this, &QWidget::close);

  QMenu* edit = menuBar()->addMenu(tr("&Edit"));
  QAction* undo = controller_->undoStack()->createUndoAction(this, tr("&Undo"));
  undo->setShortcut(QKeySequence::Undo);
  QAction* redo = controller_->undoStack()->createRedoAction(this, tr("&Redo"));
  redo->setShortcut(QKeySequence::Redo);
  edit->addAction(undo);
  edit->addAction(redo);
  edit->addSeparator();
  connect(menuAction(edit, tr("Copy Map as &JSON"), QKeySequence(tr("Ctrl+Shift+C")), tr("device_map.json's text")),
          &QAction::triggered, this, [this] { QApplication::clipboard()->setText(deviceMapText()); });
  connect(menuAction(edit, tr("Copy Map as &Python"), QKeySequence(tr("Ctrl+Alt+C")),
                    tr("A from_pretrained(…, device_map=…) snippet")),
          &QAction::triggered, this, [this] { QApplication::clipboard()->setText(pythonText()); });
  edit->addSeparator();
  connect(menuAction(edit, tr("Select &All Blocks"), QKeySequence::SelectAll, tr("Select every block")),
          &QAction::triggered, this, [this] {
            if (model_->rowCount() > 0)
              selection_->select(QItemSelection(model_->index(0, 0), model_->index(model_->rowCount() - 1, 0)),
                                 QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
          });
  pin_menu_ = edit->addMenu(tr("&Pin Selection To"));
  connect(pin_menu_, &QMenu::aboutToShow, this, [this] { fillPinMenu(pin_menu_); });
  connect(menuAction(edit, tr("U&npin"), QKeySequence(tr("Ctrl+U")), tr("Let the planner place the selected blocks again")),
          &QAction::triggered, this, [this] { controller_->unpin(selectedNames()); });
  connect(menuAction(edit, tr("Unpin A&ll"), QKeySequence(tr("Ctrl+Shift+U")), tr("Remove every pin")),
          &QAction::triggered, controller_, &SessionController::unpinAll);

  QMenu* hw = menuBar()->addMenu(tr("&Hardware"));
  connect(menuAction(hw, tr("&Simulate Hardware…"), QKeySequence(tr("Ctrl+H")),
                    tr("Plan for a bundled profile or for GPUs you choose")),
          &QAction::triggered, this, &MainWindow::simulateHardware);
  connect(menuAction(hw, tr("Use &This Machine"), QKeySequence(), tr("Plan for the devices detected here")),
          &QAction::triggered, this, &MainWindow::useThisMachine);

  view_menu_ = menuBar()->addMenu(tr("&View"));
  connect(menuAction(view_menu_, tr("Zoom &In"), QKeySequence::ZoomIn, tr("Taller blocks")), &QAction::triggered, view_,
          &PlacementView::zoomIn);
  connect(menuAction(view_menu_, tr("Zoom &Out"), QKeySequence::ZoomOut, tr("Shorter blocks")), &QAction::triggered, view_,
          &PlacementView::zoomOut);
  connect(menuAction(view_menu_, tr("Zoom to &Fit"), QKeySequence(tr("Ctrl+0")), tr("Every column whole in the view")),
          &QAction::triggered, view_, &PlacementView::zoomToFit);
  view_menu_->addSeparator();
  QMenu* theme = view_menu_->addMenu(tr("&Theme"));
  themes_ = new QActionGroup(this);
  for (const auto& [name, label] : {std::pair{"system", tr("&System")}, {"light", tr("&Light")}, {"dark", tr("&Dark")}}) {
    QAction* a = theme->addAction(label);
    a->setCheckable(true);
    a->setData(QString::fromLatin1(name));
    themes_->addAction(a);
  }
  connect(themes_, &QActionGroup::triggered, this, [this](QAction* a) { setTheme(a->data().toString()); });
  view_menu_->addSeparator();
  for (auto* dock : findChildren<QDockWidget*>()) view_menu_->addAction(dock->toggleViewAction());

  QMenu* help = menuBar()->addMenu(tr("&Help"));
  connect(help->addAction(tr("&About DeviceMap Studio")), &QAction::triggered, this, [this] {
    QMessageBox::about(this, tr("About DeviceMap Studio"), aboutText());
  });
}

// --- state changes -------------------------------------------------------------------------------

void MainWindow::onPlanChanged() {
  // The table model first: the view reads its rows.
  model_->refresh(selection_);
  view_->relayout();
  devices_->refresh();
  controls_->refresh();
  const Session& s = controller_->session();
  if (!s.has_model())
    fits_->setText(tr("No model"));
  else if (!s.plan_error().empty())
    fits_->setText(QStringLiteral("<span style='color:%1'>%2</span>").arg(overColor().name(), tr("No plan")));
  else if (s.plan().fits())
    fits_->setText(tr("Fits"));
  else
    fits_->setText(QStringLiteral("<span style='color:%1'>%2</span>").arg(overColor().name(), tr("Doesn't fit")));
  fits_->setToolTip(controls_->summary());
  updateTitle();
}

void MainWindow::onMachineChanged() {
  devices_->rebuild();
  const Machine& m = controller_->session().machine();
  const bool simulated = std::any_of(m.devices.begin(), m.devices.end(), [](const DeviceInfo& d) { return d.simulated; });
  hardware_->setText(simulated ? tr("Simulated hardware") : tr("This machine"));
  hardware_->setToolTip(simulated ? tr("Devices marked (simulated) are not on this machine") : QString());
  devices_->setBanner(simulated ? (hardware_note_.isEmpty() ? tr("Planning for simulated hardware: %1")
                                                                  .arg(QString::fromStdString(m.name).toHtmlEscaped())
                                                            : hardware_note_)
                                : QString());
}

void MainWindow::onModelChanged() {
  busy_->hide();
  statusBar()->clearMessage();
  const Session& s = controller_->session();
  if (s.has_model()) {
    rememberModel(QString::fromStdString(s.model_ref()));
    const auto& sk = s.model().skeleton;
    statusBar()->showMessage(tr("%1 — %2, %3")
                                 .arg(QString::fromStdString(s.model().description))
                                 .arg(sizeText(static_cast<std::int64_t>(sk.total_bytes())))
                                 .arg(QString::fromStdString(sk.model_type.empty() ? std::string("model") : sk.model_type)),
                             8000);
    for (const auto& w : sk.warnings) statusBar()->showMessage(QString::fromStdString(w), 8000);
  }
  plan_path_.clear();
  updateTitle();
}

void MainWindow::updateTitle() {
  const Session& s = controller_->session();
  QString title = QStringLiteral("DeviceMap Studio");
  if (s.has_model()) {
    const std::string ref = s.model_ref();
    title = QString::fromStdString(ref.starts_with("catalog:") ? ref : std::filesystem::path(ref).filename().string()) +
            QStringLiteral(" — ") + title;
  }
  if (!plan_path_.isEmpty()) title = QFileInfo(plan_path_).fileName() + QStringLiteral(" · ") + title;
  setWindowModified(!controller_->undoStack()->isClean());
  setWindowTitle(title + QStringLiteral("[*]"));
}

// --- opening -------------------------------------------------------------------------------------

void MainWindow::runPrompt(const QString& prompt) {
  if (!controller_->session().has_model()) {  // still opening: run once it is open
    auto* once = new QObject(this);
    connect(controller_, &SessionController::modelChanged, once, [this, prompt, once] {
      once->deleteLater();
      runPrompt(prompt);
    });
    return;
  }
  if (!runBlocker(controller_->session()).isEmpty()) useThisMachine();
  run_->parentWidget()->show();  // its dock
  run_->parentWidget()->raise();
  run_->runPrompt(prompt);
}

void MainWindow::showWhatIf(WhatIfAxis axis) {
  what_if_->parentWidget()->show();  // its dock
  what_if_->parentWidget()->raise();
  what_if_->setAxis(axis);
}

void MainWindow::startup(const QString& model) {
  std::string why;
  controller_->setMachine(startup_machine(why), tr("Detect hardware"));
  controller_->undoStack()->clear();
  QString what = model;
  if (!what.endsWith(QLatin1String(".plan.json"))) {  // a plan file brings its own hardware
    hardware_note_ = QString::fromStdString(why);
    onMachineChanged();
    if (!why.empty()) statusBar()->showMessage(hardware_note_, 10000);
  }
  if (what.isEmpty()) {
    // The most recent model that is still there, else the bundled demo.
    what = QString::fromStdString((resources_dir() / "demo").string());
    for (const QString& ref : QSettings().value(QStringLiteral("recentModels")).toStringList())
      if (ref.startsWith(QLatin1String("catalog:")) || QFileInfo::exists(ref)) {
        what = ref;
        break;
      }
  }
  if (what.endsWith(QLatin1String(".plan.json")))
    controller_->openPlanFile(what);
  else
    controller_->openModel(what);
}

void MainWindow::openModel(const QString& what) {
  if (controller_->busy()) {
    statusBar()->showMessage(tr("Still opening the previous model"), 4000);
    return;
  }
  controller_->openModel(what);
}

void MainWindow::openFolderDialog() {
  const QString dir = QFileDialog::getExistingDirectory(this, tr("Open Model Folder"),
                                                        QSettings().value(QStringLiteral("lastFolder")).toString());
  if (dir.isEmpty()) return;
  QSettings().setValue(QStringLiteral("lastFolder"), QFileInfo(dir).absolutePath());
  openModel(dir);
}

void MainWindow::pickModel(bool catalog) {
  ModelPicker picker(catalog ? ModelPicker::Tab::Catalog : ModelPicker::Tab::Cache, this);
  if (picker.exec() == QDialog::Accepted && !picker.choice().isEmpty()) openModel(picker.choice());
}

void MainWindow::rememberModel(const QString& ref) {
  QSettings settings;
  QStringList recent = settings.value(QStringLiteral("recentModels")).toStringList();
  recent.removeAll(ref);
  recent.prepend(ref);
  while (recent.size() > kMaxRecent) recent.removeLast();
  settings.setValue(QStringLiteral("recentModels"), recent);
}

void MainWindow::fillRecentMenu() {
  recent_->clear();
  const QStringList recent = QSettings().value(QStringLiteral("recentModels")).toStringList();
  for (const QString& ref : recent) connect(recent_->addAction(ref), &QAction::triggered, this, [this, ref] { openModel(ref); });
  if (recent.isEmpty()) recent_->addAction(tr("(none yet)"))->setEnabled(false);
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
  const auto urls = event->mimeData()->urls();
  if (!urls.isEmpty() && urls.front().isLocalFile()) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
  const QString path = event->mimeData()->urls().front().toLocalFile();
  event->acceptProposedAction();
  if (path.endsWith(QLatin1String(".plan.json")))
    controller_->openPlanFile(path);
  else
    openModel(path);
}

// --- hardware ------------------------------------------------------------------------------------

void MainWindow::simulateHardware() {
  HardwareDialog dialog(controller_->session().machine(), this);
  if (dialog.exec() != QDialog::Accepted) return;
  hardware_note_.clear();
  controller_->setMachine(dialog.machine(), tr("Simulate hardware"));
}

void MainWindow::useThisMachine() {
  hardware_note_.clear();
  Machine machine = detect_machine();
  measure_bandwidths(machine);
  controller_->setMachine(std::move(machine), tr("Use this machine"));
}

// --- selection and pins --------------------------------------------------------------------------

std::vector<std::string> MainWindow::selectedNames() const { return view_->selectedNames(); }

void MainWindow::fillPinMenu(QMenu* menu) {
  menu->clear();
  const bool any = !selectedNames().empty();
  for (const auto& u : controller_->session().plan().devices) {
    const Device d = u.device;
    QAction* a = menu->addAction(deviceLabel(d), this, [this, d] { controller_->pin(selectedNames(), d); });
    a->setEnabled(any);
  }
}

void MainWindow::showContextMenu(const QPoint& globalPos) {
  QMenu menu(this);
  fillPinMenu(menu.addMenu(tr("Pin To")));
  menu.addAction(tr("Unpin"), this, [this] { controller_->unpin(selectedNames()); })->setEnabled(!selectedNames().empty());
  menu.addAction(tr("Unpin All"), controller_, &SessionController::unpinAll)->setEnabled(!controller_->session().pins().empty());
  menu.exec(globalPos);
}

// --- settings ------------------------------------------------------------------------------------

void MainWindow::setTheme(const QString& name) {
  const Theme theme = themeFromName(name);
  if (theme != Theme::System || QSettings().contains(QStringLiteral("theme"))) applyTheme(theme);
  QSettings().setValue(QStringLiteral("theme"), themeName(theme));
  if (themes_)
    for (QAction* a : themes_->actions()) a->setChecked(a->data().toString() == themeName(theme));
  if (view_) view_->viewport()->update();
}

void MainWindow::closeEvent(QCloseEvent* event) {
  // Any change since the last save (or since the model opened) is the user's work: ask, whether or not
  // the plan has a file yet (Save then asks for one).
  if (!controller_->undoStack()->isClean()) {
    const QString what = plan_path_.isEmpty()
                             ? tr("This plan has changes (pins, budgets, hardware) that are not saved in a plan file.")
                             : tr("%1 has unsaved changes.").arg(plan_path_);
    const auto answer = QMessageBox::question(this, tr("Save the plan?"), what,
                                              QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel, QMessageBox::Save);
    if (answer == QMessageBox::Cancel || (answer == QMessageBox::Save && !savePlanDialog(false))) {
      event->ignore();
      return;
    }
  }
  QSettings settings;
  settings.setValue(QStringLiteral("window/geometry"), saveGeometry());
  settings.setValue(QStringLiteral("window/state"), saveState());
  QMainWindow::closeEvent(event);
}

}  // namespace devicemap::ui
