#include "ui/run_panel.hpp"

#include <utility>

#include <QCheckBox>
#include <QDoubleSpinBox>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QThread>
#include <QVBoxLayout>

#include "model/architecture.hpp"
#include "plan/process_memory.hpp"
#include "plan/units.hpp"
#include "session/session.hpp"
#include "ui/device_style.hpp"
#include "ui/session_controller.hpp"
#ifdef DEVICEMAP_HAVE_RUNTIME
#include "ui/run_worker.hpp"
#endif

namespace devicemap::ui {

QString runBlocker(const Session& s) {
  if (!s.has_model()) return RunPanel::tr("Open a model to run it.");
  if (const std::string gap = runtime_gap(s.model().skeleton.model_type); !gap.empty())
    return RunPanel::tr("%1 can be planned but not run here: %2.")
        .arg(QString::fromStdString(s.model_ref()), QString::fromStdString(gap));
  if (s.model().checkpoint.empty())
    return RunPanel::tr("%1 is planned from its config alone; download the checkpoint to run it.")
        .arg(QString::fromStdString(s.model_ref()));
  if (!s.plan_error().empty()) return RunPanel::tr("There is no plan to load by.");
  QStringList missing;
  for (const auto& d : s.plan().device_map.devices()) {
    const DeviceInfo* info = s.machine().find(d);
    if (d.is_gpu() && (!info || info->simulated)) missing << deviceLabel(d);
  }
  if (!missing.isEmpty())
    return RunPanel::tr("The plan puts layers on %1, which this machine does not have. Plan for this machine to run here.")
        .arg(missing.join(QStringLiteral(", ")));
  return {};
}

#ifndef DEVICEMAP_HAVE_RUNTIME

RunPanel::RunPanel(SessionController* controller, QWidget* parent) : QWidget(parent), controller_(controller) {
  auto* layout = new QVBoxLayout(this);
  state_ = new QLabel(tr("Running models needs the running layer (LibTorch), which this build does not include."), this);
  state_->setObjectName(QStringLiteral("state"));
  state_->setWordWrap(true);
  state_->setEnabled(false);
  layout->addWidget(state_);
  layout->addStretch(1);
}

RunPanel::~RunPanel() = default;
void RunPanel::refresh() {}
void RunPanel::load() {}
void RunPanel::generate() {}
void RunPanel::runPrompt(const QString&) {}
void RunPanel::setBusy(bool, bool) {}
void RunPanel::showDefaults(const Sampling&) {}

#else

RunPanel::RunPanel(SessionController* controller, QWidget* parent) : QWidget(parent), controller_(controller) {
  state_ = new QLabel(this);
  state_->setWordWrap(true);
  this_machine_ = new QPushButton(tr("Plan for This Machine"), this);
  this_machine_->setToolTip(tr("Hardware › Use This Machine: plan for the devices detected here"));
  load_ = new QPushButton(tr("&Load"), this);
  load_->setToolTip(tr("Load the checkpoint by the current device map"));
  cancel_ = new QPushButton(tr("Cancel"), this);
  progress_ = new QProgressBar(this);
  progress_->setRange(0, 100);
  prompt_ = new QPlainTextEdit(this);
  prompt_->setPlaceholderText(tr("Prompt"));
  prompt_->setPlainText(QStringLiteral("Once upon a time"));
  prompt_->setMaximumHeight(prompt_->fontMetrics().height() * 4);
  sample_ = new QCheckBox(tr("sample"), this);
  sample_->setToolTip(tr("Off: greedy (the most likely token each step)"));
  temperature_ = new QDoubleSpinBox(this);
  temperature_->setRange(0, 5);
  temperature_->setSingleStep(0.1);
  top_k_ = new QSpinBox(this);
  top_k_->setRange(0, 100000);
  top_k_->setSpecialValueText(tr("off"));
  top_p_ = new QDoubleSpinBox(this);
  top_p_->setRange(0.01, 1);
  top_p_->setSingleStep(0.05);
  repetition_ = new QDoubleSpinBox(this);
  repetition_->setRange(1, 3);
  repetition_->setSingleStep(0.05);
  max_new_ = new QSpinBox(this);
  max_new_->setRange(1, 1 << 20);
  seed_ = new QSpinBox(this);
  seed_->setRange(0, 1 << 30);
  generate_ = new QPushButton(tr("&Generate"), this);
  generate_->setShortcut(QKeySequence(tr("Ctrl+Return")));
  generate_->setToolTip(tr("Generate from the prompt (Ctrl+Return)"));
  stop_ = new QPushButton(tr("Stop"), this);
  output_ = new QPlainTextEdit(this);
  output_->setReadOnly(true);
  speed_ = new QLabel(this);

  auto* top = new QHBoxLayout;
  top->addWidget(load_);
  top->addWidget(cancel_);
  top->addWidget(progress_, 1);
  top->addWidget(this_machine_);
  // Two rows of settings, so that the panel fits beside the others.
  auto* sampling = new QGridLayout;
  sampling->addWidget(sample_, 0, 0);
  int cell = 1;
  for (auto [label, w] : {std::pair<QString, QWidget*>{tr("temperature"), temperature_}, {tr("top-k"), top_k_},
                          {tr("top-p"), top_p_}, {tr("repetition penalty"), repetition_}, {tr("max new tokens"), max_new_},
                          {tr("seed"), seed_}}) {
    const int row = cell / 4, col = 2 * (cell % 4);
    sampling->addWidget(new QLabel(label, this), row, col, Qt::AlignRight);
    sampling->addWidget(w, row, col + 1);
    ++cell;
  }
  sampling->setColumnStretch(8, 1);
  sampling->addWidget(generate_, 0, 9);
  sampling->addWidget(stop_, 1, 9);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(top);
  layout->addWidget(state_);
  layout->addWidget(prompt_);
  layout->addLayout(sampling);
  layout->addWidget(output_, 1);
  layout->addWidget(speed_);

  thread_ = new QThread(this);
  worker_ = new RunWorker;
  worker_->moveToThread(thread_);
  connect(thread_, &QThread::finished, worker_, &QObject::deleteLater);
  thread_->start();

  connect(this_machine_, &QPushButton::clicked, this, &RunPanel::planForThisMachine);
  connect(load_, &QPushButton::clicked, this, &RunPanel::load);
  connect(cancel_, &QPushButton::clicked, this, [this] { worker_->cancelFlag() = true; });
  connect(generate_, &QPushButton::clicked, this, &RunPanel::generate);
  connect(stop_, &QPushButton::clicked, this, [this] { worker_->cancelFlag() = true; });
  connect(worker_, &RunWorker::progress, this, [this](int percent, const QString& tensor) {
    progress_->setValue(percent);
    progress_->setFormat(QStringLiteral("%p% ") + tensor);
  });
  connect(worker_, &RunWorker::loaded, this, [this](const QString& summary, const Sampling& defaults) {
    loaded_map_ = QString::fromStdString(controller_->session().plan().device_map.to_json().dump());
    setBusy(false, false);
    progress_->setValue(100);
    progress_->setFormat(tr("loaded"));
    showDefaults(defaults);
    state_->setText(summary);
    if (std::exchange(generate_when_loaded_, false)) generate();
  });
  connect(worker_, &RunWorker::loadFailed, this, [this](const QString& message, bool cancelled) {
    loaded_map_.clear();
    generate_when_loaded_ = false;
    setBusy(false, false);
    progress_->setValue(0);
    progress_->setFormat(cancelled ? tr("cancelled") : tr("failed"));
    state_->setText(cancelled ? tr("Loading was cancelled.") : QStringLiteral("<span style='color:%1'>%2</span>")
                                                                    .arg(overColor().name(), message.toHtmlEscaped()));
  });
  connect(worker_, &RunWorker::text, this, [this](const QString& piece, int tokens, double seconds) {
    output_->moveCursor(QTextCursor::End);
    output_->insertPlainText(piece);
    if (seconds > 0 && tokens > 1)
      speed_->setText(tr("%1 tokens · %2 tok/s · RAM %3 resident")
                          .arg(tokens)
                          .arg((tokens - 1) / seconds, 0, 'f', 1)
                          .arg(QString::fromStdString(format_size(current_resident_bytes()))));
  });
  connect(worker_, &RunWorker::finished, this, [this](const QString& summary) {
    setBusy(false, false);
    speed_->setText(summary);
  });
  connect(worker_, &RunWorker::generateFailed, this, [this](const QString& message) {
    setBusy(false, false);
    speed_->setText(QStringLiteral("<span style='color:%1'>%2</span>").arg(overColor().name(), message.toHtmlEscaped()));
  });
  connect(controller_, &SessionController::planChanged, this, &RunPanel::refresh);
  connect(controller_, &SessionController::modelChanged, this, [this] {
    loaded_map_.clear();
    QMetaObject::invokeMethod(worker_, [w = worker_] { w->unload(); });
    output_->clear();
    speed_->clear();
    progress_->setValue(0);
    progress_->resetFormat();
    refresh();
  });
  // Names for tests and style sheets.
  for (auto [w, name] : {std::pair<QWidget*, const char*>{state_, "state"}, {load_, "load"}, {cancel_, "cancel"},
                         {progress_, "progress"}, {prompt_, "prompt"}, {sample_, "sample"}, {max_new_, "maxNewTokens"},
                         {seed_, "seed"}, {generate_, "generate"}, {stop_, "stop"}, {output_, "output"}, {speed_, "speed"},
                         {this_machine_, "planForThisMachine"}})
    w->setObjectName(QString::fromLatin1(name));
  Sampling defaults;
  showDefaults(defaults);
  setBusy(false, false);
  refresh();
}

RunPanel::~RunPanel() {
  worker_->cancelFlag() = true;
  thread_->quit();
  thread_->wait();
}

void RunPanel::refresh() {
  const Session& session = controller_->session();
  const QString blocker = runBlocker(session);
  this_machine_->setVisible(!blocker.isEmpty() && session.has_model() && !session.model().checkpoint.empty() &&
                            session.plan_error().empty());
  if (loading_ || generating_) return;
  setBusy(false, false);
  if (!blocker.isEmpty())
    state_->setText(blocker);
  else if (loaded_map_.isEmpty())
    state_->setText(tr("Ready to load by the current map."));
  else if (loaded_map_ != QString::fromStdString(controller_->session().plan().device_map.to_json().dump()))
    state_->setText(tr("The plan changed since the model was loaded: Load again to run the new map."));
}

void RunPanel::setBusy(bool loading, bool generating) {
  loading_ = loading;
  generating_ = generating;
  const bool idle = !loading && !generating;
  const bool runnable = runBlocker(controller_->session()).isEmpty();
  load_->setEnabled(idle && runnable);
  cancel_->setEnabled(loading);
  generate_->setEnabled(idle && !loaded_map_.isEmpty());
  stop_->setEnabled(generating);
}

void RunPanel::showDefaults(const Sampling& s) {
  sample_->setChecked(s.do_sample);
  temperature_->setValue(s.temperature);
  top_k_->setValue(s.top_k);
  top_p_->setValue(s.top_p);
  repetition_->setValue(s.repetition_penalty);
  max_new_->setValue(s.max_new_tokens);
}

void RunPanel::load() {
  const Session& s = controller_->session();
  if (!runBlocker(s).isEmpty()) return;
  worker_->cancelFlag() = false;
  setBusy(true, false);
  progress_->setValue(0);
  state_->setText(tr("Loading %1 …").arg(QString::fromStdString(s.model().checkpoint.string())));
  const QString folder = QString::fromStdString(s.model().checkpoint.string());
  const DeviceMap map = s.plan().device_map;
  const auto dtype = s.options().dtype;
  // The plan's 8-bit or 4-bit choice loads a float checkpoint quantized the same way.
  LoadQuantization quantize = LoadQuantization::None;
  if (const auto& q = s.options().quantization) quantize = q->method == Quantization::Method::Bnb8 ? LoadQuantization::Int8 : LoadQuantization::Nf4;
  QMetaObject::invokeMethod(worker_, [w = worker_, folder, map, dtype, quantize] { w->load(folder, map, dtype, quantize); });
}

void RunPanel::runPrompt(const QString& prompt) {
  if (loading_ || generating_) return;
  prompt_->setPlainText(prompt);
  if (loaded_map_ == QString::fromStdString(controller_->session().plan().device_map.to_json().dump())) {
    generate();
    return;
  }
  generate_when_loaded_ = true;
  load();
  if (!loading_) generate_when_loaded_ = false;  // the plan cannot run here
}

void RunPanel::generate() {
  if (loaded_map_.isEmpty()) return;
  worker_->cancelFlag() = false;
  setBusy(false, true);
  output_->setPlainText(prompt_->toPlainText());
  speed_->setText(tr("Generating …"));
  Sampling s;
  s.do_sample = sample_->isChecked();
  s.temperature = temperature_->value();
  s.top_k = top_k_->value();
  s.top_p = top_p_->value();
  s.repetition_penalty = repetition_->value();
  s.max_new_tokens = max_new_->value();
  s.seed = static_cast<quint64>(seed_->value());
  const QString prompt = prompt_->toPlainText();
  QMetaObject::invokeMethod(worker_, [w = worker_, prompt, s] { w->generate(prompt, s); });
}

#endif

}  // namespace devicemap::ui
