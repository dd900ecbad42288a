// The window's plan files: save and open plans, export and import device_map.json, and export a
// cluster's per-host maps with the vLLM launch. Each action has a dialog-free form that returns the error
// text (what the tests drive) and a dialog that asks for paths and reports.
#include <QFileDialog>
#include <QMessageBox>
#include <QStatusBar>

#include "error.hpp"
#include "format/resources.hpp"
#include "model/model_source.hpp"
#include "plan/cluster.hpp"
#include "plan/cluster_export.hpp"
#include "plan/devicemap_launch.hpp"
#include "plan/stage_plan.hpp"
#include "plan/units.hpp"
#include "plan/vllm_launch.hpp"
#include "ui/device_style.hpp"
#include "ui/main_window.hpp"
#include "ui/map_text.hpp"
#include "ui/session_controller.hpp"

namespace devicemap::ui {
namespace {

const QString kPlanFilter = QStringLiteral("DeviceMap plan (*.plan.json);;JSON (*.json);;All files (*)");
const QString kMapFilter = QStringLiteral("device_map.json (*.json);;All files (*)");

// What an export for a cluster made: each host's stage and the launch, for a message box.
QString clusterSummary(const StagePlan& plan, const VllmLaunch& launch, bool dropped_pins) {
  QStringList lines;
  for (const auto& st : plan.stages)
    lines << QObject::tr("%1: layers %2–%3, %4, %5 per token%6")
                 .arg(QString::fromStdString(st.host))
                 .arg(st.cut.first_layer)
                 .arg(st.cut.end_layer - 1)
                 .arg(sizeText(st.bytes))
                 .arg(st.seconds > 0 ? QStringLiteral("%1 ms").arg(st.seconds * 1e3, 0, 'f', 1) : QObject::tr("unknown"))
                 .arg(st.plan.fits() ? QString() : QObject::tr(" (does not fit)"));
  if (plan.tokens_per_second > 0)
    lines << QString() << QObject::tr("Predicted decode: %1 tok/s at batch 1, %2 tok/s with %3 sequences in flight")
                              .arg(plan.tokens_per_second, 0, 'g', 3)
                              .arg(plan.pipelined_tokens_per_second, 0, 'g', 3)
                              .arg(plan.stages.size());
  lines << QString() << QObject::tr("vLLM: VLLM_PP_LAYER_PARTITION=%1, --pipeline-parallel-size %2 --tensor-parallel-size %3 (vllm-launch.sh)")
                            .arg(QString::fromStdString(launch.layer_partition))
                            .arg(launch.pipeline_parallel)
                            .arg(launch.tensor_parallel);
  lines << QObject::tr("devicemap: devicemap-launch.sh HOST on each host (rank 0, %1, last: it takes the prompt)")
               .arg(QString::fromStdString(plan.stages.front().host));
  if (dropped_pins) lines << QObject::tr("Pins do not apply across hosts: each host's map was planned without them.");
  for (const auto& n : plan.notes) lines << QString::fromStdString(n);
  return lines.join(QLatin1Char('\n'));
}

}  // namespace


QString MainWindow::exportDeviceMap(const QString& path) {
  const Session& s = controller_->session();
  if (!s.has_model() || !s.plan_error().empty()) return tr("There is no plan to export");
  try {
    s.plan().device_map.save(path.toStdString());
  } catch (const Error& e) {
    return QString::fromUtf8(e.what());
  }
  return {};
}

QString MainWindow::exportForCluster(const QString& clusterFile, const QString& folder, bool replace, QString* summary) {
  const Session& s = controller_->session();
  if (!s.has_model()) return tr("There is no model to split");
  try {
    const Cluster cluster = load_cluster(clusterFile.toStdString());
    PlanOptions o = s.options();
    const bool had_pins = !o.pins.empty();
    o.pins.clear();  // each host's map is planned within its stage
    const StagePlan plan = plan_stages(s.model().skeleton, cluster, o, {o.dtype, o.flavor, 0, false, o.quantization});
    const VllmLaunch launch = vllm_launch(plan, cluster, vllm_model_name(s.model_ref()), o);
    const std::string ref = s.model_ref();
    const std::string ours = devicemap_launch_script(plan, cluster, launch_path(ref, vllm_model_name(ref)),
                                                     launch_path(clusterFile.toStdString(), clusterFile.toStdString()), planning_args_of(o));
    export_cluster_plan(folder.toStdString(), s.model().skeleton, plan, launch, ours, replace);
    if (summary) *summary = clusterSummary(plan, launch, had_pins);
  } catch (const Error& e) {
    return QString::fromUtf8(e.what());
  }
  return {};
}

QString MainWindow::importDeviceMap(const QString& path) {
  try {
    controller_->importMap(DeviceMap::load(path.toStdString()));
  } catch (const Error& e) {
    return QString::fromUtf8(e.what());
  }
  return {};
}

QString MainWindow::savePlan(const QString& path) {
  try {
    controller_->savePlanFile(path.toStdString());
  } catch (const Error& e) {
    return QString::fromUtf8(e.what());
  }
  plan_path_ = path;
  controller_->undoStack()->setClean();
  updateTitle();
  return {};
}

QString MainWindow::openPlanNow(const QString& path) {
  try {
    controller_->openPlanFileNow(path.toStdString());
  } catch (const Error& e) {
    return QString::fromUtf8(e.what());
  }
  plan_path_ = path;
  updateTitle();
  return {};
}

QString MainWindow::deviceMapText() const {
  return QString::fromStdString(deviceMapJson(controller_->session().plan().device_map));
}

QString MainWindow::pythonText() const {
  const Session& s = controller_->session();
  std::string source;
  if (s.model_ref().starts_with("catalog:"))
    if (const auto* e = find_catalog_entry(catalog(), s.model_ref().substr(8))) source = e->source;
  return QString::fromStdString(
      pythonSnippet(s.plan().device_map, modelIdFor(s.model_ref(), source), s.options(), s.budgets()));
}

void MainWindow::openPlanDialog() {
  const QString path = QFileDialog::getOpenFileName(this, tr("Open Plan"), QString(), kPlanFilter);
  if (!path.isEmpty()) controller_->openPlanFile(path);
}

bool MainWindow::savePlanDialog(bool ask) {
  QString path = plan_path_;
  if (ask || path.isEmpty()) {
    path = QFileDialog::getSaveFileName(this, tr("Save Plan"), QStringLiteral("untitled.plan.json"), kPlanFilter);
    if (path.isEmpty()) return false;
  }
  if (const QString error = savePlan(path); !error.isEmpty()) {
    QMessageBox::warning(this, tr("Cannot save the plan"), error);
    return false;
  }
  statusBar()->showMessage(tr("Saved %1").arg(path), 4000);
  return true;
}

void MainWindow::exportDialog() {
  const QString path = QFileDialog::getSaveFileName(this, tr("Export device_map.json"), QStringLiteral("device_map.json"), kMapFilter);
  if (path.isEmpty()) return;
  if (const QString error = exportDeviceMap(path); !error.isEmpty())
    QMessageBox::warning(this, tr("Cannot export"), error);
  else
    statusBar()->showMessage(tr("Wrote %1").arg(path), 4000);
}

void MainWindow::exportClusterDialog() {
  const QString clusters = QString::fromStdString((resources_dir() / "clusters").string());
  const QString cluster = QFileDialog::getOpenFileName(this, tr("Cluster profile"), clusters, tr("Cluster profile (*.json);;All files (*)"));
  if (cluster.isEmpty()) return;
  const QString folder = QFileDialog::getExistingDirectory(this, tr("Folder for the hosts' device maps and the vLLM launch"));
  if (folder.isEmpty()) return;
  QString summary;
  QString error = exportForCluster(cluster, folder, false, &summary);
  if (error.contains(QLatin1String(" exists; ")) &&
      QMessageBox::question(this, tr("Replace the files?"), tr("%1\n\nReplace the device maps and vllm-launch.sh in this folder?").arg(error)) ==
          QMessageBox::Yes)
    error = exportForCluster(cluster, folder, true, &summary);
  if (!error.isEmpty())
    QMessageBox::warning(this, tr("Cannot export for the cluster"), error);
  else
    QMessageBox::information(this, tr("Exported for the cluster"), tr("Wrote to %1:\n\n%2").arg(folder, summary));
}

void MainWindow::importDialog() {
  const QString path = QFileDialog::getOpenFileName(this, tr("Import device_map.json"), QString(), kMapFilter);
  if (path.isEmpty()) return;
  if (const QString error = importDeviceMap(path); !error.isEmpty())
    QMessageBox::warning(this, tr("This map does not fit the model"), error);
  else
    statusBar()->showMessage(tr("Imported %1: its keys are pins now (Unpin All to let the planner decide)").arg(path), 8000);
}

}  // namespace devicemap::ui
