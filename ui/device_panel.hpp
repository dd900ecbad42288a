#pragma once
// One row per device of the machine (GPUs, CPU RAM, disk): what it is and whether it is detected or
// simulated, its size and free memory, a max_memory editor, a used/budget bar and the reserves.
#include <QWidget>

#include <vector>

#include "plan/device.hpp"

class QLabel;
class QVBoxLayout;

namespace devicemap::ui {

class BudgetEditor;
class SessionController;
class UsageBar;

class DevicePanel : public QWidget {
  Q_OBJECT

 public:
  explicit DevicePanel(SessionController* controller, QWidget* parent = nullptr);

  void setBanner(const QString& text);  // e.g. why the hardware is simulated
  BudgetEditor* editor(const Device& d) const;  // nullptr for the disk or an unknown device

 public Q_SLOTS:
  void rebuild();  // the device list changed
  void refresh();  // budgets or the plan changed

 Q_SIGNALS:
  void simulateRequested();

 private:
  struct Row {
    Device device;
    QLabel* title = nullptr;
    QLabel* detail = nullptr;
    BudgetEditor* editor = nullptr;
    UsageBar* bar = nullptr;
    QLabel* reserve = nullptr;
  };

  SessionController* controller_;
  QLabel* banner_;
  QVBoxLayout* rows_layout_;
  QWidget* rows_widget_ = nullptr;
  std::vector<Row> rows_;
};

}  // namespace devicemap::ui
