#include "ui/device_style.hpp"

#include <QPainter>
#include <QPixmap>

#include <array>
#include <cstdlib>

#include "plan/units.hpp"

namespace devicemap::ui {

QString deviceLabel(const Device& d) {
  if (d.is_gpu()) return QStringLiteral("GPU %1").arg(d.index);
  return d.is_cpu() ? QStringLiteral("CPU") : QStringLiteral("Disk");
}

QColor deviceColor(const Device& d) {
  // Distinguishable hues that read on light and dark backgrounds; CPU warm, disk neutral.
  static constexpr std::array<QRgb, 8> gpu{0x4c8bf5, 0x2bb3a3, 0x9b6ee8, 0x5cb85c, 0xe06c9f, 0x3fa7d6, 0xb38b2d, 0x7a86f0};
  if (d.is_gpu()) return QColor::fromRgb(gpu[static_cast<std::size_t>(d.index) % gpu.size()]);
  return d.is_cpu() ? QColor::fromRgb(0xf0a04b) : QColor::fromRgb(0x9aa0a6);
}

QIcon deviceIcon(const Device& d) {
  QPixmap swatch(16, 16);
  swatch.fill(Qt::transparent);
  QPainter p(&swatch);
  p.setPen(deviceColor(d).darker(140));
  p.setBrush(deviceColor(d));
  p.drawRect(2, 2, 11, 11);
  return QIcon(swatch);
}

QColor overColor() { return QColor::fromRgb(0xe53935); }

int deviceCode(const Device& d) {
  if (d.is_gpu()) return d.index;
  return d.is_cpu() ? -1 : -2;
}

Device deviceFromCode(int code) {
  if (code >= 0) return Device::gpu(code);
  return code == -1 ? Device::cpu() : Device::disk();
}

QString sizeText(std::int64_t bytes) {
  const auto text = QString::fromStdString(format_size(static_cast<std::uint64_t>(std::llabs(bytes))));
  return bytes < 0 ? QStringLiteral("−") + text : text;
}

}  // namespace devicemap::ui
