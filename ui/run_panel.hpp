#pragma once
// Runs the planned model: load by the current map (progress, Cancel), then generate from a prompt with
// sampling settings, streaming the text and the speed. The work happens on a worker thread.
#include <QWidget>

namespace devicemap::ui {

class SessionController;

class RunPanel : public QWidget {
  Q_OBJECT

 public:
  explicit RunPanel(SessionController* controller, QWidget* parent = nullptr);
  ~RunPanel() override;

 private:
  SessionController* controller_;
};

}  // namespace devicemap::ui
