#pragma once
// "Simulate hardware": start from this machine or a bundled profile, then add or remove GPUs of any size.
// The result is the machine to plan for; detected devices stay marked as detected.
#include <QDialog>

#include "plan/machine.hpp"

class QDoubleSpinBox;
class QLineEdit;
class QListWidget;
class QTableWidget;

namespace devicemap::ui {

class HardwareDialog : public QDialog {
  Q_OBJECT

 public:
  HardwareDialog(const Machine& current, QWidget* parent = nullptr);
  const Machine& machine() const { return machine_; }

 private:
  void pickStart(int row);
  void showDevices();
  void addGpu();
  void removeGpu();

  Machine machine_;
  std::vector<Machine> starts_;  // [0] this machine, then the profiles
  QListWidget* profiles_;
  QTableWidget* devices_;
  QLineEdit* gpu_name_;
  QDoubleSpinBox* gpu_size_;
};

}  // namespace devicemap::ui
