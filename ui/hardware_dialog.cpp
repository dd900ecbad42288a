#include "ui/hardware_dialog.hpp"

#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

#include "error.hpp"
#include "plan/bandwidth.hpp"
#include "ui/device_style.hpp"

namespace devicemap::ui {

HardwareDialog::HardwareDialog(const Machine& current, QWidget* parent) : QDialog(parent), machine_(current) {
  setWindowTitle(tr("Simulate Hardware"));
  profiles_ = new QListWidget(this);
  profiles_->setToolTip(tr("Start from this machine or from a bundled hardware profile"));
  starts_.push_back(detect_machine());
  measure_bandwidths(starts_.back());
  profiles_->addItem(tr("This machine (detected)"));
  for (const auto& path : bundled_profiles()) {
    try {
      starts_.push_back(load_profile(path));
      profiles_->addItem(QString::fromStdString(starts_.back().name));
    } catch (const Error& e) {
      profiles_->addItem(tr("%1 (unreadable: %2)").arg(QString::fromStdString(path.stem().string()), QString::fromUtf8(e.what())));
      profiles_->item(profiles_->count() - 1)->setFlags(Qt::NoItemFlags);
      starts_.emplace_back();
    }
  }
  devices_ = new QTableWidget(0, 3, this);
  devices_->setHorizontalHeaderLabels({tr("Device"), tr("Name"), tr("Size")});
  devices_->horizontalHeader()->setSectionResizeMode(1, QHeaderView::Stretch);
  devices_->verticalHeader()->hide();
  devices_->setSelectionBehavior(QAbstractItemView::SelectRows);
  devices_->setEditTriggers(QAbstractItemView::NoEditTriggers);

  gpu_name_ = new QLineEdit(tr("virtual GPU"), this);
  gpu_size_ = new QDoubleSpinBox(this);
  gpu_size_->setRange(0.25, 4096);
  gpu_size_->setValue(24);
  gpu_size_->setSuffix(tr(" GiB"));
  auto* add = new QPushButton(tr("Add GPU"), this);
  auto* remove = new QPushButton(tr("Remove selected GPU"), this);
  connect(add, &QPushButton::clicked, this, &HardwareDialog::addGpu);
  connect(remove, &QPushButton::clicked, this, &HardwareDialog::removeGpu);
  connect(profiles_, &QListWidget::currentRowChanged, this, &HardwareDialog::pickStart);

  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);

  auto* add_row = new QHBoxLayout;
  add_row->addWidget(gpu_name_, 2);
  add_row->addWidget(gpu_size_, 1);
  add_row->addWidget(add);
  add_row->addWidget(remove);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(new QLabel(tr("Start from:"), this));
  layout->addWidget(profiles_, 1);
  layout->addWidget(new QLabel(tr("Devices to plan for:"), this));
  layout->addWidget(devices_, 2);
  layout->addLayout(add_row);
  layout->addWidget(buttons);
  resize(560, 520);
  showDevices();
}

void HardwareDialog::pickStart(int row) {
  if (row < 0 || static_cast<std::size_t>(row) >= starts_.size() || starts_[static_cast<std::size_t>(row)].devices.empty()) return;
  machine_ = starts_[static_cast<std::size_t>(row)];
  if (row > 0) {
    machine_.simulated = true;
    for (auto& d : machine_.devices) d.simulated = true;
  }
  showDevices();
}

void HardwareDialog::showDevices() {
  devices_->setRowCount(static_cast<int>(machine_.devices.size()));
  for (int r = 0; r < devices_->rowCount(); ++r) {
    const auto& d = machine_.devices[static_cast<std::size_t>(r)];
    auto* dev = new QTableWidgetItem(deviceLabel(d.device) + (d.simulated ? tr(" (simulated)") : tr(" (detected)")));
    dev->setData(Qt::DecorationRole, deviceColor(d.device));
    devices_->setItem(r, 0, dev);
    devices_->setItem(r, 1, new QTableWidgetItem(QString::fromStdString(d.name)));
    devices_->setItem(r, 2, new QTableWidgetItem(sizeText(static_cast<std::int64_t>(d.total))));
  }
}

void HardwareDialog::addGpu() {
  int index = 0;
  auto at = machine_.devices.begin();
  for (auto it = machine_.devices.begin(); it != machine_.devices.end(); ++it)
    if (it->device.is_gpu()) {
      index = std::max(index, it->device.index + 1);
      at = it + 1;
    }
  DeviceInfo gpu;
  gpu.device = Device::gpu(index);
  gpu.name = gpu_name_->text().toStdString();
  gpu.total = gpu.free = static_cast<std::uint64_t>(std::llround(gpu_size_->value() * double(1ull << 30)));
  gpu.simulated = true;
  machine_.devices.insert(at, gpu);
  machine_.simulated = true;
  showDevices();
}

void HardwareDialog::removeGpu() {
  const int row = devices_->currentRow();
  if (row < 0 || !machine_.devices[static_cast<std::size_t>(row)].device.is_gpu()) return;
  const int index = machine_.devices[static_cast<std::size_t>(row)].device.index;
  machine_.devices.erase(machine_.devices.begin() + row);
  for (auto& d : machine_.devices)
    if (d.device.is_gpu() && d.device.index > index) d.device.index -= 1;
  machine_.simulated = true;
  showDevices();
}

}  // namespace devicemap::ui
