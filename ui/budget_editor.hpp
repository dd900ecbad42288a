#pragma once
// A max_memory editor for one device: a slider over the device's size and a spin box with a unit.
// Every step of one slider drag carries the same gesture id, so the steps undo as one.
#include <QWidget>

#include <cstdint>

class QComboBox;
class QDoubleSpinBox;
class QSlider;

namespace devicemap::ui {

class BudgetEditor : public QWidget {
  Q_OBJECT

 public:
  explicit BudgetEditor(QWidget* parent = nullptr);

  // The slider spans 0 … maximum; the spin box takes any size.
  void setMaximum(std::uint64_t bytes);
  void setBytes(std::uint64_t bytes);  // shows a value without emitting
  std::uint64_t bytes() const { return bytes_; }
  QSlider* slider() const { return slider_; }
  QDoubleSpinBox* spinBox() const { return spin_; }
  // Bytes one slider step is worth (a whole number of MiB, at most 4096 steps over the range).
  std::uint64_t step() const { return step_; }

 Q_SIGNALS:
  // A new budget; `gesture` is the drag's id (-1 for a single change).
  void edited(std::uint64_t bytes, int gesture);

 private:
  void showBytes();
  double unitBytes() const;

  QSlider* slider_;
  QDoubleSpinBox* spin_;
  QComboBox* unit_;
  std::uint64_t bytes_ = 0, maximum_ = 0, step_ = 1 << 20;
  int gesture_ = -1;
};

}  // namespace devicemap::ui
