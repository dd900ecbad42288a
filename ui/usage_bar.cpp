#include "ui/usage_bar.hpp"

#include <QPainter>

#include <algorithm>

#include "ui/device_style.hpp"

namespace devicemap::ui {

UsageBar::UsageBar(QWidget* parent) : QWidget(parent) { setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed); }

QSize UsageBar::sizeHint() const { return {160, fontMetrics().height() + 6}; }

void UsageBar::setUsage(const Device& d, std::int64_t weights, std::int64_t kv, std::int64_t reserve,
                        std::optional<std::int64_t> budget) {
  if (d == device_ && weights == weights_ && kv == kv_ && reserve == reserve_ && budget == budget_) return;
  device_ = d;
  weights_ = weights;
  kv_ = kv;
  reserve_ = reserve;
  budget_ = budget;
  const std::int64_t needed = weights + kv + reserve;
  QString tip = tr("weights %1").arg(sizeText(weights));
  if (kv) tip += tr(" · KV cache %1").arg(sizeText(kv));
  if (reserve) tip += tr(" · offload reserve %1 (room to bring in the largest offloaded layer)").arg(sizeText(reserve));
  if (budget) tip += tr("\nbudget %1").arg(sizeText(*budget));
  if (budget && needed > *budget) tip += tr(" — over by %1").arg(sizeText(needed - *budget));
  setToolTip(tip);
  update();
}

void UsageBar::paintEvent(QPaintEvent*) {
  QPainter p(this);
  const QRectF r = QRectF(rect()).adjusted(0.5, 0.5, -0.5, -0.5);
  p.setPen(palette().color(QPalette::Mid));
  p.setBrush(palette().color(QPalette::Base));
  p.drawRect(r);
  const std::int64_t needed = weights_ + kv_ + reserve_;
  const double full = static_cast<double>(std::max<std::int64_t>({1, needed, budget_.value_or(needed)}));
  double x = r.left();
  auto segment = [&](std::int64_t bytes, const QBrush& brush) {
    const double w = r.width() * static_cast<double>(bytes) / full;
    p.fillRect(QRectF(x, r.top(), w, r.height()), brush);
    x += w;
  };
  segment(weights_, deviceColor(device_));
  segment(kv_, QBrush(deviceColor(device_).darker(130), Qt::BDiagPattern));
  segment(reserve_, QBrush(palette().color(QPalette::Mid), Qt::FDiagPattern));
  if (budget_ && needed > *budget_) {
    const double at = r.left() + r.width() * static_cast<double>(*budget_) / full;
    QColor red = overColor();
    red.setAlpha(160);
    p.fillRect(QRectF(at, r.top(), r.right() - at, r.height()), red);
    p.setPen(QPen(overColor().darker(130), 2));
    p.drawLine(QPointF(at, r.top()), QPointF(at, r.bottom()));
  }
  const QString text = budget_ ? tr("%1 / %2").arg(sizeText(needed), sizeText(*budget_)) : sizeText(needed);
  p.setPen(palette().color(QPalette::WindowText));
  p.drawText(r, Qt::AlignCenter, text);
}

}  // namespace devicemap::ui
