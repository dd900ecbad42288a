#include "ui/model_picker.hpp"

#include <QDialogButtonBox>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QTabWidget>
#include <QThread>
#include <QTreeWidget>
#include <QVBoxLayout>

#include <memory>

#include "model/model_source.hpp"
#include "plan/units.hpp"
#include "ui/hf_cache.hpp"

namespace devicemap::ui {
namespace {

constexpr int kRefRole = Qt::UserRole + 1;

QString paramCount(const nlohmann::json& config) {
  // Rough size from the config alone, for the list: 12·L·h² + 2·V·h (attention + MLP as 8h², embeddings).
  auto get = [&](const char* k) { return config.contains(k) && config[k].is_number() ? config[k].get<double>() : 0.0; };
  const double h = get("hidden_size") > 0 ? get("hidden_size") : get("n_embd");
  const double layers = get("num_hidden_layers") > 0 ? get("num_hidden_layers") : get("n_layer");
  const double vocab = get("vocab_size");
  if (h <= 0 || layers <= 0) return {};
  const double inter = get("intermediate_size") > 0 ? get("intermediate_size") : 4 * h;
  const double experts = get("num_local_experts") > 0 ? get("num_local_experts") : 1;
  const double params = layers * (4 * h * h + 3 * h * inter * experts) + 2 * vocab * h;
  return params >= 1e9 ? QStringLiteral("~%1B").arg(params / 1e9, 0, 'f', 1) : QStringLiteral("~%1M").arg(params / 1e6, 0, 'f', 0);
}

}  // namespace

ModelPicker::ModelPicker(Tab tab, QWidget* parent) : QDialog(parent) {
  setWindowTitle(tr("Open Model"));
  tabs_ = new QTabWidget(this);

  auto* cache_page = new QWidget(tabs_);
  cache_ = new QTreeWidget(cache_page);
  cache_->setHeaderLabels({tr("Model"), tr("Size on disk"), tr("Snapshot")});
  cache_->setRootIsDecorated(false);
  cache_->setSortingEnabled(true);
  cache_->header()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
  cache_state_ = new QLabel(cache_page);
  cache_state_->setWordWrap(true);
  auto* cache_layout = new QVBoxLayout(cache_page);
  cache_layout->addWidget(cache_state_);
  cache_layout->addWidget(cache_, 1);
  tabs_->addTab(cache_page, tr("Hugging Face cache"));

  catalog_ = new QTreeWidget(tabs_);
  catalog_->setHeaderLabels({tr("Model"), tr("Parameters"), tr("Hugging Face repo"), tr("Id")});
  catalog_->setRootIsDecorated(false);
  catalog_->header()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
  catalog_->setToolTip(tr("Planned from the model's config alone: nothing is downloaded, and it cannot be run"));
  tabs_->addTab(catalog_, tr("Catalog (plan without downloading)"));
  tabs_->setCurrentIndex(tab == Tab::Cache ? 0 : 1);

  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Open | QDialogButtonBox::Cancel, this);
  connect(buttons, &QDialogButtonBox::accepted, this, &ModelPicker::pick);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(cache_, &QTreeWidget::itemActivated, this, &ModelPicker::pick);
  connect(catalog_, &QTreeWidget::itemActivated, this, &ModelPicker::pick);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(tabs_, 1);
  layout->addWidget(buttons);
  resize(720, 440);
  fillCatalog();
  scanCache();
}

ModelPicker::~ModelPicker() {
  if (scan_) scan_->wait();
}

void ModelPicker::fillCatalog() {
  for (const auto& e : catalog()) {
    auto* item = new QTreeWidgetItem(catalog_, {QString::fromStdString(e.title), paramCount(e.config),
                                                QString::fromStdString(e.source), QString::fromStdString(e.id)});
    item->setData(0, kRefRole, QStringLiteral("catalog:") + QString::fromStdString(e.id));
  }
  if (catalog_->topLevelItemCount() > 0) catalog_->setCurrentItem(catalog_->topLevelItem(0));
}

void ModelPicker::scanCache() {
  const auto hub = huggingFaceHubDir();
  cache_state_->setText(tr("Looking in %1 …").arg(QString::fromStdString(hub.string())));
  auto found = std::make_shared<std::vector<CachedModel>>();
  scan_ = QThread::create([found, hub] { *found = scanHuggingFaceCache(hub); });
  connect(scan_, &QThread::finished, this, [this, found, hub] {
    for (const auto& m : *found) {
      auto* item = new QTreeWidgetItem(cache_, {QString::fromStdString(m.repo_id), QString::fromStdString(format_size(m.bytes)),
                                                QString::fromStdString(m.snapshot.filename().string())});
      item->setData(0, kRefRole, QString::fromStdString(m.folder.string()));
      item->setData(1, Qt::UserRole, static_cast<qulonglong>(m.bytes));
      item->setToolTip(0, QString::fromStdString(m.snapshot.string()));
      if (!m.has_weights) {
        item->setDisabled(true);
        item->setToolTip(0, tr("No weights in this snapshot (an incomplete download?)"));
      }
    }
    cache_state_->setText(found->empty() ? tr("No models in %1. Download one with `huggingface-cli download ORG/NAME`.")
                                               .arg(QString::fromStdString(hub.string()))
                                         : tr("%n model(s) in %1", nullptr, static_cast<int>(found->size()))
                                               .arg(QString::fromStdString(hub.string())));
    scan_ = nullptr;
  });
  connect(scan_, &QThread::finished, scan_, &QObject::deleteLater);
  scan_->start();
}

void ModelPicker::pick() {
  auto* tree = tabs_->currentIndex() == 0 ? cache_ : catalog_;
  auto* item = tree->currentItem();
  if (!item || item->isDisabled()) return;
  choice_ = item->data(0, kRefRole).toString();
  accept();
}

}  // namespace devicemap::ui
