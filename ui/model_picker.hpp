#pragma once
// Picks a model to open without a file dialog: one from the local Hugging Face cache (listed with sizes,
// scanned on a worker thread) or a catalog entry (planned from its config alone, nothing downloaded).
#include <QDialog>

class QLabel;
class QTabWidget;
class QTreeWidget;

namespace devicemap::ui {

class ModelPicker : public QDialog {
  Q_OBJECT

 public:
  enum class Tab { Cache, Catalog };
  explicit ModelPicker(Tab tab, QWidget* parent = nullptr);
  ~ModelPicker() override;

  QString choice() const { return choice_; }  // what SessionController::openModel takes

 private:
  void fillCatalog();
  void scanCache();
  void pick();

  QTabWidget* tabs_;
  QTreeWidget* cache_;
  QTreeWidget* catalog_;
  QLabel* cache_state_;
  QString choice_;
  class QThread* scan_ = nullptr;
};

}  // namespace devicemap::ui
