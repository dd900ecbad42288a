#pragma once
// What a device holds against its budget, as one bar: weights, KV-cache reserve, offload reserve, and in
// red whatever goes past the budget.
#include <QWidget>

#include <cstdint>
#include <optional>

#include "plan/device.hpp"

namespace devicemap::ui {

class UsageBar : public QWidget {
  Q_OBJECT

 public:
  explicit UsageBar(QWidget* parent = nullptr);

  void setUsage(const Device& d, std::int64_t weights, std::int64_t kv, std::int64_t reserve, std::optional<std::int64_t> budget);
  QSize sizeHint() const override;

 protected:
  void paintEvent(QPaintEvent* event) override;

 private:
  Device device_;
  std::int64_t weights_ = 0, kv_ = 0, reserve_ = 0;
  std::optional<std::int64_t> budget_;
};

}  // namespace devicemap::ui
