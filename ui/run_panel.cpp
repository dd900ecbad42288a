#include "ui/run_panel.hpp"

#include <QLabel>
#include <QVBoxLayout>

namespace devicemap::ui {

RunPanel::RunPanel(SessionController* controller, QWidget* parent) : QWidget(parent), controller_(controller) {
  auto* layout = new QVBoxLayout(this);
  auto* note = new QLabel(tr("Running models needs the running layer (LibTorch), which this build does not include."), this);
  note->setWordWrap(true);
  note->setEnabled(false);
  layout->addWidget(note);
  layout->addStretch(1);
}

RunPanel::~RunPanel() = default;

}  // namespace devicemap::ui
