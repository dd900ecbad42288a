#include "ui/device_delegate.hpp"

#include <QComboBox>

#include "ui/device_style.hpp"
#include "ui/session_controller.hpp"

namespace devicemap::ui {

DeviceDelegate::DeviceDelegate(SessionController* controller, QObject* parent)
    : QStyledItemDelegate(parent), controller_(controller) {}

QWidget* DeviceDelegate::createEditor(QWidget* parent, const QStyleOptionViewItem&, const QModelIndex&) const {
  auto* box = new QComboBox(parent);
  for (const auto& u : controller_->session().plan().devices) box->addItem(deviceIcon(u.device), deviceLabel(u.device), deviceCode(u.device));
  // Commit as soon as a device is chosen: one pick, one pin.
  connect(box, &QComboBox::activated, this, [this, box] {
    auto* self = const_cast<DeviceDelegate*>(this);
    Q_EMIT self->commitData(box);
    Q_EMIT self->closeEditor(box);
  });
  return box;
}

void DeviceDelegate::setEditorData(QWidget* editor, const QModelIndex& index) const {
  auto* box = static_cast<QComboBox*>(editor);
  box->setCurrentIndex(box->findData(index.data(Qt::EditRole)));
}

void DeviceDelegate::setModelData(QWidget* editor, QAbstractItemModel* model, const QModelIndex& index) const {
  auto* box = static_cast<QComboBox*>(editor);
  if (box->currentIndex() >= 0) model->setData(index, box->currentData(), Qt::EditRole);
}

}  // namespace devicemap::ui
