#include "ui/device_panel.hpp"

#include <QFrame>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QMenu>
#include <QPushButton>
#include <QToolButton>
#include <QVBoxLayout>

#include "ui/budget_editor.hpp"
#include "ui/device_style.hpp"
#include "ui/session_controller.hpp"
#include "ui/usage_bar.hpp"

namespace devicemap::ui {
namespace {

QString swatch(const Device& d) {
  return QStringLiteral("<span style='color:%1'>■</span> ").arg(deviceColor(d).name());
}

}  // namespace

DevicePanel::DevicePanel(SessionController* controller, QWidget* parent) : QWidget(parent), controller_(controller) {
  auto* layout = new QVBoxLayout(this);
  banner_ = new QLabel(this);
  banner_->setWordWrap(true);
  banner_->setFrameShape(QFrame::StyledPanel);
  banner_->setMargin(6);
  banner_->hide();
  layout->addWidget(banner_);
  rows_layout_ = new QVBoxLayout;
  layout->addLayout(rows_layout_);

  auto* buttons = new QHBoxLayout;
  auto* simulate = new QPushButton(tr("Simulate hardware…"), this);
  simulate->setToolTip(tr("Plan for a machine you don't have: a bundled profile, or GPUs of your choosing (Ctrl+H)"));
  connect(simulate, &QPushButton::clicked, this, &DevicePanel::simulateRequested);
  auto* add = new QToolButton(this);
  add->setText(tr("Add GPU"));
  add->setToolTip(tr("Add a simulated GPU of a common size"));
  add->setPopupMode(QToolButton::InstantPopup);
  auto* sizes = new QMenu(add);
  for (int gib : {8, 12, 16, 24, 32, 40, 48, 80, 96, 141})
    sizes->addAction(tr("%1 GiB").arg(gib), this, [this, gib] {
      controller_->addVirtualGpu(tr("virtual %1 GiB GPU").arg(gib), static_cast<std::uint64_t>(gib) << 30);
    });
  add->setMenu(sizes);
  buttons->addWidget(simulate);
  buttons->addWidget(add);
  buttons->addStretch(1);
  layout->addLayout(buttons);
  layout->addStretch(1);
  rebuild();
}

void DevicePanel::setBanner(const QString& text) {
  banner_->setText(text);
  banner_->setVisible(!text.isEmpty());
}

BudgetEditor* DevicePanel::editor(const Device& d) const {
  for (const auto& r : rows_)
    if (r.device == d) return r.editor;
  return nullptr;
}

void DevicePanel::rebuild() {
  if (rows_widget_) {  // later: a button in it may be what asked for the rebuild
    rows_widget_->hide();
    rows_widget_->deleteLater();
  }
  rows_.clear();
  rows_widget_ = new QWidget(this);
  auto* grid = new QVBoxLayout(rows_widget_);
  grid->setContentsMargins(0, 0, 0, 0);
  const Machine& m = controller_->session().machine();
  std::vector<DeviceInfo> devices = m.devices;
  if (std::none_of(devices.begin(), devices.end(), [](const DeviceInfo& i) { return i.device.is_disk(); })) {
    DeviceInfo disk;
    disk.device = Device::disk();
    disk.name = "disk";
    devices.push_back(disk);
  }
  for (const auto& info : devices) {
    Row row;
    row.device = info.device;
    auto* frame = new QFrame(rows_widget_);
    frame->setFrameShape(QFrame::StyledPanel);
    auto* box = new QGridLayout(frame);
    box->setContentsMargins(6, 4, 6, 4);
    row.title = new QLabel(frame);
    QString kind = info.simulated ? tr("simulated") : tr("detected");
    QString name = info.device.is_gpu() ? QString::fromStdString(info.name) : QString();
    row.title->setText(swatch(info.device) + QStringLiteral("<b>%1</b> %2 <i>(%3)</i>")
                                                 .arg(deviceLabel(info.device), name.toHtmlEscaped(), kind));
    row.title->setToolTip(info.simulated ? tr("Not on this machine: a device you plan for") : tr("Found on this machine"));
    box->addWidget(row.title, 0, 0);
    if (info.simulated && info.device.is_gpu()) {
      auto* remove = new QToolButton(frame);
      remove->setText(QStringLiteral("✕"));
      remove->setAutoRaise(true);
      remove->setToolTip(tr("Remove this simulated GPU"));
      const int index = info.device.index;
      connect(remove, &QToolButton::clicked, this, [this, index] { controller_->removeGpu(index); });
      box->addWidget(remove, 0, 1, Qt::AlignRight);
    }
    row.detail = new QLabel(frame);
    if (info.total > 0)
      row.detail->setText(info.simulated ? tr("%1 total").arg(sizeText(static_cast<std::int64_t>(info.total)))
                                         : tr("%1 total · %2 free")
                                               .arg(sizeText(static_cast<std::int64_t>(info.total)),
                                                    sizeText(static_cast<std::int64_t>(info.free))));
    box->addWidget(row.detail, 1, 0, 1, 2);
    if (!info.device.is_disk()) {
      row.editor = new BudgetEditor(frame);
      row.editor->setMaximum(std::max<std::uint64_t>(info.total, controller_->session().budgets().get(info.device).value_or(0)));
      const Device d = info.device;
      connect(row.editor, &BudgetEditor::edited, this, [this, d](std::uint64_t bytes, int gesture) {
        controller_->setBudget(d, bytes, gesture);
      });
      box->addWidget(row.editor, 2, 0, 1, 2);
    } else {
      auto* note = new QLabel(tr("No limit: what fits nowhere else is offloaded here"), frame);
      note->setEnabled(false);
      box->addWidget(note, 2, 0, 1, 2);
    }
    row.bar = new UsageBar(frame);
    box->addWidget(row.bar, 3, 0, 1, 2);
    row.reserve = new QLabel(frame);
    row.reserve->setEnabled(false);
    box->addWidget(row.reserve, 4, 0, 1, 2);
    grid->addWidget(frame);
    rows_.push_back(row);
  }
  rows_layout_->addWidget(rows_widget_);
  refresh();
}

void DevicePanel::refresh() {
  const Session& s = controller_->session();
  for (auto& row : rows_) {
    const auto budget = s.budgets().get(row.device);
    if (row.editor) {
      row.editor->setEnabled(budget.has_value());
      row.editor->setBytes(budget.value_or(0));
    }
    const DeviceUsage* u = s.usage(row.device);
    if (!u) {
      row.bar->setUsage(row.device, 0, 0, 0, budget ? std::optional<std::int64_t>(static_cast<std::int64_t>(*budget)) : std::nullopt);
      row.reserve->clear();
      continue;
    }
    row.bar->setUsage(row.device, u->weights, u->kv_cache, u->offload_reserve, u->budget);
    QStringList parts;
    if (u->kv_cache) parts << tr("KV cache %1").arg(sizeText(u->kv_cache));
    if (u->offload_reserve) parts << tr("offload reserve %1").arg(sizeText(u->offload_reserve));
    if (u->planned && u->budget && *u->planned != *u->budget) parts << tr("balanced to %1").arg(sizeText(*u->planned));
    row.reserve->setText(parts.isEmpty() ? tr("no reserve") : tr("reserve: ") + parts.join(QStringLiteral(" · ")));
  }
}

}  // namespace devicemap::ui
