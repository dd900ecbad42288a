#include "ui/layer_table_model.hpp"

#include <QBrush>
#include <QItemSelectionModel>

#include <algorithm>
#include <numeric>

#include "ui/device_style.hpp"
#include "ui/session_controller.hpp"

namespace devicemap::ui {

LayerTableModel::LayerTableModel(SessionController* controller, QObject* parent)
    : QAbstractTableModel(parent), controller_(controller) {
  refresh();
}

const PlacedUnit& LayerTableModel::unitAtRow(int row) const {
  return controller_->session().units()[static_cast<std::size_t>(unitOfRow(row))];
}

int LayerTableModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(row_unit_.size());
}

int LayerTableModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant LayerTableModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount()) return {};
  const PlacedUnit& u = unitAtRow(index.row());
  switch (role) {
    case UnitRole: return unitOfRow(index.row());
    case BytesRole: return static_cast<qlonglong>(u.bytes);
    case DeviceCodeRole: return deviceCode(u.device);
    case PinnedRole: return u.pinned;
    case Qt::DisplayRole:
    case Qt::EditRole:
      switch (index.column()) {
        case NameColumn: return QString::fromStdString(u.name);
        case ClassColumn: return QString::fromStdString(u.cls);
        case SizeColumn: return role == Qt::EditRole ? QVariant(static_cast<qlonglong>(u.bytes)) : QVariant(sizeText(u.bytes));
        case DeviceColumn: return role == Qt::EditRole ? QVariant(deviceCode(u.device)) : QVariant(deviceLabel(u.device));
        case PinnedColumn:
          if (u.pinned) return tr("pinned");
          if (!u.follows.empty()) return tr("follows %1").arg(QString::fromStdString(u.follows));
          return QString();
      }
      break;
    case Qt::DecorationRole:
      if (index.column() == DeviceColumn) return deviceColor(u.device);
      break;
    case Qt::TextAlignmentRole:
      if (index.column() == SizeColumn) return QVariant(Qt::AlignRight | Qt::AlignVCenter);
      break;
    case Qt::ToolTipRole:
      if (index.column() == DeviceColumn) return tr("Double-click to pin this block to another device");
      if (index.column() == PinnedColumn && !u.follows.empty())
        return tr("Tied weights share one tensor: this block goes wherever %1 is pinned")
            .arg(QString::fromStdString(u.follows));
      break;
    default: break;
  }
  return {};
}

QVariant LayerTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return QAbstractTableModel::headerData(section, orientation, role);
  switch (section) {
    case NameColumn: return tr("Name");
    case ClassColumn: return tr("Class");
    case SizeColumn: return tr("Size");
    case DeviceColumn: return tr("Device");
    case PinnedColumn: return tr("Pinned");
  }
  return {};
}

Qt::ItemFlags LayerTableModel::flags(const QModelIndex& index) const {
  auto f = QAbstractTableModel::flags(index);
  if (index.isValid() && index.column() == DeviceColumn) f |= Qt::ItemIsEditable;
  return f;
}

bool LayerTableModel::setData(const QModelIndex& index, const QVariant& value, int role) {
  if (!index.isValid() || index.column() != DeviceColumn || role != Qt::EditRole) return false;
  bool ok = false;
  const int code = value.toInt(&ok);
  if (!ok) return false;
  const Device d = deviceFromCode(code);
  const PlacedUnit& u = unitAtRow(index.row());
  if (u.device == d && u.pinned) return false;
  controller_->pin({u.name}, d);  // re-plans; refresh() follows through planChanged
  return true;
}

void LayerTableModel::refresh(QItemSelectionModel* keep) {
  const auto& units = controller_->session().units();
  const bool same = units.size() == names_.size() &&
                    std::equal(units.begin(), units.end(), names_.begin(), [](const PlacedUnit& u, const std::string& n) { return u.name == n; });
  if (same) {
    // Sizes, devices and pins may have changed: keep a sort by them true.
    if (sort_column_ == SizeColumn || sort_column_ == DeviceColumn || sort_column_ == PinnedColumn) reorder();
    // Only the rows whose cells read differently: a slider step usually moves a few blocks.
    int first = rowCount(), last = -1;
    for (std::size_t i = 0; i < units.size(); ++i) {
      const Shown now{units[i].bytes, units[i].device, units[i].pinned, units[i].follows};
      if (now == shown_[i]) continue;
      shown_[i] = now;
      first = std::min(first, rowOfUnit(static_cast<int>(i)));
      last = std::max(last, rowOfUnit(static_cast<int>(i)));
    }
    if (last >= 0) Q_EMIT dataChanged(index(first, 0), index(last, ColumnCount - 1));
    return;
  }
  std::vector<std::string> selected;
  if (keep)
    for (const auto& i : keep->selectedRows()) selected.push_back(unitAtRow(i.row()).name);
  beginResetModel();
  names_.clear();
  shown_.clear();
  unit_of_name_.clear();
  for (std::size_t i = 0; i < units.size(); ++i) {
    names_.push_back(units[i].name);
    shown_.push_back({units[i].bytes, units[i].device, units[i].pinned, units[i].follows});
    unit_of_name_.emplace(units[i].name, static_cast<int>(i));
  }
  applyOrder();
  endResetModel();
  if (keep && !selected.empty()) {
    QItemSelection sel;
    for (const auto& n : selected)
      if (auto i = indexOfName(n); i.isValid()) sel.select(i, i);
    keep->select(sel, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
  }
}

void LayerTableModel::sort(int column, Qt::SortOrder order) {
  sort_column_ = column;
  sort_order_ = order;
  reorder();
}

void LayerTableModel::reorder() {
  Q_EMIT layoutAboutToBeChanged({}, QAbstractItemModel::VerticalSortHint);
  const auto before = persistentIndexList();
  std::vector<int> units_before;
  for (const auto& i : before) units_before.push_back(unitOfRow(i.row()));
  applyOrder();
  QModelIndexList after;
  for (std::size_t k = 0; k < units_before.size(); ++k)
    after.push_back(index(rowOfUnit(units_before[k]), before[static_cast<int>(k)].column()));
  changePersistentIndexList(before, after);
  Q_EMIT layoutChanged({}, QAbstractItemModel::VerticalSortHint);
}

void LayerTableModel::applyOrder() {
  const auto& units = controller_->session().units();
  row_unit_.resize(names_.size());
  std::iota(row_unit_.begin(), row_unit_.end(), 0);
  auto key_less = [&](int a, int b) {
    const auto &x = units[static_cast<std::size_t>(a)], &y = units[static_cast<std::size_t>(b)];
    switch (sort_column_) {
      case NameColumn: return x.order < y.order;  // model order reads better than alphabetical
      case ClassColumn: return x.cls < y.cls;
      case SizeColumn: return x.bytes < y.bytes;
      case DeviceColumn: return x.device < y.device;
      case PinnedColumn: return x.pinned < y.pinned;
      default: return false;
    }
  };
  if (sort_column_ >= 0)
    std::stable_sort(row_unit_.begin(), row_unit_.end(), [&](int a, int b) {
      return sort_order_ == Qt::AscendingOrder ? key_less(a, b) : key_less(b, a);
    });
  unit_row_.assign(row_unit_.size(), 0);
  for (std::size_t r = 0; r < row_unit_.size(); ++r) unit_row_[static_cast<std::size_t>(row_unit_[r])] = static_cast<int>(r);
}

QModelIndex LayerTableModel::indexOfName(const std::string& name, int column) const {
  const auto it = unit_of_name_.find(name);
  return it == unit_of_name_.end() ? QModelIndex() : index(rowOfUnit(it->second), column);
}

}  // namespace devicemap::ui
