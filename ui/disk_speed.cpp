#include "ui/disk_speed.hpp"

#include <QPointer>
#include <QSettings>
#include <QStorageInfo>
#include <QThread>
#include <QUrl>

#include <memory>
#include <string>
#include <vector>

#include "plan/bandwidth.hpp"

namespace devicemap::ui {
namespace {

// Probes still running when the object goes: waited for, so none outlives the process's objects.
std::vector<QPointer<QThread>>& probes() {
  static std::vector<QPointer<QThread>> p;
  std::erase_if(p, [](const QPointer<QThread>& t) { return t.isNull(); });
  return p;
}

QString deviceOf(const QString& folder) {
  const QStorageInfo storage(folder);
  return storage.isValid() ? QString::fromUtf8(storage.device()) + QLatin1Char('@') + storage.rootPath() : folder;
}

}  // namespace

DiskSpeed::DiskSpeed(QObject* parent) : QObject(parent) {}

DiskSpeed::~DiskSpeed() {
  for (auto& t : probes())
    if (t) t->wait();
}

QString DiskSpeed::settingsKey(const QString& folder) {
  // One key per disk (device and mount point); '/' would open a settings group.
  return QStringLiteral("diskReadSpeed/") + QString::fromLatin1(QUrl::toPercentEncoding(deviceOf(folder)));
}

std::optional<DiskSpeed::Figure> DiskSpeed::known(const QString& folder) const {
  if (folder.isEmpty()) return std::nullopt;
  QSettings settings;
  const QString key = settingsKey(folder);
  const double gbs = settings.value(key + QStringLiteral("/gbs")).toDouble();
  if (!(gbs > 0)) return std::nullopt;
  return Figure{gbs, settings.value(key + QStringLiteral("/measured")).toDateTime(), deviceOf(folder).section(QLatin1Char('@'), 0, 0)};
}

bool DiskSpeed::measuring(const QString& folder) const { return running_.value(folder); }

QString DiskSpeed::failure(const QString& folder) const { return failures_.value(folder); }

void DiskSpeed::ensure(const QString& folder) {
  if (folder.isEmpty() || running_.value(folder) || failures_.contains(folder) || known(folder)) return;
  running_[folder] = true;
  struct Result {
    std::optional<double> gbs;
    std::string why;
  };
  auto result = std::make_shared<Result>();
  const std::string path = folder.toStdString();
  QThread* thread = QThread::create([result, path] { result->gbs = measure_folder_read_gbs(path, &result->why); });
  probes().emplace_back(thread);
  connect(thread, &QThread::finished, this, [this, result, folder] {
    running_.remove(folder);
    if (!result->gbs) {
      failures_[folder] = QString::fromStdString(result->why);
      Q_EMIT failed(folder, failures_[folder]);
      return;
    }
    QSettings settings;
    const QString key = settingsKey(folder);
    settings.setValue(key + QStringLiteral("/gbs"), *result->gbs);
    settings.setValue(key + QStringLiteral("/measured"), QDateTime::currentDateTimeUtc());
    Q_EMIT measured(folder, *result->gbs);
  });
  connect(thread, &QThread::finished, thread, &QObject::deleteLater);
  thread->start();
}

}  // namespace devicemap::ui
