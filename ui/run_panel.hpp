#pragma once
// Runs the planned model: Load by the current map (progress, Cancel), then Generate from a prompt with
// sampling settings, streaming the text and the speed; Stop ends it. The work runs on a worker thread.
// Without the running layer in the build, the panel says so and offers nothing else.
#include <QString>
#include <QWidget>

namespace devicemap {
class Session;
}

class QCheckBox;
class QDoubleSpinBox;
class QLabel;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QThread;

namespace devicemap::ui {

class RunWorker;
class SessionController;
struct Sampling;

// Why the current plan cannot be run here ("" when it can): no checkpoint, no plan, or blocks on
// devices this machine does not have.
QString runBlocker(const Session& session);

class RunPanel : public QWidget {
  Q_OBJECT

 public:
  explicit RunPanel(SessionController* controller, QWidget* parent = nullptr);
  ~RunPanel() override;

  // Loads by the current map (unless that map is loaded already) and generates from `prompt`.
  void runPrompt(const QString& prompt);

 Q_SIGNALS:
  void planForThisMachine();

 private:
  void refresh();
  void load();
  void generate();
  void setBusy(bool loading, bool generating);
  void showDefaults(const Sampling& s);

  SessionController* controller_;
  QThread* thread_ = nullptr;
  RunWorker* worker_ = nullptr;
  QString loaded_map_;  // device_map.json of the loaded model; "" when none
  bool generate_when_loaded_ = false;
  bool loading_ = false, generating_ = false;

  QLabel* state_ = nullptr;
  QPushButton* this_machine_ = nullptr;
  QPushButton* load_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QPlainTextEdit* prompt_ = nullptr;
  QCheckBox* sample_ = nullptr;
  QDoubleSpinBox* temperature_ = nullptr;
  QSpinBox* top_k_ = nullptr;
  QDoubleSpinBox* top_p_ = nullptr;
  QDoubleSpinBox* repetition_ = nullptr;
  QSpinBox* max_new_ = nullptr;
  QSpinBox* seed_ = nullptr;
  QPushButton* generate_ = nullptr;
  QPushButton* stop_ = nullptr;
  QPlainTextEdit* output_ = nullptr;
  QLabel* speed_ = nullptr;
};

}  // namespace devicemap::ui
