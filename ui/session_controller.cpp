#include "ui/session_controller.hpp"

#include <QLocale>
#include <QPointer>
#include <QThread>

#include <memory>
#include <optional>

#include "error.hpp"
#include "plan/bandwidth.hpp"
#include "ui/device_style.hpp"
#include "ui/edit_command.hpp"

namespace devicemap::ui {
namespace {

bool sameDevices(const Machine& a, const Machine& b) {
  if (a.devices.size() != b.devices.size()) return false;
  for (std::size_t i = 0; i < a.devices.size(); ++i) {
    const auto &x = a.devices[i], &y = b.devices[i];
    if (x.device != y.device || x.name != y.name || x.total != y.total || x.free != y.free || x.simulated != y.simulated)
      return false;
  }
  return a.name == b.name && a.simulated == b.simulated;
}

QString namesText(const std::vector<std::string>& names) {
  if (names.size() == 1) return QString::fromStdString(names.front());
  return SessionController::tr("%n blocks", nullptr, static_cast<int>(names.size()));
}

// Worker threads still running when the controller goes (the window closed while a model opened).
std::vector<QPointer<QThread>>& workers() {
  static std::vector<QPointer<QThread>> w;
  std::erase_if(w, [](const QPointer<QThread>& t) { return t.isNull(); });
  return w;
}

}  // namespace

SessionController::SessionController(QObject* parent) : QObject(parent), disk_(new DiskSpeed(this)) {
  undo_.setUndoLimit(500);
  connect(disk_, &DiskSpeed::measured, this, [this] { announce(false); });
  connect(disk_, &DiskSpeed::failed, this, [this] { announce(false); });
}

SessionController::~SessionController() {
  for (auto& t : workers())
    if (t) t->wait();
}

// --- edits ---------------------------------------------------------------------------------------

void SessionController::setBudget(Device d, std::uint64_t bytes, int gesture) {
  if (session_.budgets().get(d) == bytes) return;
  auto before = session_.state();
  session_.set_budget(d, bytes);
  commit(tr("Set %1 budget to %2").arg(deviceLabel(d), sizeText(static_cast<std::int64_t>(bytes))), std::move(before),
         EditCommand::kBudgetId, gesture, deviceCode(d));
}

void SessionController::setBudgets(const MaxMemory& budgets, const QString& what) {
  if (session_.budgets().entries() == budgets.entries()) return;
  auto before = session_.state();
  session_.set_budgets(budgets);
  commit(what, std::move(before));
}

void SessionController::pin(const std::vector<std::string>& names, Device d) {
  if (names.empty()) return;
  auto before = session_.state();
  session_.pin(names, d);
  if (before.options.pins == session_.pins()) return;
  commit(tr("Pin %1 to %2").arg(namesText(names), deviceLabel(d)), std::move(before));
}

void SessionController::unpin(const std::vector<std::string>& names) {
  auto before = session_.state();
  session_.unpin(names);
  if (before.options.pins == session_.pins()) return;
  commit(tr("Unpin %1").arg(namesText(names)), std::move(before));
}

void SessionController::unpinAll() {
  if (session_.pins().empty()) return;
  auto before = session_.state();
  session_.unpin_all();
  commit(tr("Unpin all"), std::move(before));
}

void SessionController::setOptions(const PlanOptions& options, const QString& what) {
  auto before = session_.state();
  session_.set_options(options);
  commit(what, std::move(before));
}

void SessionController::setMachine(const Machine& machine, const QString& what) {
  auto before = session_.state();
  session_.set_machine(machine);
  commit(what, std::move(before));
}

void SessionController::addVirtualGpu(const QString& name, std::uint64_t bytes) {
  auto before = session_.state();
  session_.add_virtual_gpu(name.toStdString(), bytes);
  commit(tr("Add virtual GPU (%1)").arg(sizeText(static_cast<std::int64_t>(bytes))), std::move(before));
}

void SessionController::removeGpu(int index) {
  auto before = session_.state();
  session_.remove_gpu(index);
  commit(tr("Remove GPU %1").arg(index), std::move(before));
}

void SessionController::importMap(const DeviceMap& map) {
  auto before = session_.state();
  session_.import_map(map);  // throws before changing anything
  commit(tr("Import device map"), std::move(before));
}

void SessionController::commit(const QString& text, Session::State before, int mergeId, int gesture, int device) {
  const bool machine = !sameDevices(before.machine, session_.machine());
  undo_.push(new EditCommand(this, text, std::move(before), session_.state(), mergeId, gesture, device));
  announce(machine);
}

void SessionController::restore(const Session::State& state) {
  const bool machine = !sameDevices(state.machine, session_.machine());
  session_.restore(state);
  announce(machine);
}

void SessionController::announce(bool machine) {
  useDiskFigure();
  if (machine) Q_EMIT machineChanged();
  Q_EMIT planChanged();
}

void SessionController::useDiskFigure() {
  const QString folder = QString::fromStdString(detected_disk_folder(session_.machine()).string());
  const DeviceInfo* disk = session_.machine().find(Device::disk());
  if (folder.isEmpty() || !disk || disk->bandwidth_gbs > 0) return;
  if (const auto figure = disk_->known(folder)) {
    // Not an edit: the machine as detected, with the figure it lacked (undo steps made before keep 0,
    // and get it again here when they are restored).
    Session::State state = session_.state();
    for (auto& d : state.machine.devices)
      if (d.device.is_disk()) d.bandwidth_gbs = figure->gbs;
    session_.restore(std::move(state));
    return;
  }
  disk_->ensure(folder);
}

QString SessionController::diskNote() const {
  const QString folder = QString::fromStdString(detected_disk_folder(session_.machine()).string());
  const DeviceInfo* disk = session_.machine().find(Device::disk());
  if (folder.isEmpty() || !disk) return {};
  if (disk_->measuring(folder)) return tr("Measuring the read speed of the disk at %1 …").arg(folder);
  if (const auto figure = disk_->known(folder); figure && figure->gbs == disk->bandwidth_gbs)
    return tr("Disk read speed %1 GB/s is an estimate: one 64 MiB read of %2 at %3, %4")
        .arg(QString::number(figure->gbs, 'g', 3), figure->device, folder,
             QLocale().toString(figure->measured.toLocalTime(), QLocale::ShortFormat));
  if (const QString why = disk_->failure(folder); !why.isEmpty())
    return tr("The disk's read speed could not be measured: %1").arg(why);
  return {};
}

// --- model and plan file -------------------------------------------------------------------------

void SessionController::openModelNow(const std::string& what) {
  session_.open_model(what);
  undo_.clear();
  useDiskFigure();
  Q_EMIT modelChanged();
  Q_EMIT machineChanged();
  Q_EMIT planChanged();
}

void SessionController::openPlanFileNow(const std::string& path) {
  const PlanFile file = PlanFile::load(path);
  Machine machine = file.profile ? machine_from_profile(*file.profile, path) : detect_machine();
  measure_bandwidths(machine);  // a detected machine's RAM; a profile keeps its figures
  ModelSource model = devicemap::open_model(file.model);
  auto saved = session_;  // left as it was when the file does not apply
  try {
    session_.set_model(std::move(model), file.model);
    session_.apply(file, std::move(machine));
  } catch (const Error&) {
    session_ = std::move(saved);
    throw;
  }
  undo_.clear();
  useDiskFigure();
  Q_EMIT modelChanged();
  Q_EMIT machineChanged();
  Q_EMIT planChanged();
}

void SessionController::savePlanFile(const std::string& path) const { session_.plan_file().save(path); }

void SessionController::openModel(const QString& what) {
  struct Result {
    std::optional<ModelSource> model;
    QString error;
  };
  auto result = std::make_shared<Result>();
  const std::string ref = what.toStdString();
  opening_ = true;
  Q_EMIT opening(what);
  QThread* thread = QThread::create([result, ref] {
    try {
      result->model = devicemap::open_model(ref);
    } catch (const std::exception& e) {
      result->error = QString::fromStdString(printable(e.what()));
    }
  });
  workers().emplace_back(thread);
  connect(thread, &QThread::finished, this, [this, result, ref] {
    opening_ = false;
    if (!result->model) {
      Q_EMIT openFailed(result->error);
      return;
    }
    session_.set_model(std::move(*result->model), ref);
    undo_.clear();
    useDiskFigure();
    Q_EMIT modelChanged();
    Q_EMIT machineChanged();
    Q_EMIT planChanged();
  });
  connect(thread, &QThread::finished, thread, &QObject::deleteLater);
  thread->start();
}

void SessionController::openPlanFile(const QString& path) {
  struct Result {
    std::optional<PlanFile> file;
    std::optional<ModelSource> model;
    std::optional<Machine> machine;
    QString error;
  };
  auto result = std::make_shared<Result>();
  const std::string p = path.toStdString();
  opening_ = true;
  Q_EMIT opening(path);
  QThread* thread = QThread::create([result, p] {
    try {
      result->file = PlanFile::load(p);
      result->machine = result->file->profile ? machine_from_profile(*result->file->profile, p) : detect_machine();
      measure_bandwidths(*result->machine);
      result->model = devicemap::open_model(result->file->model);
    } catch (const std::exception& e) {
      result->error = QString::fromStdString(printable(e.what()));
    }
  });
  workers().emplace_back(thread);
  connect(thread, &QThread::finished, this, [this, result, path] {
    opening_ = false;
    if (!result->model) {
      Q_EMIT openFailed(result->error);
      return;
    }
    auto saved = session_;
    try {
      session_.set_model(std::move(*result->model), result->file->model);
      session_.apply(*result->file, std::move(*result->machine));
    } catch (const Error& e) {
      session_ = std::move(saved);
      Q_EMIT openFailed(QString::fromUtf8(e.what()));
      return;
    }
    undo_.clear();
    useDiskFigure();
    Q_EMIT modelChanged();
    Q_EMIT machineChanged();
    Q_EMIT planChanged();
    Q_EMIT planFileOpened(path);
  });
  connect(thread, &QThread::finished, thread, &QObject::deleteLater);
  thread->start();
}

}  // namespace devicemap::ui
