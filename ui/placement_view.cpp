#include "ui/placement_view.hpp"

#include <QApplication>
#include <QContextMenuEvent>
#include <QHelpEvent>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QRubberBand>
#include <QScrollBar>
#include <QToolTip>

#include <algorithm>
#include <cmath>

#include "plan/units.hpp"
#include "ui/device_style.hpp"
#include "ui/layer_table_model.hpp"
#include "ui/session_controller.hpp"

namespace devicemap::ui {
namespace {

constexpr int kMargin = 10;
constexpr int kGap = 12;
constexpr int kMinColumn = 170;
constexpr double kMinBlock = 3;  // a block never shrinks below this, so every unit can be clicked

// "model.layers.12" → "layers.12": the common prefix of decoder models says nothing.
QString shortName(const std::string& name) {
  for (std::string_view prefix : {"model.", "transformer.", "gpt_neox.", "language_model.model."})
    if (name.starts_with(prefix) && name.size() > prefix.size()) return QString::fromStdString(name.substr(prefix.size()));
  return QString::fromStdString(name);
}

QColor textOn(const QColor& fill) { return fill.lightness() > 150 ? QColor(0x20, 0x21, 0x24) : QColor(Qt::white); }

}  // namespace

PlacementView::PlacementView(LayerTableModel* model, QItemSelectionModel* selection, QWidget* parent)
    : QAbstractScrollArea(parent), model_(model), selection_(selection) {
  setMouseTracking(true);
  viewport()->setMouseTracking(true);
  setFocusPolicy(Qt::StrongFocus);
  setMinimumSize(320, 240);
  band_ = new QRubberBand(QRubberBand::Rectangle, viewport());
  connect(selection_, &QItemSelectionModel::selectionChanged, this, [this] {
    syncSelection();
    viewport()->update();
  });
  connect(model_, &QAbstractItemModel::modelReset, this, &PlacementView::relayout);
  setToolTip(QString());
  relayout();
}

// --- layout --------------------------------------------------------------------------------------

void PlacementView::relayout() {
  line_ = fontMetrics().height();
  small_ = font();
  small_.setPointSizeF(small_.pointSizeF() * 0.8);
  layoutBlocks();
  syncSelection();
  updateScrollBars();
  viewport()->update();
}

void PlacementView::layoutBlocks() {
  const Session& s = model_->controller()->session();
  const auto& plan = s.plan();
  const auto& units = s.units();
  columns_.clear();
  blocks_.clear();
  block_of_unit_.assign(units.size(), -1);

  const int n = static_cast<int>(plan.devices.size());
  const QSize vp = viewport()->size();
  const int header = 3 * line_ + 10;
  if (n == 0) {
    content_ = vp;
    return;
  }
  const int width = std::max(kMinColumn, (vp.width() - 2 * kMargin - (n - 1) * kGap) / n);
  const double top = kMargin + header;
  const double avail = std::max(60.0, vp.height() - top - kMargin - line_);

  // Scale: everything (needs and budgets) fits the height; but blocks of an ordinary size stay tall
  // enough for a label, scrolling if need be.
  std::int64_t needed = 1, extent = 1;
  for (const auto& u : plan.devices) {
    needed = std::max(needed, u.needed());
    extent = std::max({extent, u.needed(), u.budget.value_or(0)});
  }
  std::vector<std::int64_t> sizes;
  for (const auto& u : units)
    if (u.bytes > 0) sizes.push_back(u.bytes);
  double readable = 0;
  if (!sizes.empty()) {
    std::nth_element(sizes.begin(), sizes.begin() + static_cast<std::ptrdiff_t>(sizes.size() / 2), sizes.end());
    readable = (line_ + 4.0) / static_cast<double>(sizes[sizes.size() / 2]);
  }
  double base = std::max(avail / static_cast<double>(extent), readable);
  // Budgets far beyond the largest need (a small model on a big GPU) are marked, not drawn: then let
  // the blocks use the room instead.
  if (static_cast<double>(extent) * base > avail) base = std::max(base, 0.6 * avail / static_cast<double>(needed));
  fit_ = avail / static_cast<double>(needed);
  scale_ = base * zoom_;
  // The drawn height: the largest need, or the whole view; budgets beyond it are marked, not drawn.
  const double drawn = std::max(avail, static_cast<double>(needed) * scale_ + 2.0 * line_);

  for (int i = 0; i < n; ++i) {
    const auto& u = plan.devices[static_cast<std::size_t>(i)];
    Column c;
    c.device = u.device;
    c.top = top;
    c.over = u.shortfall() > 0;
    columns_.push_back(c);
  }
  auto column_of = [&](const Device& d) {
    for (int i = 0; i < n; ++i)
      if (columns_[static_cast<std::size_t>(i)].device == d) return i;
    return -1;
  };
  std::vector<double> y(static_cast<std::size_t>(n), top);
  for (std::size_t k = 0; k < units.size(); ++k) {
    const int col = column_of(units[k].device);
    if (col < 0) continue;
    auto& at = y[static_cast<std::size_t>(col)];
    const double h = std::max(kMinBlock, static_cast<double>(units[k].bytes) * scale_);
    const double x = kMargin + col * (width + kGap);
    Block b;
    b.unit = static_cast<int>(k);
    b.column = col;
    b.rect = QRectF(x + 6, at, width - 12, h);
    at += h;
    block_of_unit_[k] = static_cast<int>(blocks_.size());
    blocks_.push_back(b);
  }
  double bottom = top + drawn;
  for (int i = 0; i < n; ++i) {
    auto& c = columns_[static_cast<std::size_t>(i)];
    const auto& u = plan.devices[static_cast<std::size_t>(i)];
    c.weights_end = y[static_cast<std::size_t>(i)];
    c.kv_end = c.weights_end + static_cast<double>(u.kv_cache) * scale_;
    c.reserve_end = c.kv_end + static_cast<double>(u.offload_reserve) * scale_;
    auto line_at = [&](std::optional<std::int64_t> bytes) -> std::optional<double> {
      if (!bytes) return std::nullopt;
      const double at = top + static_cast<double>(*bytes) * scale_;
      if (at > top + drawn) return std::nullopt;
      return at;
    };
    c.budget_y = line_at(u.budget);
    if (u.planned && u.budget && *u.planned != *u.budget) c.planned_y = line_at(u.planned);
    c.budget_below = u.budget && !c.budget_y;
    bottom = std::max(bottom, c.reserve_end + line_);
  }
  for (int i = 0; i < n; ++i) {
    auto& c = columns_[static_cast<std::size_t>(i)];
    c.rect = QRectF(kMargin + i * (width + kGap), kMargin, width, bottom - kMargin);
  }
  content_ = QSize(2 * kMargin + n * width + (n - 1) * kGap, static_cast<int>(std::ceil(bottom + kMargin)));
}

void PlacementView::updateScrollBars() {
  const QSize vp = viewport()->size();
  horizontalScrollBar()->setRange(0, std::max(0, content_.width() - vp.width()));
  horizontalScrollBar()->setPageStep(vp.width());
  verticalScrollBar()->setRange(0, std::max(0, content_.height() - vp.height()));
  verticalScrollBar()->setPageStep(vp.height());
  verticalScrollBar()->setSingleStep(line_ * 2);
}

QPoint PlacementView::offset() const { return {horizontalScrollBar()->value(), verticalScrollBar()->value()}; }

void PlacementView::resizeEvent(QResizeEvent* event) {
  QAbstractScrollArea::resizeEvent(event);
  relayout();
}

void PlacementView::scrollContentsBy(int, int) { viewport()->update(); }

void PlacementView::setZoom(double zoom) {
  zoom_ = std::clamp(zoom, 0.02, 50.0);
  relayout();
}

void PlacementView::zoomIn() { setZoom(zoom_ * 1.25); }
void PlacementView::zoomOut() { setZoom(zoom_ / 1.25); }

void PlacementView::zoomToFit() {
  // scale_ = base × zoom; fit_ shows the largest need whole.
  const double base = zoom_ > 0 && scale_ > 0 ? scale_ / zoom_ : 0;
  if (base > 0 && fit_ > 0) setZoom(std::min(1.0, fit_ / base));
}

// --- geometry queries ----------------------------------------------------------------------------

QRect PlacementView::blockRect(int unit) const {
  if (unit < 0 || static_cast<std::size_t>(unit) >= block_of_unit_.size() || block_of_unit_[static_cast<std::size_t>(unit)] < 0)
    return {};
  return blocks_[static_cast<std::size_t>(block_of_unit_[static_cast<std::size_t>(unit)])].rect.toAlignedRect().translated(-offset());
}

QRect PlacementView::columnRect(const Device& d) const {
  for (const auto& c : columns_)
    if (c.device == d) return c.rect.toAlignedRect().translated(-offset());
  return {};
}

int PlacementView::unitAt(const QPoint& pos) const {
  const QPointF p = pos + offset();
  for (const auto& b : blocks_)
    if (b.rect.contains(p)) return b.unit;
  return -1;
}

std::optional<Device> PlacementView::columnAt(const QPoint& pos) const {
  const QPointF p = pos + offset();
  for (const auto& c : columns_)
    if (p.x() >= c.rect.left() - kGap / 2.0 && p.x() <= c.rect.right() + kGap / 2.0) return c.device;
  return std::nullopt;
}

void PlacementView::ensureVisible(int unit) {
  const QRect r = blockRect(unit);
  if (r.isNull()) return;
  if (r.top() < 0 || r.bottom() > viewport()->height())
    verticalScrollBar()->setValue(verticalScrollBar()->value() + r.center().y() - viewport()->height() / 2);
  if (r.left() < 0 || r.right() > viewport()->width())
    horizontalScrollBar()->setValue(horizontalScrollBar()->value() + r.center().x() - viewport()->width() / 2);
}

// --- selection -----------------------------------------------------------------------------------

void PlacementView::syncSelection() {
  selected_.assign(block_of_unit_.size(), 0);
  if (!selection_) return;
  for (const auto& range : selection_->selection())
    for (int row = range.top(); row <= range.bottom(); ++row)
      if (row < model_->rowCount()) selected_[static_cast<std::size_t>(model_->unitOfRow(row))] = 1;
}

void PlacementView::selectUnits(const std::vector<int>& units, QItemSelectionModel::SelectionFlags flags) {
  QItemSelection sel;
  for (int u : units) {
    const QModelIndex i = model_->index(model_->rowOfUnit(u), 0);
    sel.select(i, i);
  }
  selection_->select(sel, flags | QItemSelectionModel::Rows);
}

std::vector<std::string> PlacementView::selectedNames() const {
  std::vector<std::string> out;
  const auto& units = model_->controller()->session().units();
  for (std::size_t u = 0; u < selected_.size() && u < units.size(); ++u)
    if (selected_[u]) out.push_back(units[u].name);
  return out;
}

// --- mouse ---------------------------------------------------------------------------------------

void PlacementView::mousePressEvent(QMouseEvent* event) {
  if (event->button() != Qt::LeftButton) {
    QAbstractScrollArea::mousePressEvent(event);
    return;
  }
  setFocus(Qt::MouseFocusReason);
  press_pos_ = event->position().toPoint();
  press_content_ = press_pos_ + offset();
  press_unit_ = unitAt(press_pos_);
  const auto mods = event->modifiers();
  if (press_unit_ < 0) {
    gesture_ = Gesture::Band;
    band_base_ = (mods & Qt::ControlModifier) ? selected_ : std::vector<char>(selected_.size(), 0);
    if (!(mods & Qt::ControlModifier)) selection_->clearSelection();
    band_->setGeometry(QRect(press_pos_, QSize()));
    band_->show();
    return;
  }
  const QModelIndex index = model_->index(model_->rowOfUnit(press_unit_), 0);
  if (mods & Qt::ShiftModifier) {
    // A range in model order, from the current block to this one.
    int anchor = selection_->currentIndex().isValid() ? model_->unitOfRow(selection_->currentIndex().row()) : press_unit_;
    std::vector<int> range;
    for (int u = std::min(anchor, press_unit_); u <= std::max(anchor, press_unit_); ++u)
      if (block_of_unit_[static_cast<std::size_t>(u)] >= 0) range.push_back(u);
    selectUnits(range, (mods & Qt::ControlModifier) ? QItemSelectionModel::Select : QItemSelectionModel::ClearAndSelect);
  } else if (mods & Qt::ControlModifier) {
    selectUnits({press_unit_}, QItemSelectionModel::Toggle);
    selection_->setCurrentIndex(index, QItemSelectionModel::NoUpdate);
  } else {
    if (!selected_[static_cast<std::size_t>(press_unit_)]) selectUnits({press_unit_}, QItemSelectionModel::ClearAndSelect);
    selection_->setCurrentIndex(index, QItemSelectionModel::NoUpdate);
  }
  gesture_ = Gesture::Pressed;
}

void PlacementView::mouseMoveEvent(QMouseEvent* event) {
  const QPoint pos = event->position().toPoint();
  switch (gesture_) {
    case Gesture::None: {
      const int u = unitAt(pos);
      Q_EMIT hovered(u >= 0 ? describe(u).section(QLatin1Char('\n'), 0, 0) : QString());
      return;
    }
    case Gesture::Pressed:
      if ((pos - press_pos_).manhattanLength() < QApplication::startDragDistance()) return;
      gesture_ = Gesture::Dragging;
      [[fallthrough]];
    case Gesture::Dragging:
      drag_pos_ = pos;
      drop_target_ = columnAt(pos);
      viewport()->update();
      return;
    case Gesture::Band: {
      const QRect rect = QRect(press_pos_, pos).normalized();
      band_->setGeometry(rect);
      const QRectF content = QRectF(rect.translated(offset()));
      std::vector<char> want = band_base_;
      want.resize(selected_.size(), 0);
      for (const auto& b : blocks_)
        if (b.rect.intersects(content)) want[static_cast<std::size_t>(b.unit)] = 1;
      if (want != selected_) {
        std::vector<int> units;
        for (std::size_t u = 0; u < want.size(); ++u)
          if (want[u]) units.push_back(static_cast<int>(u));
        selectUnits(units, QItemSelectionModel::ClearAndSelect);
      }
      return;
    }
  }
}

void PlacementView::mouseReleaseEvent(QMouseEvent* event) {
  if (event->button() != Qt::LeftButton) {
    QAbstractScrollArea::mouseReleaseEvent(event);
    return;
  }
  const Gesture g = gesture_;
  gesture_ = Gesture::None;
  band_->hide();
  if (g == Gesture::Dragging) {
    const auto target = columnAt(event->position().toPoint());
    drop_target_.reset();
    if (target) dropOn(*target);
    viewport()->update();
  } else if (g == Gesture::Pressed && !(event->modifiers() & (Qt::ShiftModifier | Qt::ControlModifier)) && press_unit_ >= 0) {
    // A plain click on one block of a larger selection selects just that block.
    selectUnits({press_unit_}, QItemSelectionModel::ClearAndSelect);
  }
}

void PlacementView::dropOn(const Device& d) {
  const auto names = selectedNames();
  if (names.empty()) return;
  auto* controller = model_->controller();
  controller->pin(names, d);
  const auto& s = controller->session();
  QStringList told;
  if (!s.plan_error().empty()) told << QString::fromStdString(s.plan_error());
  for (const auto& note : s.plan().notes) told << QString::fromStdString(note);
  Q_EMIT notice(told.isEmpty() ? tr("Pinned %n block(s) to %1", nullptr, static_cast<int>(names.size())).arg(deviceLabel(d))
                               : told.join(QStringLiteral("; ")));
}

void PlacementView::wheelEvent(QWheelEvent* event) {
  if (event->modifiers() & Qt::ControlModifier) {
    if (event->angleDelta().y() > 0) zoomIn();
    if (event->angleDelta().y() < 0) zoomOut();
    event->accept();
    return;
  }
  QAbstractScrollArea::wheelEvent(event);
}

void PlacementView::keyPressEvent(QKeyEvent* event) {
  if (event->key() == Qt::Key_Escape && gesture_ != Gesture::None) {
    gesture_ = Gesture::None;
    drop_target_.reset();
    band_->hide();
    viewport()->update();
    return;
  }
  QAbstractScrollArea::keyPressEvent(event);
}

void PlacementView::contextMenuEvent(QContextMenuEvent* event) {
  const int u = unitAt(event->pos());
  if (u >= 0 && !selected_[static_cast<std::size_t>(u)]) selectUnits({u}, QItemSelectionModel::ClearAndSelect);
  Q_EMIT contextMenuWanted(event->globalPos());
}

bool PlacementView::viewportEvent(QEvent* event) {
  if (event->type() == QEvent::ToolTip) {
    auto* help = static_cast<QHelpEvent*>(event);
    const int u = unitAt(help->pos());
    if (u >= 0)
      QToolTip::showText(help->globalPos(), describe(u), viewport(), blockRect(u));
    else
      QToolTip::hideText();
    return true;
  }
  if (event->type() == QEvent::Leave) Q_EMIT hovered(QString());
  return QAbstractScrollArea::viewportEvent(event);
}

QString PlacementView::describe(int unit) const {
  const Session& s = model_->controller()->session();
  const PlacedUnit& u = s.units()[static_cast<std::size_t>(unit)];
  QString dtype = QString::fromLatin1(torch_name(u.dtype));
  if (const auto& t = s.options().dtype; t && is_floating(u.dtype) && *t != u.dtype)
    dtype = tr("%1, planned as %2").arg(dtype, QString::fromLatin1(torch_name(*t)));
  QString text = tr("%1 — %2, %3 (%4 bytes), %5, on %6")
                     .arg(QString::fromStdString(u.name), QString::fromStdString(u.cls), sizeText(u.bytes))
                     .arg(u.bytes)
                     .arg(dtype, deviceLabel(u.device));
  if (u.pinned) text += QLatin1Char('\n') + tr("Pinned here (Unpin: Ctrl+U)");
  if (!u.follows.empty())
    text += QLatin1Char('\n') + tr("Follows %1: they share a tied weight").arg(QString::fromStdString(u.follows));
  return text;
}

// --- painting ------------------------------------------------------------------------------------

void PlacementView::paintEvent(QPaintEvent*) {
  QPainter p(viewport());
  p.setRenderHint(QPainter::Antialiasing, false);
  const QPalette& pal = palette();
  p.fillRect(viewport()->rect(), pal.color(QPalette::Window));
  const Session& s = model_->controller()->session();
  if (columns_.empty()) {
    p.setPen(s.plan_error().empty() ? pal.color(QPalette::PlaceholderText) : overColor());
    const QString text = !s.plan_error().empty() ? tr("No plan: %1").arg(QString::fromStdString(s.plan_error()))
                         : s.has_model()          ? tr("Nothing to place")
                                                  : tr("Open a model: File › Open, or drop a model folder here");
    p.drawText(viewport()->rect().adjusted(20, 20, -20, -20), Qt::AlignCenter | Qt::TextWordWrap, text);
    return;
  }
  p.translate(-offset());
  const QRectF visible = QRectF(viewport()->rect().translated(offset()));
  for (const auto& c : columns_)
    if (c.rect.intersects(visible)) paintColumn(p, c);
  for (const auto& b : blocks_)
    if (b.rect.intersects(visible)) paintBlock(p, b);
  // Lines over the blocks: the budget, and the balanced budget the walk used.
  for (const auto& c : columns_) {
    const double l = c.rect.left() + 2, r = c.rect.right() - 2;
    if (c.planned_y) {
      p.setPen(QPen(pal.color(QPalette::WindowText), 1, Qt::DotLine));
      p.drawLine(QPointF(l, *c.planned_y), QPointF(r, *c.planned_y));
    }
    if (c.budget_y) {
      p.setPen(QPen(c.over ? overColor() : pal.color(QPalette::WindowText), 2));
      p.drawLine(QPointF(l, *c.budget_y), QPointF(r, *c.budget_y));
      p.drawText(QRectF(l + 4, *c.budget_y + 1, r - l - 8, line_), Qt::AlignRight | Qt::AlignTop, tr("budget"));
    }
  }
  // Dragging: the target column, and what is being carried.
  if (gesture_ == Gesture::Dragging) {
    if (drop_target_)
      for (const auto& c : columns_)
        if (c.device == *drop_target_) {
          p.setPen(QPen(pal.color(QPalette::Highlight), 3));
          p.setBrush(Qt::NoBrush);
          p.drawRoundedRect(c.rect.adjusted(1, 1, -1, -1), 6, 6);
        }
    p.resetTransform();
    const int count = static_cast<int>(std::count(selected_.begin(), selected_.end(), 1));
    const QString text = drop_target_ ? tr("%n block(s) → %1", nullptr, count).arg(deviceLabel(*drop_target_))
                                      : tr("%n block(s)", nullptr, count);
    const QRect r = fontMetrics().boundingRect(text).adjusted(-8, -4, 8, 4).translated(drag_pos_ + QPoint(14, 10));
    p.setRenderHint(QPainter::Antialiasing, true);
    p.setPen(Qt::NoPen);
    p.setBrush(pal.color(QPalette::Highlight));
    p.drawRoundedRect(r, 5, 5);
    p.setPen(pal.color(QPalette::HighlightedText));
    p.drawText(r, Qt::AlignCenter, text);
  }
}

void PlacementView::paintColumn(QPainter& p, const Column& c) const {
  const Session& s = model_->controller()->session();
  const QPalette& pal = palette();
  const DeviceUsage* u = s.usage(c.device);
  p.setPen(QPen(c.over ? overColor() : pal.color(QPalette::Mid), c.over ? 2 : 1));
  QColor bg = pal.color(QPalette::Base);
  if (c.over) bg = QColor::fromRgbF(std::min(1.0, bg.redF() * 0.85 + 0.15), bg.greenF() * 0.85, bg.blueF() * 0.85);
  p.setBrush(bg);
  p.drawRoundedRect(c.rect, 6, 6);

  // Header: device, use against budget, what is wrong or what is left.
  const DeviceInfo* info = s.machine().find(c.device);
  QString title = deviceLabel(c.device);
  if (info && !info->name.empty() && c.device.is_gpu()) title += QStringLiteral(" · ") + QString::fromStdString(info->name);
  if (info && info->simulated) title += tr(" (sim)");
  const QRectF text(c.rect.left() + 8, c.rect.top() + 4, c.rect.width() - 16, line_);
  p.setPen(pal.color(QPalette::WindowText));
  QFont bold = p.font();
  bold.setBold(true);
  p.setFont(bold);
  p.drawText(text, Qt::AlignLeft | Qt::AlignVCenter, p.fontMetrics().elidedText(title, Qt::ElideRight, static_cast<int>(text.width())));
  p.setFont(font());
  if (!u) return;
  const QString used = u->budget ? tr("%1 / %2").arg(sizeText(u->needed()), sizeText(*u->budget))
                                 : tr("%1, no limit").arg(sizeText(u->needed()));
  p.drawText(text.translated(0, line_), Qt::AlignLeft | Qt::AlignVCenter,
             p.fontMetrics().elidedText(used, Qt::ElideRight, static_cast<int>(text.width())));
  QString state;
  if (c.over) {
    p.setPen(overColor());
    state = tr("over by %1").arg(sizeText(u->shortfall()));
  } else {
    p.setPen(pal.color(QPalette::PlaceholderText));
    state = u->budget ? tr("%1 free").arg(sizeText(*u->budget - u->needed())) : QString();
  }
  if (u->kv_cache + u->offload_reserve > 0)
    state += (state.isEmpty() ? QString() : QStringLiteral(" · ")) + tr("reserve %1").arg(sizeText(u->kv_cache + u->offload_reserve));
  p.drawText(text.translated(0, 2 * line_), Qt::AlignLeft | Qt::AlignVCenter,
             p.fontMetrics().elidedText(state, Qt::ElideRight, static_cast<int>(text.width())));

  // The reserves below the weights: KV cache, and room for an offloaded layer brought in to run.
  const double l = c.rect.left() + 6, w = c.rect.width() - 12;
  if (c.kv_end > c.weights_end) {
    p.setPen(QPen(deviceColor(c.device).darker(140), 1, Qt::DashLine));
    p.setBrush(QBrush(deviceColor(c.device), Qt::BDiagPattern));
    const QRectF r(l, c.weights_end, w, c.kv_end - c.weights_end);
    p.drawRect(r);
    p.setPen(pal.color(QPalette::WindowText));
    if (r.height() >= line_)
      p.drawText(r, Qt::AlignCenter, p.fontMetrics().elidedText(tr("KV cache %1").arg(sizeText(u->kv_cache)), Qt::ElideRight, static_cast<int>(w)));
  }
  if (c.reserve_end > c.kv_end) {
    p.setPen(QPen(pal.color(QPalette::Mid), 1, Qt::DashLine));
    p.setBrush(QBrush(pal.color(QPalette::Mid), Qt::FDiagPattern));
    const QRectF r(l, c.kv_end, w, c.reserve_end - c.kv_end);
    p.drawRect(r);
    p.setPen(pal.color(QPalette::WindowText));
    if (r.height() >= line_)
      p.drawText(r, Qt::AlignCenter,
                 p.fontMetrics().elidedText(tr("offload reserve %1").arg(sizeText(u->offload_reserve)), Qt::ElideRight, static_cast<int>(w)));
  }
  // What does not fit: the part of the stack past the budget line.
  if (c.over && c.budget_y && c.reserve_end > *c.budget_y) {
    QColor red = overColor();
    red.setAlpha(70);
    p.fillRect(QRectF(c.rect.left() + 2, *c.budget_y, c.rect.width() - 4, c.reserve_end - *c.budget_y), red);
  }
  if (c.budget_below && u->budget) {
    p.setPen(pal.color(QPalette::PlaceholderText));
    p.drawText(QRectF(c.rect.left() + 8, c.rect.bottom() - line_ - 4, c.rect.width() - 16, line_), Qt::AlignCenter,
               tr("budget %1 ↓").arg(sizeText(*u->budget)));
  }
}

void PlacementView::paintBlock(QPainter& p, const Block& b) const {
  const Session& s = model_->controller()->session();
  const PlacedUnit& u = s.units()[static_cast<std::size_t>(b.unit)];
  const bool selected = selected_[static_cast<std::size_t>(b.unit)] != 0;
  QColor fill = deviceColor(u.device);
  if (b.unit % 2) fill = fill.lighter(112);  // neighbours stay apart
  if (selected) fill = QColor::fromRgbF((fill.redF() + palette().color(QPalette::Highlight).redF()) / 2,
                                        (fill.greenF() + palette().color(QPalette::Highlight).greenF()) / 2,
                                        (fill.blueF() + palette().color(QPalette::Highlight).blueF()) / 2);
  p.setPen(selected ? QPen(palette().color(QPalette::Highlight).darker(130), 2) : QPen(fill.darker(135), 1));
  p.setBrush(fill);
  p.drawRect(b.rect.adjusted(0.5, 0.5, -0.5, -0.5));
  if (b.rect.height() >= 0.6 * line_) {
    p.setPen(textOn(fill));
    if (b.rect.height() < line_ - 2) p.setFont(small_);  // a short block still says what it is
    const QRectF r = b.rect.adjusted(6, 0, -16, 0);
    const QString name = shortName(u.name), size = sizeText(u.bytes);
    const auto& fm = p.fontMetrics();
    const int name_w = fm.horizontalAdvance(name), size_w = fm.horizontalAdvance(size);
    if (name_w + size_w + 8 <= r.width()) {
      p.drawText(r, Qt::AlignLeft | Qt::AlignVCenter, name);
      p.drawText(r, Qt::AlignRight | Qt::AlignVCenter, size);
    } else {  // narrow: the name matters more
      p.drawText(r, Qt::AlignLeft | Qt::AlignVCenter, fm.elidedText(name, Qt::ElideMiddle, static_cast<int>(r.width())));
    }
    p.setFont(font());
  }
  if (u.pinned || !u.follows.empty()) {
    // A pin head in the corner: filled when pinned, hollow when it follows a tied partner's pin.
    p.setRenderHint(QPainter::Antialiasing, true);
    const double r = std::min(4.0, b.rect.height() / 2 - 0.5);
    const QPointF at(b.rect.right() - 8, b.rect.top() + std::min(b.rect.height() / 2, 8.0));
    p.setPen(QPen(textOn(fill), 1.5));
    p.setBrush(u.pinned ? QBrush(textOn(fill)) : Qt::NoBrush);
    p.drawEllipse(at, r, r);
    p.setRenderHint(QPainter::Antialiasing, false);
  }
}

}  // namespace devicemap::ui
