#pragma once
// The What if view: predicted decode speed against one input of the plan — each GPU's budget, the
// context the KV reserve holds, the number of GPUs — with the planner and the speed model run at each
// point (plan/what_if.hpp) on a worker thread. The line takes the colour of what bounds the speed in each
// region; the current plan is a marked point; clicking a point makes it the plan, as one undo step.
#include <QPointF>
#include <QString>
#include <QWidget>

#include <optional>
#include <vector>

#include "plan/what_if.hpp"

QT_BEGIN_NAMESPACE
class QChart;
class QChartView;
class QComboBox;
class QLabel;
class QThread;
class QTimer;
QT_END_NAMESPACE

namespace devicemap::ui {

class SessionController;

class WhatIfView : public QWidget {
  Q_OBJECT

 public:
  explicit WhatIfView(SessionController* controller, QWidget* parent = nullptr);
  ~WhatIfView() override;

  WhatIfAxis axis() const { return axis_; }
  void setAxis(WhatIfAxis axis);

  // The curve drawn: for the axis shown and the plan as it was when it was computed.
  const std::vector<WhatIfPoint>& curve() const { return curve_; }
  bool computing() const { return worker_ != nullptr || pending_; }
  QChart* chart() const;
  QChartView* chartView() const { return view_; }
  // Where curve point `index` and the current plan sit in the chart (x as drawn: GiB, the context's
  // position on its doubling scale, a GPU count; y in tok/s). No current point when the plan has no
  // known prediction.
  QPointF chartPoint(std::size_t index) const;
  std::optional<QPointF> currentPoint() const;
  // Plans the curve if the inputs changed while the view was hidden (its dock tab calls this when raised).
  void refresh();
  // What clicking curve point `index` does: its budgets (or context) become the plan, one undo step.
  void choose(std::size_t index);

  // "bound by PCIe", "bound by GPU memory": the region a bottleneck belongs to.
  static QString regionName(const std::string& bottleneck);

 Q_SIGNALS:
  void curveReady();  // a new curve is drawn

 protected:
  void showEvent(QShowEvent* event) override;
  void changeEvent(QEvent* event) override;
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  bool onScreen() const;
  void schedule();  // recomputes soon (edits come in bursts while a slider moves)
  void compute();
  void draw();
  double chartX(double x) const;
  std::optional<std::size_t> nearest(const QPointF& chartPosition) const;
  QString pointText(std::size_t index) const;

  SessionController* controller_;
  QComboBox* axis_box_;
  QLabel* status_;
  QChartView* view_;
  QTimer* debounce_;
  WhatIfAxis axis_ = WhatIfAxis::GpuBudget;
  WhatIfAxis curve_axis_ = WhatIfAxis::GpuBudget;
  std::vector<WhatIfPoint> curve_;
  double curve_ms_ = 0;
  QThread* worker_ = nullptr;
  bool pending_ = false;  // inputs changed while hidden or while a curve was computing
};

}  // namespace devicemap::ui
