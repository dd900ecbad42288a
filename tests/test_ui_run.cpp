// The run panel: loads the demo model by the current plan on a worker thread and streams a greedy
// generation that matches the reference ids; refuses plans that need devices this machine lacks.
// Without the running layer in the build, the panel says so and offers no controls.
#include <QtTest/QtTest>

#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSemaphore>
#include <QThread>
#include <QSpinBox>

#include <random>

#include "session/session.hpp"
#include "testkit.hpp"
#include "text/tokenizer.hpp"
#include "ui/run_panel.hpp"
#include "ui/session_controller.hpp"

using namespace devicemap;
using namespace devicemap::ui;

namespace {

Machine profile(const char* json) { return machine_from_profile(nlohmann::json::parse(json), "test profile"); }

// Keeps `thread` (the panel's worker) busy until `release` is released, so that work queued behind it waits
// and a Cancel or Stop pressed meanwhile lands before it starts, whatever the timing.
void holdWorker(QThread* thread, QSemaphore& release) {
  auto* blocker = new QObject;
  blocker->moveToThread(thread);
  QMetaObject::invokeMethod(blocker, [&release, blocker] {
    release.acquire();
    blocker->deleteLater();
  });
}

}  // namespace

class TestUiRun : public QObject {
  Q_OBJECT

 private Q_SLOTS:
#ifdef DEVICEMAP_HAVE_RUNTIME
  void loadsByThePlanAndStreamsTheGreedyText() {
    SessionController controller;
    controller.setMachine(profile(R"({"cpu": {"memory": "1GiB"}})"), QStringLiteral("cpu only"));
    controller.openModelNow(testkit::demo_dir().string());
    controller.pin({"model.layers.3"}, Device::disk());  // a block that runs from the checkpoint's mapping
    RunPanel panel(&controller);
    auto* load = panel.findChild<QPushButton*>(QStringLiteral("load"));
    auto* generate = panel.findChild<QPushButton*>(QStringLiteral("generate"));
    auto* state = panel.findChild<QLabel*>(QStringLiteral("state"));
    QVERIFY(load && generate && state);
    QVERIFY(load->isEnabled());
    QVERIFY(!generate->isEnabled());

    load->click();
    QTRY_VERIFY_WITH_TIMEOUT(generate->isEnabled(), 60000);
    QVERIFY2(state->text().startsWith(QStringLiteral("Loaded")), qPrintable(state->text()));

    const int n = 24;
    panel.findChild<QPlainTextEdit*>(QStringLiteral("prompt"))->setPlainText(QString());  // BOS only
    panel.findChild<QSpinBox*>(QStringLiteral("maxNewTokens"))->setValue(n);
    generate->click();
    QVERIFY(!generate->isEnabled());
    auto* speed = panel.findChild<QLabel*>(QStringLiteral("speed"));
    QTRY_VERIFY_WITH_TIMEOUT(generate->isEnabled(), 60000);
    QVERIFY2(speed->text().contains(QStringLiteral("tok/s")), qPrintable(speed->text()));

    const auto expected = testkit::read_json(testkit::demo_dir() / "expected_greedy.json")["greedy_ids_including_bos"];
    std::vector<int> ids;
    for (int i = 1; i <= n; ++i) ids.push_back(expected[static_cast<std::size_t>(i)].get<int>());
    const Tokenizer tokenizer = Tokenizer::load(testkit::demo_dir());
    QCOMPARE(panel.findChild<QPlainTextEdit*>(QStringLiteral("output"))->toPlainText(),
             QString::fromStdString(tokenizer.decode(ids, true)));

    // Changing the plan afterwards says the loaded model is stale.
    controller.unpinAll();
    QVERIFY2(state->text().contains(QStringLiteral("Load again")), qPrintable(state->text()));
  }

  void aPlanAt8BitLoadsTheFloatCheckpointQuantized() {
    // The dtype choice "bitsandbytes 8-bit" of a float checkpoint loads its block Linears as int8 rows.
    SessionController controller;
    controller.setMachine(profile(R"({"cpu": {"memory": "1GiB"}})"), QStringLiteral("cpu only"));
    controller.openModelNow(testkit::demo_dir().string());
    PlanOptions options = controller.session().options();
    Quantization q;
    q.method = Quantization::Method::Bnb8;
    options.quantization = q;
    controller.setOptions(options, QStringLiteral("8-bit"));
    RunPanel panel(&controller);
    auto* load = panel.findChild<QPushButton*>(QStringLiteral("load"));
    auto* generate = panel.findChild<QPushButton*>(QStringLiteral("generate"));
    auto* state = panel.findChild<QLabel*>(QStringLiteral("state"));
    load->click();
    QTRY_VERIFY_WITH_TIMEOUT(generate->isEnabled(), 60000);
    QVERIFY2(state->text().contains(QStringLiteral("quantized on load to int8")), qPrintable(state->text()));
    QVERIFY2(state->text().contains(QStringLiteral("35 Linear(s) read packed")), qPrintable(state->text()));
  }

  void cancelDuringLoadingLeavesThePanelUsable() {
    SessionController controller;
    controller.setMachine(profile(R"({"cpu": {"memory": "1GiB"}})"), QStringLiteral("cpu only"));
    controller.openModelNow(testkit::demo_dir().string());
    RunPanel panel(&controller);
    auto* load = panel.findChild<QPushButton*>(QStringLiteral("load"));
    auto* cancel = panel.findChild<QPushButton*>(QStringLiteral("cancel"));
    auto* generate = panel.findChild<QPushButton*>(QStringLiteral("generate"));
    auto* state = panel.findChild<QLabel*>(QStringLiteral("state"));
    auto* worker_thread = panel.findChild<QThread*>();
    QVERIFY(load && cancel && generate && state && worker_thread);

    // Hold the worker thread so that Cancel lands while the load is queued, whatever the timing.
    QSemaphore release;
    holdWorker(worker_thread, release);
    load->click();
    QVERIFY(cancel->isEnabled());
    QVERIFY(!load->isEnabled());
    cancel->click();
    release.release();
    QTRY_VERIFY_WITH_TIMEOUT(state->text() == QStringLiteral("Loading was cancelled."), 60000);
    QVERIFY(load->isEnabled());
    QVERIFY(!cancel->isEnabled());
    QVERIFY(!generate->isEnabled());  // nothing is loaded

    // The panel and the session go on: the next load and a generation work.
    load->click();
    QTRY_VERIFY_WITH_TIMEOUT(generate->isEnabled(), 60000);
    QVERIFY2(state->text().startsWith(QStringLiteral("Loaded")), qPrintable(state->text()));
    panel.findChild<QSpinBox*>(QStringLiteral("maxNewTokens"))->setValue(4);
    generate->click();
    QTRY_VERIFY_WITH_TIMEOUT(generate->isEnabled(), 60000);
    QVERIFY(!panel.findChild<QPlainTextEdit*>(QStringLiteral("output"))->toPlainText().isEmpty());
  }

  void stopEndsAGenerationAndTheNextOneRuns() {
    SessionController controller;
    controller.setMachine(profile(R"({"cpu": {"memory": "1GiB"}})"), QStringLiteral("cpu only"));
    controller.openModelNow(testkit::demo_dir().string());
    RunPanel panel(&controller);
    auto* generate = panel.findChild<QPushButton*>(QStringLiteral("generate"));
    auto* stop = panel.findChild<QPushButton*>(QStringLiteral("stop"));
    auto* output = panel.findChild<QPlainTextEdit*>(QStringLiteral("output"));
    auto* speed = panel.findChild<QLabel*>(QStringLiteral("speed"));
    panel.findChild<QPushButton*>(QStringLiteral("load"))->click();
    QTRY_VERIFY_WITH_TIMEOUT(generate->isEnabled(), 60000);
    panel.findChild<QPlainTextEdit*>(QStringLiteral("prompt"))->setPlainText(QStringLiteral("Once upon a time"));
    panel.findChild<QSpinBox*>(QStringLiteral("maxNewTokens"))->setValue(200);

    // Stop pressed before the worker starts: the generation ends at its first block, with the prompt only.
    QSemaphore release;
    holdWorker(panel.findChild<QThread*>(), release);
    generate->click();
    QVERIFY(stop->isEnabled());
    stop->click();
    release.release();
    QTRY_VERIFY_WITH_TIMEOUT(generate->isEnabled(), 60000);
    QVERIFY(!stop->isEnabled());
    QCOMPARE(output->toPlainText(), QStringLiteral("Once upon a time"));
    QVERIFY2(speed->text().contains(QStringLiteral("stopped")), qPrintable(speed->text()));

    // The model stays loaded and the next generation runs to its end.
    panel.findChild<QSpinBox*>(QStringLiteral("maxNewTokens"))->setValue(5);
    generate->click();
    QTRY_VERIFY_WITH_TIMEOUT(generate->isEnabled(), 60000);
    QVERIFY(output->toPlainText().startsWith(QStringLiteral("Once upon a time, there")));
  }

  // Cancel and Stop pressed at moments drawn from a seeded schedule: a third of the time while the
  // worker is held (so the press lands before the work starts), else 0–40 ms after Load or Generate
  // (during a generation, or after a load, which takes milliseconds). After each, the panel is idle with
  // its buttons agreeing with what is loaded, and at the end a generation still gives the reference text.
  void cancelAndStopAtRandomMomentsLeaveThePanelUsable() {
    SessionController controller;
    controller.setMachine(profile(R"({"cpu": {"memory": "1GiB"}})"), QStringLiteral("cpu only"));
    controller.openModelNow(testkit::demo_dir().string());
    controller.pin({"model.layers.1"}, Device::disk());
    RunPanel panel(&controller);
    auto* load = panel.findChild<QPushButton*>(QStringLiteral("load"));
    auto* cancel = panel.findChild<QPushButton*>(QStringLiteral("cancel"));
    auto* generate = panel.findChild<QPushButton*>(QStringLiteral("generate"));
    auto* stop = panel.findChild<QPushButton*>(QStringLiteral("stop"));
    auto* state = panel.findChild<QLabel*>(QStringLiteral("state"));
    auto* output = panel.findChild<QPlainTextEdit*>(QStringLiteral("output"));
    panel.findChild<QPlainTextEdit*>(QStringLiteral("prompt"))->setPlainText(QStringLiteral("Once upon a time"));
    panel.findChild<QSpinBox*>(QStringLiteral("maxNewTokens"))->setValue(150);
    std::mt19937 schedule(20261202);
    std::uniform_int_distribution<int> delay_ms(0, 40);
    int loads = 0, generations = 0, stopped = 0, cancelled = 0;
    const auto idle = [&] { return load->isEnabled() && !cancel->isEnabled() && !stop->isEnabled(); };
    for (int round = 0; round < 24; ++round) {
      const bool loaded = generate->isEnabled();
      const bool held = schedule() % 3 == 0;
      QSemaphore release;
      if (held) holdWorker(panel.findChild<QThread*>(), release);
      if (!loaded || schedule() % 4 == 0) {  // (re)load now and then, generate otherwise
        load->click();
        ++loads;
        if (!held) QTest::qWait(delay_ms(schedule));
        if (cancel->isEnabled()) cancel->click();
        if (held) release.release();
        QTRY_VERIFY_WITH_TIMEOUT(idle(), 60000);
        const QString text = state->text();
        if (text == QStringLiteral("Loading was cancelled.")) {
          ++cancelled;
          QVERIFY(!generate->isEnabled());
        } else {
          QVERIFY2(text.startsWith(QStringLiteral("Loaded")), qPrintable(QString("round %1: %2").arg(round).arg(text)));
          QVERIFY(generate->isEnabled());
        }
      } else {
        generate->click();
        ++generations;
        if (!held) QTest::qWait(delay_ms(schedule));
        if (stop->isEnabled()) stop->click(), ++stopped;
        if (held) release.release();
        QTRY_VERIFY_WITH_TIMEOUT(generate->isEnabled() && idle(), 60000);
        QVERIFY2(output->toPlainText().startsWith(QStringLiteral("Once upon a time")), qPrintable(output->toPlainText()));
      }
    }
    qInfo("%d loads (%d cancelled), %d generations (%d stopped)", loads, cancelled, generations, stopped);
    QVERIFY(loads > 0 && generations > 0);
    if (!generate->isEnabled()) {
      load->click();
      QTRY_VERIFY_WITH_TIMEOUT(generate->isEnabled(), 60000);
    }
    panel.findChild<QSpinBox*>(QStringLiteral("maxNewTokens"))->setValue(5);
    generate->click();
    QTRY_VERIFY_WITH_TIMEOUT(generate->isEnabled() && idle(), 60000);
    QVERIFY2(output->toPlainText().startsWith(QStringLiteral("Once upon a time, there")), qPrintable(output->toPlainText()));
  }

  void refusesPlansOnSimulatedGpus() {
    SessionController controller;
    controller.setMachine(profile(R"({"gpus": [{"memory": "24GiB"}], "cpu": {"memory": "1GiB"}})"), QStringLiteral("sim"));
    controller.openModelNow(testkit::demo_dir().string());
    RunPanel panel(&controller);
    QVERIFY(!panel.findChild<QPushButton*>(QStringLiteral("load"))->isEnabled());
    QVERIFY(panel.findChild<QLabel*>(QStringLiteral("state"))->text().contains(QStringLiteral("GPU 0")));
    QVERIFY(!panel.findChild<QPushButton*>(QStringLiteral("planForThisMachine"))->isHidden());
  }

  void catalogModelsCannotRun() {
    SessionController controller;
    controller.setMachine(profile(R"({"cpu": {"memory": "1TiB"}})"), QStringLiteral("cpu"));
    controller.openModelNow("catalog:llama-3.1-8b");
    RunPanel panel(&controller);
    QVERIFY(!panel.findChild<QPushButton*>(QStringLiteral("load"))->isEnabled());
    QVERIFY(panel.findChild<QLabel*>(QStringLiteral("state"))->text().contains(QStringLiteral("download")));
    // A type the runtime cannot run says why (not "download it").
    controller.openModelNow("catalog:deepseek-v3");
    const QString why = panel.findChild<QLabel*>(QStringLiteral("state"))->text();
    QVERIFY2(why.contains(QStringLiteral("can be planned but not run")) && why.contains(QStringLiteral("latent attention")), qPrintable(why));
    QVERIFY(!panel.findChild<QPushButton*>(QStringLiteral("load"))->isEnabled());
  }
#else
  void saysTheRuntimeIsMissing() {
    SessionController controller;
    RunPanel panel(&controller);
    QVERIFY(panel.findChild<QLabel*>(QStringLiteral("state"))->text().contains(QStringLiteral("LibTorch")));
    QVERIFY(!panel.findChild<QPushButton*>(QStringLiteral("load")));
  }
#endif
};

QTEST_MAIN(TestUiRun)
#include "test_ui_run.moc"
