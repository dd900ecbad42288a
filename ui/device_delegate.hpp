#pragma once
// Edits the layer table's device cell with a list of the plan's devices; choosing one pins the block.
#include <QStyledItemDelegate>

namespace devicemap::ui {

class SessionController;

class DeviceDelegate : public QStyledItemDelegate {
  Q_OBJECT

 public:
  DeviceDelegate(SessionController* controller, QObject* parent = nullptr);

  QWidget* createEditor(QWidget* parent, const QStyleOptionViewItem& option, const QModelIndex& index) const override;
  void setEditorData(QWidget* editor, const QModelIndex& index) const override;
  void setModelData(QWidget* editor, QAbstractItemModel* model, const QModelIndex& index) const override;

 private:
  SessionController* controller_;
};

}  // namespace devicemap::ui
