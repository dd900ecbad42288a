#include "ui/budget_editor.hpp"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QHBoxLayout>
#include <QSignalBlocker>
#include <QSlider>

#include <algorithm>
#include <cmath>

namespace devicemap::ui {
namespace {

int next_gesture() {
  static int n = 0;
  return ++n;
}

}  // namespace

BudgetEditor::BudgetEditor(QWidget* parent) : QWidget(parent) {
  slider_ = new QSlider(Qt::Horizontal, this);
  slider_->setToolTip(tr("max_memory for this device: the planner puts no more than this here"));
  spin_ = new QDoubleSpinBox(this);
  spin_->setDecimals(2);
  spin_->setRange(0, 1e9);
  spin_->setKeyboardTracking(false);
  spin_->setAccelerated(true);
  // Its width would follow the range's longest number; a few digits are what people type.
  spin_->setMaximumWidth(spin_->fontMetrics().horizontalAdvance(QStringLiteral("00000.00")) + 40);
  spin_->setToolTip(tr("max_memory in the unit beside it (GiB = 2^30 bytes, GB = 10^9 bytes, as Accelerate reads them)"));
  unit_ = new QComboBox(this);
  for (const auto& [name, bytes] : {std::pair{"GiB", double(1ull << 30)}, {"GB", 1e9}, {"MiB", double(1ull << 20)},
                                    {"MB", 1e6}, {"KiB", 1024.0}})
    unit_->addItem(QString::fromLatin1(name), bytes);
  unit_->setToolTip(tr("Unit of the spin box"));
  auto* row = new QHBoxLayout(this);
  row->setContentsMargins(0, 0, 0, 0);
  row->addWidget(slider_, 1);
  row->addWidget(spin_);
  row->addWidget(unit_);

  connect(slider_, &QSlider::sliderPressed, this, [this] { gesture_ = next_gesture(); });
  connect(slider_, &QSlider::sliderReleased, this, [this] { gesture_ = -1; });
  connect(slider_, &QSlider::valueChanged, this, [this](int v) {
    bytes_ = std::min<std::uint64_t>(static_cast<std::uint64_t>(v) * step_, maximum_);
    showBytes();
    Q_EMIT edited(bytes_, slider_->isSliderDown() ? gesture_ : -1);
  });
  connect(spin_, &QDoubleSpinBox::valueChanged, this, [this](double v) {
    bytes_ = static_cast<std::uint64_t>(std::llround(v * unitBytes()));
    const QSignalBlocker block(slider_);
    slider_->setValue(static_cast<int>(std::min<std::uint64_t>(bytes_ / step_, static_cast<std::uint64_t>(slider_->maximum()))));
    Q_EMIT edited(bytes_, -1);
  });
  connect(unit_, &QComboBox::currentIndexChanged, this, [this] { showBytes(); });
}

double BudgetEditor::unitBytes() const { return unit_->currentData().toDouble(); }

void BudgetEditor::setMaximum(std::uint64_t bytes) {
  maximum_ = bytes;
  const std::uint64_t mib = 1ull << 20;
  step_ = std::max<std::uint64_t>(1, (bytes / 4096 + mib - 1) / mib) * mib;
  if (bytes < 64 * mib) step_ = std::max<std::uint64_t>(1, bytes / 4096);  // small devices: finer steps
  const QSignalBlocker block(slider_);
  slider_->setRange(0, static_cast<int>(bytes / step_));
  slider_->setPageStep(std::max(1, static_cast<int>((1ull << 30) / step_)));
  // A unit that suits the size: GiB for gigabytes, MiB below.
  const QSignalBlocker block_unit(unit_);
  unit_->setCurrentIndex(bytes >= (1ull << 30) ? 0 : 2);
  showBytes();
}

void BudgetEditor::setBytes(std::uint64_t bytes) {
  bytes_ = bytes;
  const QSignalBlocker block(slider_);
  slider_->setValue(static_cast<int>(std::min<std::uint64_t>(bytes / step_, static_cast<std::uint64_t>(slider_->maximum()))));
  showBytes();
}

void BudgetEditor::showBytes() {
  const QSignalBlocker block(spin_);
  spin_->setValue(static_cast<double>(bytes_) / unitBytes());
}

}  // namespace devicemap::ui
