#pragma once
// The read speed of the disk the plan offloads to, for the speed prediction: a detected disk has no
// figure until something is read from it, and a catalog model has no file to read. Measured once per
// disk in the background (a 64 MiB probe, a second or two) and remembered in QSettings under the
// disk's device, so the next start knows it at once.
#include <QDateTime>
#include <QHash>
#include <QObject>
#include <QString>

#include <optional>

namespace devicemap::ui {

class DiskSpeed : public QObject {
  Q_OBJECT

 public:
  struct Figure {
    double gbs = 0;
    QDateTime measured;  // when (UTC)
    QString device;      // what the system calls the disk ("/dev/nvme0n1p2")
  };

  explicit DiskSpeed(QObject* parent = nullptr);
  ~DiskSpeed() override;

  // The figure for the disk holding `folder`: from this run or an earlier one.
  std::optional<Figure> known(const QString& folder) const;
  // Starts measuring the disk holding `folder` unless it is known, being measured, or failed already.
  // measured() or failed() follows.
  void ensure(const QString& folder);
  bool measuring(const QString& folder) const;
  QString failure(const QString& folder) const;  // why the last measurement gave no figure ("" if none)

 Q_SIGNALS:
  void measured(const QString& folder, double gbs);
  void failed(const QString& folder, const QString& why);

 private:
  static QString settingsKey(const QString& folder);

  QHash<QString, bool> running_;
  QHash<QString, QString> failures_;
};

}  // namespace devicemap::ui
