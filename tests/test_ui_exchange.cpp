// The desktop program's files: importing hand-written device maps (valid, an uncovered tensor, an
// unknown device), saving and opening plan files, and the text Copy as JSON / Python puts out.
#include <QtTest/QtTest>
#include <QUrl>
#include <QDropEvent>
#include <QMimeData>

#include <QAbstractButton>
#include <QApplication>
#include <QMessageBox>
#include <QTimer>

#include <fstream>

#include "plan/bandwidth.hpp"
#include "session/session.hpp"
#include "testkit.hpp"
#include "ui/hf_cache.hpp"
#include "ui/main_window.hpp"
#include "ui/map_text.hpp"
#include "ui/session_controller.hpp"

using namespace devicemap;
using namespace devicemap::ui;

namespace {

QString write(const testkit::TempDir& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name) << text;
  return QString::fromStdString((dir / name).string());
}

}  // namespace

class TestUiExchange : public QObject {
  Q_OBJECT

  SessionController* controller_ = nullptr;
  MainWindow* window_ = nullptr;

  const Session& session() const { return controller_->session(); }

 private Q_SLOTS:
  void initTestCase() {
    QStandardPaths::setTestModeEnabled(true);
    QApplication::setOrganizationName(QStringLiteral("DeviceMapTests"));
    QApplication::setApplicationName(QStringLiteral("test_ui_exchange"));
    QSettings().clear();
  }

  void init() {
    controller_ = new SessionController;
    controller_->setMachine(testkit::two_small_gpus(), QStringLiteral("test machine"));
    controller_->openModelNow(testkit::demo_dir().string());
    window_ = new MainWindow(controller_);
  }

  void cleanup() {
    delete window_;
    delete controller_;
  }

  // File > Export for a Cluster: each host's map and the vLLM launch, never over files unless asked.
  void exportForAClusterWritesEachHostsMap() {
    testkit::TempDir dir;
    const QString cluster = QString::fromStdString((testkit::resources_dir() / "clusters" / "2x8x80gb.json").string());
    const QString folder = QString::fromStdString((dir / "cluster").string());
    QString summary;
    QCOMPARE(window_->exportForCluster(cluster, folder, false, &summary), QString());
    QVERIFY2(summary.contains(QStringLiteral("node0: layers 0–")) && summary.contains(QStringLiteral("VLLM_PP_LAYER_PARTITION=")),
             qPrintable(summary));
    std::size_t layers = 0;
    for (const char* host : {"node0", "node1"}) {
      const DeviceMap map = DeviceMap::load(dir / "cluster" / (std::string(host) + ".device_map.json"));
      QVERIFY(validate(map, session().model().skeleton).unknown_keys.empty());
      for (const auto& [key, device] : map.entries()) layers += key.starts_with("model.layers.");
    }
    QCOMPARE(layers, std::size_t(5));  // the demo's five layers, each on one host
    QVERIFY(std::filesystem::exists(dir / "cluster" / "vllm-launch.sh"));
    std::ifstream ours(dir / "cluster" / "devicemap-launch.sh");
    const std::string launch((std::istreambuf_iterator<char>(ours)), {});
    QVERIFY2(testkit::contains(launch, "--cluster '" + cluster.toStdString() + "' --rank \"$rank\""), launch.c_str());
    QVERIFY(summary.contains(QStringLiteral("devicemap-launch.sh HOST")));
    QVERIFY(window_->exportForCluster(cluster, folder, false).contains(QStringLiteral("exists")));
    QCOMPARE(window_->exportForCluster(cluster, folder, true), QString());
    QVERIFY(window_->exportForCluster(folder, folder, false).contains(folder));  // a folder is no cluster profile
  }

  void importValidMapThenUndo() {
    testkit::TempDir dir;
    const std::string before = session().plan().device_map.to_json().dump();
    const QString path = write(dir, "map.json", R"({"model.embed_tokens": "cpu", "model.layers.0": 0, "model.layers.1": 0,
        "model.layers.2": 1, "model.layers.3": 1, "model.layers.4": "disk", "model.norm": "disk", "lm_head": "cpu"})");
    QCOMPARE(window_->importDeviceMap(path), QString());
    const auto map = DeviceMap::load(path.toStdString());
    for (const auto& t : session().model().skeleton.tensors)
      if (const auto d = map.device_of(t.name)) QCOMPARE(session().plan().device_map.device_of(t.name), d);
    QCOMPARE(session().pins().size(), map.entries().size());
    controller_->undoStack()->undo();
    QVERIFY(session().pins().empty());
    QCOMPARE(session().plan().device_map.to_json().dump(), before);
  }

  void importReportsUncoveredTensorAndChangesNothing() {
    testkit::TempDir dir;
    const std::string before = session().plan().device_map.to_json().dump();
    const int steps = controller_->undoStack()->count();
    const QString path = write(dir, "map.json", R"({"model.embed_tokens": 0, "model.layers": 0, "model.norm": 0})");
    const QString error = window_->importDeviceMap(path);
    QVERIFY2(error.contains(QStringLiteral("lm_head.weight")), qPrintable(error));
    QCOMPARE(session().plan().device_map.to_json().dump(), before);
    QCOMPARE(controller_->undoStack()->count(), steps);
  }

  void importReportsUnknownDevice() {
    testkit::TempDir dir;
    const QString path = write(dir, "map.json", R"({"model": 0, "lm_head": "cuda:5"})");
    const QString error = window_->importDeviceMap(path);
    QVERIFY2(error.contains(QStringLiteral("device 5")), qPrintable(error));
    QVERIFY(session().pins().empty());
  }

  void importReportsMalformedFile() {
    testkit::TempDir dir;
    QVERIFY(!window_->importDeviceMap(write(dir, "map.json", R"({"model": "tpu"})")).isEmpty());
    QVERIFY(!window_->importDeviceMap(write(dir, "broken.json", "{")).isEmpty());
    QVERIFY(!window_->importDeviceMap(QString::fromStdString((dir / "missing.json").string())).isEmpty());
  }

  void droppingAFolderOpensTheModel() {
    controller_->openModelNow("catalog:gpt2");
    QVERIFY(session().model().checkpoint.empty());
    const QUrl url = QUrl::fromLocalFile(QString::fromStdString(testkit::demo_dir().string()));
    QMimeData data;
    data.setUrls({url});
    QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &data, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(window_, &enter);
    QVERIFY(enter.isAccepted());
    QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &data, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(window_, &drop);
    QTRY_VERIFY_WITH_TIMEOUT(session().model().checkpoint == testkit::demo_dir(), 30000);
    QCOMPARE(session().model().skeleton.model_type, std::string("llama"));

    // Text that is not a local file is not taken.
    QMimeData web;
    web.setUrls({QUrl(QStringLiteral("https://huggingface.co/gpt2"))});
    QDragEnterEvent refused(QPoint(10, 10), Qt::CopyAction, &web, Qt::LeftButton, Qt::NoModifier);
    refused.setAccepted(false);
    QApplication::sendEvent(window_, &refused);
    QVERIFY(!refused.isAccepted());
  }

  void planFileSavesAndOpensTheSamePlan() {
    controller_->setBudget(Device::gpu(0), 250 * 1024);
    PlanOptions o = session().options();
    o.strategy = Strategy::Sequential;
    o.kv = {128, 1};
    controller_->setOptions(o, QStringLiteral("options"));
    controller_->pin({"model.layers.2"}, Device::cpu());
    controller_->addVirtualGpu(QStringLiteral("extra"), 200 * 1024);
    QVERIFY(session().plan_error().empty());
    const std::string plan_json = session().plan_file().to_json().dump();
    const std::string map_json = session().plan().device_map.to_json().dump();

    testkit::TempDir dir;
    const QString path = QString::fromStdString((dir / "demo.plan.json").string());
    QCOMPARE(window_->savePlan(path), QString());
    QVERIFY(controller_->undoStack()->isClean());

    // A fresh window opens it to the same state.
    SessionController other;
    MainWindow second(&other);
    QCOMPARE(second.openPlanNow(path), QString());
    QCOMPARE(other.session().plan_file().to_json().dump(), plan_json);
    QCOMPARE(other.session().plan().device_map.to_json().dump(), map_json);
    QCOMPARE(other.session().machine().gpus().size(), std::size_t{3});
    QVERIFY(second.windowTitle().contains(QStringLiteral("demo.plan.json")));

    // A plan whose pin names nothing in its model is refused, and the window keeps what it had.
    auto bad = nlohmann::json::parse(plan_json);
    bad["pins"]["model.layers.42"] = "cpu";
    const QString bad_path = write(dir, "bad.plan.json", bad.dump());
    const QString error = second.openPlanNow(bad_path);
    QVERIFY2(error.contains(QStringLiteral("model.layers.42")), qPrintable(error));
    QCOMPARE(other.session().plan_file().to_json().dump(), plan_json);
  }

  // Closing with unsaved changes asks first; Cancel keeps the window, Save writes the plan file,
  // Discard closes. Nothing changed: no question.
  void closingAsksBeforeLosingChanges() {
    const auto answer_with = [](QMessageBox::StandardButton button, QString* text) {
      QTimer::singleShot(0, [button, text] {
        auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget());
        if (!box) return;  // no question asked: the test below sees an empty text
        *text = box->text();
        box->button(button)->click();
      });
    };
    controller_->undoStack()->setClean();
    window_->show();
    QString asked;
    answer_with(QMessageBox::Cancel, &asked);
    QVERIFY(window_->close());  // nothing changed: closes without a question
    QVERIFY(asked.isEmpty());
    window_->show();

    const auto layer = session().model().skeleton.find_module("model.layers.2");
    QVERIFY(layer >= 0);
    controller_->pin({"model.layers.2"}, Device::cpu());
    QVERIFY(!controller_->undoStack()->isClean());
    answer_with(QMessageBox::Cancel, &asked);
    QVERIFY(!window_->close());
    QVERIFY2(asked.contains("not saved"), qPrintable(asked));
    QVERIFY(window_->isVisible());

    testkit::TempDir dir;
    const QString path = QString::fromStdString((dir / "edited.plan.json").string());
    QCOMPARE(window_->savePlan(path), QString());
    controller_->pin({"model.layers.3"}, Device::cpu());
    asked.clear();
    answer_with(QMessageBox::Save, &asked);
    QVERIFY(window_->close());
    QVERIFY2(asked.contains("edited.plan.json"), qPrintable(asked));
    QVERIFY(controller_->undoStack()->isClean());
    const auto saved = testkit::read_json(dir / "edited.plan.json");
    QVERIFY2(saved.dump().find("model.layers.3") != std::string::npos, saved.dump().c_str());

    window_->show();
    controller_->pin({"model.layers.1"}, Device::cpu());
    answer_with(QMessageBox::Discard, &asked);
    QVERIFY(window_->close());
  }

  void copyTextsCarryTheMap() {
    controller_->pin({"model.layers.4"}, Device::disk());
    const QString json = window_->deviceMapText();
    QCOMPARE(json.toStdString(), session().plan().device_map.to_json().dump(2) + "\n");
    const QString python = window_->pythonText();
    QVERIFY(python.contains(QStringLiteral("from_pretrained(")));
    QVERIFY(python.contains(QStringLiteral("device_map=device_map")));
    QVERIFY(python.contains(QStringLiteral("\"model.layers.4\": \"disk\"")));
    QVERIFY(python.contains(QStringLiteral("offload_folder=")));
    QVERIFY(python.contains(QString::fromStdString(testkit::demo_dir().string())));
  }

  void huggingFaceCacheListsModelsWithSizes() {
    testkit::TempDir hub;
    namespace fs = std::filesystem;
    // A complete download (refs/main names the snapshot), and one whose snapshot has no weights.
    const fs::path good = hub / "models--org--tiny";
    fs::create_directories(good / "blobs");
    fs::create_directories(good / "refs");
    fs::create_directories(good / "snapshots" / "abc123");
    std::ofstream(good / "blobs" / "1111") << std::string(1000, 'x');
    std::ofstream(good / "blobs" / "2222") << std::string(24, 'y');
    std::ofstream(good / "refs" / "main") << "abc123\n";
    fs::copy_file(testkit::demo_dir() / "config.json", good / "snapshots" / "abc123" / "config.json");
    std::ofstream(good / "snapshots" / "abc123" / "model.safetensors") << "";
    const fs::path partial = hub / "models--other--partial";
    fs::create_directories(partial / "snapshots" / "r1");
    std::ofstream(partial / "snapshots" / "r1" / "config.json") << "{}";
    fs::create_directories(hub / "datasets--x--y");  // not a model

    const auto found = scanHuggingFaceCache(hub.path());
    QCOMPARE(found.size(), std::size_t{2});
    QCOMPARE(found[0].repo_id, std::string("org/tiny"));
    QCOMPARE(found[0].bytes, std::uint64_t{1024});
    QCOMPARE(found[0].snapshot, good / "snapshots" / "abc123");
    QVERIFY(found[0].has_weights);
    QCOMPARE(found[1].repo_id, std::string("other/partial"));
    QVERIFY(!found[1].has_weights);
    QVERIFY(scanHuggingFaceCache(hub / "missing").empty());
  }

  void pythonUsesTheRepoIdOfCacheFoldersAndCatalogEntries() {
    QCOMPARE(modelIdFor("/home/u/.cache/huggingface/hub/models--meta-llama--Llama-3.1-8B/snapshots/abc", ""),
             std::string("meta-llama/Llama-3.1-8B"));
    QCOMPARE(modelIdFor("catalog:llama-3.1-8b", "meta-llama/Llama-3.1-8B"), std::string("meta-llama/Llama-3.1-8B"));
    QCOMPARE(modelIdFor("/models/mine", ""), std::string("/models/mine"));
    MaxMemory budgets;
    budgets.set(Device::gpu(0), 10ull << 30);
    budgets.set(Device::cpu(), 20'000'000'000ull);
    PlanOptions o;
    o.dtype = DType::BF16;
    const std::string py = pythonSnippet(DeviceMap({{"model", Device::gpu(0)}, {"lm_head", Device::cpu()}}), "org/name", o, budgets);
    QVERIFY(py.find("torch_dtype=torch.bfloat16") != std::string::npos);
    QVERIFY(py.find("max_memory={0: \"10GiB\", \"cpu\": \"20GB\"}") != std::string::npos);
    QVERIFY(py.find("\"lm_head\": \"cpu\"") != std::string::npos);
    QVERIFY(py.find("offload_folder") == std::string::npos);
  }

  // A detected disk gets its read speed measured in the background, once: the next controller (the
  // next start of the program) has it from the settings at once, and the prediction is never unknown.
  void detectedDiskIsMeasuredOnceAndRemembered() {
    testkit::TempDir dir;
    const auto diskSpeed = [](const SessionController& c) { return c.session().machine().find(Device::disk())->bandwidth_gbs; };
    Machine here = detect_machine(dir.path());
    measure_bandwidths(here);  // RAM, as the program does; the disk has no file to read
    QCOMPARE(here.find(Device::disk())->bandwidth_gbs, 0.0);
    controller_->setMachine(here, QStringLiteral("this machine"));
    controller_->pin({"model.layers.0"}, Device::disk());
    QTRY_VERIFY_WITH_TIMEOUT(diskSpeed(*controller_) > 0, 30000);
    QVERIFY(session().predicted_speed().known);
    const QString note = controller_->diskNote();
    QVERIFY2(note.contains(QStringLiteral("estimate")) && note.contains(QString::fromStdString(dir.path().string())),
             qPrintable(note));
    QVERIFY(std::filesystem::is_empty(dir.path()));  // the probe left nothing behind

    SessionController next;
    next.setMachine(detect_machine(dir.path()), QStringLiteral("this machine"));
    QCOMPARE(diskSpeed(next), diskSpeed(*controller_));
    // Undo the pin: the state recorded before the figure came has none, and takes it again.
    controller_->undoStack()->undo();
    QVERIFY(!controller_->session().is_pinned("model.layers.0"));
    QCOMPARE(diskSpeed(*controller_), diskSpeed(next));
  }
};

QTEST_MAIN(TestUiExchange)
#include "test_ui_exchange.moc"
