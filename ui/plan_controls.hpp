#pragma once
// The plan's options: strategy, dtype (and how it counts), KV-cache reserve (context × batch),
// no-split classes; and the summary line — fits or not, bytes per device.
#include <QWidget>

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QSpinBox;

namespace devicemap::ui {

class SessionController;

class PlanControls : public QWidget {
  Q_OBJECT

 public:
  explicit PlanControls(SessionController* controller, QWidget* parent = nullptr);

  QComboBox* strategyBox() const { return strategy_; }
  QString summary() const;  // the summary line as shown

 public Q_SLOTS:
  void refresh();  // from the session

 private:
  void edited(const QString& what);

  SessionController* controller_;
  QComboBox* strategy_;
  QComboBox* dtype_;
  QComboBox* flavor_;
  QSpinBox* context_;
  QSpinBox* batch_;
  QLineEdit* no_split_;
  QCheckBox* offload_buffers_;
  QLabel* summary_;
  QLabel* notes_;
};

}  // namespace devicemap::ui
