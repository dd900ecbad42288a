// The dialogs that choose what to plan: Simulate Hardware (bundled profiles, virtual GPUs added and
// removed), Open Model (catalog entries, the Hugging Face cache) and About.
#include <QtTest/QtTest>

#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QListWidget>
#include <QPushButton>
#include <QTableWidget>
#include <QTreeWidget>

#include "model/model_source.hpp"
#include "plan/machine.hpp"
#include "testkit.hpp"
#include "devicemap_version.hpp"
#include "kernels/matvec.hpp"
#include "ui/about_text.hpp"
#include "ui/hardware_dialog.hpp"
#include "ui/model_picker.hpp"

using namespace devicemap;
using namespace devicemap::ui;

namespace {

QPushButton* button(QWidget* parent, const QString& text) {
  for (auto* b : parent->findChildren<QPushButton*>())
    if (b->text() == text) return b;
  return nullptr;
}

}  // namespace

class TestUiDialogs : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void aboutNamesVersionQtRunnerAndKernels() {
    const QString text = aboutText();
    QVERIFY2(text.contains(QStringLiteral("</b> " DEVICEMAP_VERSION "<p>")), qPrintable(text));
    QVERIFY2(text.contains(QStringLiteral("Qt ") + QString::fromLatin1(qVersion())), qPrintable(text));
    QVERIFY2(text.contains(QStringLiteral("running layer: ")), qPrintable(text));
#ifdef DEVICEMAP_HAVE_RUNTIME
    QVERIFY2(text.contains(QStringLiteral("LibTorch ")), qPrintable(text));
#endif
    QVERIFY2(text.contains(QString::fromStdString("CPU kernels: " + kernels::dispatch_target() + " ")), qPrintable(text));
  }
  void hardwareFromAProfileThenVirtualGpus() {
    HardwareDialog dialog(detect_machine());
    auto* profiles = dialog.findChild<QListWidget*>();
    QVERIFY(profiles);
    QCOMPARE(profiles->count(), 1 + static_cast<int>(bundled_profiles().size()));
    // The bundled profiles follow "this machine", sorted by file name: 1x24gb, 1x80gb, 2x24gb, …
    profiles->setCurrentRow(3);
    const Machine two = load_profile(bundled_profiles()[2]);
    QCOMPARE(dialog.machine().gpus().size(), two.gpus().size());
    for (const auto& d : dialog.machine().devices) QVERIFY(d.simulated);

    dialog.findChild<QDoubleSpinBox*>()->setValue(40);
    button(&dialog, QStringLiteral("Add GPU"))->click();
    QCOMPARE(dialog.machine().gpus().size(), two.gpus().size() + 1);
    const DeviceInfo* added = dialog.machine().find(Device::gpu(static_cast<int>(two.gpus().size())));
    QVERIFY(added);
    QCOMPARE(added->total, std::uint64_t{40} << 30);

    auto* table = dialog.findChild<QTableWidget*>();
    table->selectRow(0);  // GPU 0 goes, the others move down
    button(&dialog, QStringLiteral("Remove selected GPU"))->click();
    QCOMPARE(dialog.machine().gpus().size(), two.gpus().size());
    QCOMPARE(dialog.machine().find(Device::gpu(static_cast<int>(two.gpus().size()) - 1))->total, std::uint64_t{40} << 30);
    QCOMPARE(table->rowCount(), static_cast<int>(dialog.machine().devices.size()));
  }

  void pickerOffersCatalogAndCache() {
    testkit::TempDir hub;
    std::filesystem::create_directories(hub / "models--org--tiny" / "snapshots" / "r1");
    std::filesystem::copy_file(testkit::demo_dir() / "model.safetensors", hub / "models--org--tiny" / "snapshots" / "r1" / "model.safetensors");
    qputenv("HF_HUB_CACHE", QByteArray::fromStdString(hub.path().string()));

    ModelPicker picker(ModelPicker::Tab::Catalog);
    const auto trees = picker.findChildren<QTreeWidget*>();
    QCOMPARE(trees.size(), 2);
    QTreeWidget* cache = trees[0];
    QTreeWidget* listed = trees[1];
    QCOMPARE(listed->topLevelItemCount(), static_cast<int>(catalog().size()));
    auto found = listed->findItems(QStringLiteral("llama-3.1-405b"), Qt::MatchExactly, 3);
    QCOMPARE(found.size(), 1);
    listed->setCurrentItem(found.front());
    picker.findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Open)->click();
    QCOMPARE(picker.choice(), QStringLiteral("catalog:llama-3.1-405b"));

    // The cache is listed from a worker thread.
    QTRY_COMPARE(cache->topLevelItemCount(), 1);
    QCOMPARE(cache->topLevelItem(0)->text(0), QStringLiteral("org/tiny"));
    QVERIFY(!cache->topLevelItem(0)->isDisabled());
    qunsetenv("HF_HUB_CACHE");
  }
};

QTEST_MAIN(TestUiDialogs)
#include "test_ui_dialogs.moc"
