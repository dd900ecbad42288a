#pragma once
// The picture of a plan: one column per device, one block per placed unit (embedding, each decoder
// layer, norm, lm_head, or the parts of a split layer) whose height follows its bytes, coloured by
// device; the budget and the reserves drawn as lines and bands; over-committed devices in red.
// Click, shift-click and rubber-band select (shared with the layer table); dragging the selection onto
// another column pins it there.
#include <QAbstractScrollArea>
#include <QFont>
#include <QItemSelectionModel>
#include <QPointer>

#include <optional>
#include <string>
#include <vector>

#include "plan/device.hpp"

class QRubberBand;

namespace devicemap::ui {

class LayerTableModel;
class SessionController;

class PlacementView : public QAbstractScrollArea {
  Q_OBJECT

 public:
  PlacementView(LayerTableModel* model, QItemSelectionModel* selection, QWidget* parent = nullptr);

  // Geometry in viewport coordinates (what mouse events use).
  QRect blockRect(int unit) const;
  QRect columnRect(const Device& d) const;
  int unitAt(const QPoint& viewportPos) const;  // -1 when no block is there
  std::optional<Device> columnAt(const QPoint& viewportPos) const;
  // Scrolls so that the unit's block is visible.
  void ensureVisible(int unit);

  double zoom() const { return zoom_; }
  std::vector<std::string> selectedNames() const;  // model order

 public Q_SLOTS:
  void relayout();  // after the plan changed
  void setZoom(double zoom);
  void zoomIn();
  void zoomOut();
  void zoomToFit();

 Q_SIGNALS:
  void hovered(const QString& text);           // one line for the status bar ("" when leaving)
  void notice(const QString& text);            // what a drop did, e.g. a tied partner that followed
  void contextMenuWanted(const QPoint& globalPos);

 protected:
  void paintEvent(QPaintEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;
  void keyPressEvent(QKeyEvent* event) override;
  void contextMenuEvent(QContextMenuEvent* event) override;
  bool viewportEvent(QEvent* event) override;
  void scrollContentsBy(int dx, int dy) override;

 private:
  struct Column {
    Device device;
    QRectF rect;          // whole column, content coordinates
    double top = 0;       // y of byte 0
    double weights_end = 0, kv_end = 0, reserve_end = 0;  // y where each band ends
    std::optional<double> budget_y, planned_y;            // nullopt: unlimited, or off the scale
    bool budget_below = false;                            // budget far below the drawn part
    bool over = false;
  };
  struct Block {
    int unit = 0;
    int column = 0;
    QRectF rect;  // content coordinates
  };
  enum class Gesture { None, Pressed, Dragging, Band };

  QPoint offset() const;  // content = viewport + offset
  void layoutBlocks();
  void updateScrollBars();
  void syncSelection();
  void selectUnits(const std::vector<int>& units, QItemSelectionModel::SelectionFlags flags);
  void dropOn(const Device& d);
  QString describe(int unit) const;
  void paintColumn(QPainter& p, const Column& c) const;
  void paintBlock(QPainter& p, const Block& b) const;

  LayerTableModel* model_;
  QPointer<QItemSelectionModel> selection_;
  std::vector<Column> columns_;
  std::vector<Block> blocks_;
  std::vector<int> block_of_unit_;  // -1 when none
  std::vector<char> selected_;      // per unit
  QSize content_;
  double scale_ = 0;   // pixels per byte (zoom applied)
  double fit_ = 0;     // pixels per byte that shows every column whole
  double zoom_ = 1;
  int line_ = 16;      // text line height
  QFont small_;        // labels of short blocks

  Gesture gesture_ = Gesture::None;
  QPoint press_pos_;   // viewport
  QPoint press_content_;
  QPoint drag_pos_;
  int press_unit_ = -1;
  std::optional<Device> drop_target_;
  std::vector<char> band_base_;  // selection when a ctrl rubber band started
  QRubberBand* band_ = nullptr;
};

}  // namespace devicemap::ui
