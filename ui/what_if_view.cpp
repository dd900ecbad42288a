#include "ui/what_if_view.hpp"

#include <QChart>
#include <QChartView>
#include <QCategoryAxis>
#include <QComboBox>
#include <QCursor>
#include <QElapsedTimer>
#include <QEvent>
#include <QHBoxLayout>
#include <QLabel>
#include <QLegendMarker>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QMouseEvent>
#include <QScatterSeries>
#include <QSet>
#include <QThread>
#include <QTimer>
#include <QToolTip>
#include <QValueAxis>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <memory>

#include "model/skeleton.hpp"
#include "ui/device_style.hpp"
#include "ui/session_controller.hpp"
#include "ui/theme.hpp"

namespace devicemap::ui {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// A point over budget is drawn too (its plan is what Accelerate would make), and ringed.
bool drawable(const WhatIfPoint& p) { return p.planned && p.tokens_per_second > 0; }

QColor regionColor(const std::string& bottleneck) {
  if (bottleneck.starts_with("GPU")) return deviceColor(Device::gpu(0));
  if (bottleneck == "CPU RAM") return deviceColor(Device::cpu());
  if (bottleneck == "CPU compute") return deviceColor(Device::cpu()).darker(150);
  if (bottleneck == "disk") return deviceColor(Device::disk());
  if (bottleneck == "PCIe") return QColor::fromRgb(0x8e5cd9);
  return QColor::fromRgb(0x6c757d);  // dispatch
}

QString contextText(double tokens) {
  const auto t = static_cast<std::uint64_t>(tokens);
  if (t >= 1024 && t % 1024 == 0) return QStringLiteral("%1K").arg(t / 1024);
  return QString::number(t);
}

QString rateText(double tokens_per_second) {
  return tokens_per_second >= 100 ? QString::number(tokens_per_second, 'f', 0) : QString::number(tokens_per_second, 'g', 3);
}

}  // namespace

WhatIfView::WhatIfView(SessionController* controller, QWidget* parent)
    : QWidget(parent), controller_(controller), axis_box_(new QComboBox(this)), status_(new QLabel(this)),
      view_(new QChartView(new QChart, this)), debounce_(new QTimer(this)) {
  axis_box_->addItem(tr("GPU budget"), static_cast<int>(WhatIfAxis::GpuBudget));
  axis_box_->addItem(tr("context length"), static_cast<int>(WhatIfAxis::Context));
  axis_box_->addItem(tr("number of GPUs"), static_cast<int>(WhatIfAxis::GpuCount));
  axis_box_->setToolTip(tr("The input the plan is varied along; everything else stays as it is"));
  connect(axis_box_, &QComboBox::currentIndexChanged, this,
          [this](int index) { setAxis(static_cast<WhatIfAxis>(axis_box_->itemData(index).toInt())); });
  status_->setTextInteractionFlags(Qt::TextSelectableByMouse);

  auto* top = new QHBoxLayout;
  top->addWidget(new QLabel(tr("Predicted decode speed against"), this));
  top->addWidget(axis_box_);
  top->addStretch();
  top->addWidget(status_);
  auto* box = new QVBoxLayout(this);
  box->setContentsMargins(6, 6, 6, 6);
  box->addLayout(top);
  box->addWidget(view_, 1);

  view_->setRenderHint(QPainter::Antialiasing);
  view_->setMinimumHeight(160);
  view_->viewport()->installEventFilter(this);
  chart()->legend()->setAlignment(Qt::AlignRight);
  chart()->setMargins(QMargins(4, 4, 4, 4));

  debounce_->setSingleShot(true);
  debounce_->setInterval(120);
  connect(debounce_, &QTimer::timeout, this, &WhatIfView::compute);
  connect(controller_, &SessionController::planChanged, this, &WhatIfView::schedule);
  connect(controller_, &SessionController::modelChanged, this, &WhatIfView::schedule);
  pending_ = true;
}

WhatIfView::~WhatIfView() {
  if (worker_) {
    worker_->wait();
    delete worker_;
  }
}

QChart* WhatIfView::chart() const { return view_->chart(); }

void WhatIfView::setAxis(WhatIfAxis axis) {
  const int index = axis_box_->findData(static_cast<int>(axis));
  if (axis_box_->currentIndex() != index) axis_box_->setCurrentIndex(index);  // comes back here
  if (axis_ == axis && !curve_.empty()) return;
  axis_ = axis;
  compute();
}

void WhatIfView::showEvent(QShowEvent* event) {
  QWidget::showEvent(event);
  refresh();
}

void WhatIfView::refresh() {
  if (pending_) debounce_->start();  // a moment later: a tab being raised has its geometry by then
}

bool WhatIfView::onScreen() const {
  // A dock tab behind another one stays "visible", moved out of the window: only its region tells.
  return isVisible() && !visibleRegion().isEmpty();
}

void WhatIfView::changeEvent(QEvent* event) {
  QWidget::changeEvent(event);
  if (event->type() == QEvent::PaletteChange) draw();
}

bool WhatIfView::eventFilter(QObject* watched, QEvent* event) {
  // A click anywhere in the plot picks the point nearest along x, not only a click on the line.
  if (watched == view_->viewport() && event->type() == QEvent::MouseButtonRelease) {
    const auto* mouse = static_cast<QMouseEvent*>(event);
    const QPointF at = view_->mapToScene(mouse->position().toPoint());
    if (mouse->button() == Qt::LeftButton && chart()->plotArea().contains(at) && !chart()->series().isEmpty())
      if (const auto i = nearest(chart()->mapToValue(at, chart()->series().front()))) choose(*i);
  }
  return QWidget::eventFilter(watched, event);
}

void WhatIfView::schedule() {
  pending_ = true;
  if (onScreen()) debounce_->start();
}

void WhatIfView::compute() {
  debounce_->stop();
  pending_ = true;
  if (!onScreen() || worker_) return;  // when shown, or when the running curve is in
  pending_ = false;
  const Session& s = controller_->session();
  if (!s.has_model()) {
    curve_.clear();
    draw();
    return;
  }
  // The worker plans from copies: the session goes on changing while it runs.
  struct Job {
    Skeleton skeleton;
    Machine machine;
    MaxMemory budgets;
    PlanOptions options;
    WhatIfAxis axis;
    std::vector<WhatIfPoint> curve;
    double ms = 0;
  };
  auto job = std::make_shared<Job>(Job{s.model().skeleton, s.machine(), s.budgets(), s.options(), axis_, {}, 0});
  worker_ = QThread::create([job] {
    QElapsedTimer timer;
    timer.start();
    const PlanOptions& o = job->options;
    job->curve = what_if_curve(job->skeleton, job->machine, job->budgets, o, {o.dtype, o.flavor, 0, false, o.quantization}, job->axis);
    job->ms = static_cast<double>(timer.nsecsElapsed()) / 1e6;
  });
  connect(worker_, &QThread::finished, this, [this, job] {
    worker_->deleteLater();
    worker_ = nullptr;
    if (pending_) {  // the inputs changed meanwhile: this curve is stale
      compute();
      return;
    }
    curve_ = std::move(job->curve);
    curve_axis_ = job->axis;
    curve_ms_ = job->ms;
    draw();
    Q_EMIT curveReady();
  });
  status_->setText(tr("Planning each point…"));
  worker_->start();
}

QString WhatIfView::regionName(const std::string& bottleneck) {
  if (bottleneck.empty()) return tr("bound by nothing known");
  if (bottleneck.starts_with("GPU") && bottleneck.ends_with("memory")) return tr("bound by GPU memory");
  return tr("bound by %1").arg(QString::fromStdString(bottleneck));
}

double WhatIfView::chartX(double x) const {
  switch (curve_axis_) {
    case WhatIfAxis::GpuBudget:
      return x / kGiB;
    case WhatIfAxis::GpuCount:
      return x;
    case WhatIfAxis::Context: {
      // The points double from 128 tokens: drawn evenly, one step per doubling, and a context between
      // two of them where its logarithm puts it.
      for (std::size_t i = 0; i + 1 < curve_.size(); ++i) {
        const double lo = curve_[i].x, hi = curve_[i + 1].x;
        if (x > hi) continue;
        if (x <= lo) return static_cast<double>(i);
        const double t = lo > 0 ? std::log(x / lo) / std::log(hi / lo) : x / hi;
        return static_cast<double>(i) + t;
      }
      return curve_.empty() ? 0 : static_cast<double>(curve_.size() - 1);
    }
  }
  return x;
}

QPointF WhatIfView::chartPoint(std::size_t index) const {
  return {chartX(curve_.at(index).x), curve_.at(index).tokens_per_second};
}

std::optional<QPointF> WhatIfView::currentPoint() const {
  const Session& s = controller_->session();
  if (!s.has_model() || curve_.empty()) return std::nullopt;
  const SpeedPrediction p = s.predicted_speed();
  if (!p.known || !(p.tokens_per_second > 0)) return std::nullopt;
  return QPointF(chartX(what_if_position(curve_axis_, s.machine(), s.budgets(), s.options())), p.tokens_per_second);
}

std::optional<std::size_t> WhatIfView::nearest(const QPointF& chartPosition) const {
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < curve_.size(); ++i) {
    if (!curve_[i].planned) continue;
    if (!best || std::abs(chartPoint(i).x() - chartPosition.x()) < std::abs(chartPoint(*best).x() - chartPosition.x())) best = i;
  }
  return best;
}

void WhatIfView::choose(std::size_t index) {
  const Session& s = controller_->session();
  if (index >= curve_.size() || !s.has_model()) return;
  const double x = curve_[index].x;
  switch (curve_axis_) {
    case WhatIfAxis::GpuBudget:
      controller_->setBudgets(with_gpu_budget(s.machine(), s.budgets(), static_cast<std::uint64_t>(x)),
                              tr("What if: GPU budget %1").arg(sizeText(static_cast<std::int64_t>(x))));
      break;
    case WhatIfAxis::Context: {
      PlanOptions o = s.options();
      o.kv.context = static_cast<std::uint64_t>(x);
      o.kv.batch = std::max<std::uint64_t>(o.kv.batch, 1);
      if (o.kv.context == s.options().kv.context) return;
      controller_->setOptions(o, tr("What if: context %1 tokens").arg(contextText(x)));
      break;
    }
    case WhatIfAxis::GpuCount:
      controller_->setBudgets(with_gpu_count(s.machine(), s.budgets(), static_cast<std::size_t>(x)),
                              tr("What if: %n GPU(s)", nullptr, static_cast<int>(x)));
      break;
  }
}

QString WhatIfView::pointText(std::size_t index) const {
  const WhatIfPoint& p = curve_.at(index);
  QString where;
  switch (curve_axis_) {
    case WhatIfAxis::GpuBudget: where = tr("%1 per GPU").arg(sizeText(static_cast<std::int64_t>(p.x))); break;
    case WhatIfAxis::Context: where = tr("%1 tokens of context").arg(contextText(p.x)); break;
    case WhatIfAxis::GpuCount: where = tr("%n GPU(s)", nullptr, static_cast<int>(p.x)); break;
  }
  if (!p.planned) return tr("%1: the planner refused: %2").arg(where, QString::fromStdString(p.error));
  if (!(p.tokens_per_second > 0)) return tr("%1: no prediction").arg(where);
  QString text = tr("%1: %2 tok/s, %3").arg(where, rateText(p.tokens_per_second), regionName(p.bottleneck));
  if (!p.fits) text += tr(" (does not fit)");
  return text + tr("\nClick to plan with it");
}

void WhatIfView::draw() {
  QChart* c = chart();
  c->removeAllSeries();
  for (QAbstractAxis* a : c->axes()) {
    c->removeAxis(a);
    delete a;
  }
  const bool dark = isDark();
  c->setTheme(dark ? QChart::ChartThemeDark : QChart::ChartThemeLight);
  c->setBackgroundBrush(palette().color(QPalette::Base));
  c->setBackgroundRoundness(0);
  c->legend()->setLabelColor(palette().color(QPalette::Text));

  const Session& s = controller_->session();
  if (!s.has_model() || curve_.empty()) {
    status_->setText(s.has_model() ? tr("No curve") : tr("Open a model to see what more memory would buy"));
    return;
  }

  // x axis
  QAbstractAxis* x_axis = nullptr;
  switch (curve_axis_) {
    case WhatIfAxis::GpuBudget: {
      auto* a = new QValueAxis;
      a->setRange(0, std::max(chartX(curve_.back().x), 1.0));
      a->setLabelFormat(QStringLiteral("%.0f"));
      a->setTickCount(9);
      a->setTitleText(tr("budget of each GPU (GiB)"));
      x_axis = a;
      break;
    }
    case WhatIfAxis::Context: {
      auto* a = new QCategoryAxis;
      for (std::size_t i = 0; i < curve_.size(); ++i) a->append(contextText(curve_[i].x), static_cast<double>(i));
      a->setLabelsPosition(QCategoryAxis::AxisLabelsPositionOnValue);
      a->setRange(0, std::max<double>(static_cast<double>(curve_.size()) - 1, 1));
      a->setTitleText(tr("context (tokens the KV reserve holds, each step doubles)"));
      x_axis = a;
      break;
    }
    case WhatIfAxis::GpuCount: {
      auto* a = new QValueAxis;
      const int n = static_cast<int>(curve_.size()) - 1;
      a->setRange(0, std::max(n, 1));
      a->setTickCount(std::max(n, 1) + 1);
      a->setLabelFormat(QStringLiteral("%d"));
      a->setTitleText(tr("GPUs of %1 used").arg(QString::fromStdString(s.machine().name)));
      x_axis = a;
      break;
    }
  }

  // y axis: logarithmic when the speeds span orders of magnitude (disk against HBM), else from 0.
  double lo = 0, hi = 0;
  const auto current = currentPoint();
  for (const auto& p : curve_)
    if (p.planned && p.tokens_per_second > 0) {
      lo = lo == 0 ? p.tokens_per_second : std::min(lo, p.tokens_per_second);
      hi = std::max(hi, p.tokens_per_second);
    }
  if (current) {
    lo = lo == 0 ? current->y() : std::min(lo, current->y());
    hi = std::max(hi, current->y());
  }
  QAbstractAxis* y_axis = nullptr;
  if (hi > 30 * lo && lo > 0) {
    auto* a = new QLogValueAxis;
    // A label per doubling unless that crowds the axis (more than about ten of them).
    const bool decades = hi / lo > 1000;
    a->setBase(decades ? 10 : 2);
    a->setRange(lo / 1.6, hi * 1.6);
    a->setLabelFormat(QStringLiteral("%g"));
    a->setMinorTickCount(decades ? 8 : 0);
    a->setTitleText(tr("tok/s (log)"));
    y_axis = a;
  } else {
    auto* a = new QValueAxis;
    a->setRange(0, hi > 0 ? hi * 1.15 : 1);
    a->applyNiceNumbers();
    a->setLabelFormat(QStringLiteral("%g"));
    a->setTitleText(tr("tok/s"));
    y_axis = a;
  }
  c->addAxis(x_axis, Qt::AlignBottom);
  c->addAxis(y_axis, Qt::AlignLeft);
  const auto add = [&](QXYSeries* series) {
    c->addSeries(series);
    series->attachAxis(x_axis);
    series->attachAxis(y_axis);
    connect(series, &QXYSeries::hovered, this, [this](const QPointF& at, bool on) {
      const auto i = on ? nearest(at) : std::nullopt;
      if (i)
        QToolTip::showText(QCursor::pos(), pointText(*i), view_);
      else
        QToolTip::hideText();
    });
  };

  // One line per region of the same bottleneck, each reaching the next region's first point so the
  // line stays whole; one legend entry per bottleneck.
  QSet<QString> named;
  QLineSeries* line = nullptr;
  QString region;
  for (std::size_t i = 0; i < curve_.size(); ++i) {
    const WhatIfPoint& p = curve_[i];
    if (!drawable(p)) {
      line = nullptr;
      continue;
    }
    const QString r = regionName(p.bottleneck);
    if (line && r != region) {
      line->append(chartPoint(i));
      line = nullptr;
    }
    if (!line) {
      line = new QLineSeries;
      line->setName(r);
      line->setPen(QPen(regionColor(p.bottleneck), 3));
      line->setPointsVisible(true);
      line->setMarkerSize(7);
      add(line);
      if (named.contains(r))
        for (QLegendMarker* m : c->legend()->markers(line)) m->setVisible(false);
      named.insert(r);
      region = r;
    }
    line->append(chartPoint(i));
  }

  auto* over = new QScatterSeries;
  over->setName(tr("does not fit"));
  over->setMarkerSize(13);
  over->setBrush(Qt::NoBrush);
  over->setPen(QPen(overColor(), 2.5));
  for (std::size_t i = 0; i < curve_.size(); ++i)
    if (drawable(curve_[i]) && !curve_[i].fits) over->append(chartPoint(i));
  if (over->count() > 0) {
    add(over);
    for (QLegendMarker* m : c->legend()->markers(over)) {
      m->setPen(over->pen());
      m->setBrush(Qt::NoBrush);
    }
  } else
    delete over;

  if (current) {
    auto* mark = new QScatterSeries;
    mark->setName(tr("this plan"));
    mark->setMarkerSize(15);
    mark->setColor(palette().color(QPalette::Highlight));
    mark->setBorderColor(palette().color(QPalette::Text));
    mark->append(*current);
    add(mark);
  }

  QString status;
  const bool any = std::any_of(curve_.begin(), curve_.end(), [](const WhatIfPoint& p) { return p.tokens_per_second > 0; });
  if (!any)
    status = tr("No prediction: %1").arg(QString::fromStdString(s.predicted_speed().summary()));
  else if (curve_axis_ == WhatIfAxis::GpuBudget && curve_.size() == 1)
    status = tr("No GPU has a budget: give one a budget in Devices");
  else
    status = tr("%n plan(s) in %1 ms · click a point to plan with it", nullptr, static_cast<int>(curve_.size()))
                 .arg(curve_ms_ >= 10 ? QString::number(curve_ms_, 'f', 0) : QString::number(curve_ms_, 'f', 1));
  status_->setText(status);
}

}  // namespace devicemap::ui
