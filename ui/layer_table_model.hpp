#pragma once
// The plan's blocks as a table (name, class, size, device, pinned) over the session: the layer table
// and the placement view both show it, through one shared QItemSelectionModel. Sorting reorders rows
// in place, so that selection survives it; editing the device cell pins the block there.
#include <QAbstractTableModel>

#include <string>
#include <unordered_map>
#include <vector>

#include "session/session.hpp"

class QItemSelectionModel;

namespace devicemap::ui {

class SessionController;

class LayerTableModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column { NameColumn, ClassColumn, SizeColumn, DeviceColumn, PinnedColumn, ColumnCount };
  enum Role { UnitRole = Qt::UserRole + 1, BytesRole, DeviceCodeRole, PinnedRole };

  explicit LayerTableModel(SessionController* controller, QObject* parent = nullptr);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;
  Qt::ItemFlags flags(const QModelIndex& index) const override;
  bool setData(const QModelIndex& index, const QVariant& value, int role = Qt::EditRole) override;
  void sort(int column, Qt::SortOrder order = Qt::AscendingOrder) override;

  // Re-reads the session's units. When the blocks are the same ones, only their cells change; when the
  // plan split or merged blocks, the rows are rebuilt and `keep`'s selection restored by name.
  void refresh(QItemSelectionModel* keep = nullptr);

  // Units are the session's, in model order; rows may be sorted differently.
  int unitOfRow(int row) const { return row_unit_[static_cast<std::size_t>(row)]; }
  int rowOfUnit(int unit) const { return unit_row_[static_cast<std::size_t>(unit)]; }
  const PlacedUnit& unitAtRow(int row) const;
  QModelIndex indexOfName(const std::string& name, int column = NameColumn) const;

  SessionController* controller() const { return controller_; }

 private:
  void applyOrder();
  void reorder();  // re-sorts, moving persistent indexes (the selection) with their rows

  SessionController* controller_;
  // What each row showed last, to tell views only about rows that changed.
  struct Shown {
    std::int64_t bytes = 0;
    Device device;
    bool pinned = false;
    std::string follows;
    bool operator==(const Shown&) const = default;
  };
  std::vector<std::string> names_;  // unit names as last shown, model order
  std::vector<Shown> shown_;
  std::vector<int> row_unit_, unit_row_;
  std::unordered_map<std::string, int> unit_of_name_;
  int sort_column_ = -1;
  Qt::SortOrder sort_order_ = Qt::AscendingOrder;
};

}  // namespace devicemap::ui
